"""The Epistemic Deck: the live, read-only Streamlit dashboard of Space Time (``spacetime deck`` runs it).

Sections (tabs, only the open one is computed): voting matrix, chopping block, ratings, epoch, the book, lineage.
Live: a fragment in the sidebar polls a cheap fingerprint of the book every 2 s (``DeckReader.version``) and
reruns the page when it changes; every cached query has a ttl and a size bound.
"""

from __future__ import annotations

import hmac
import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import streamlit as st

from spacetime.adapters.pg.deck import DeckReader, Version
from spacetime.deck import ENV_TOKEN, data, figures
from spacetime.deck.figures import code, md
from spacetime.domain import Book
from spacetime.errors import SpacetimeError
from spacetime.rules.audit import Ties, to_json
from spacetime.rules.cost import Spend, dollars, usage_text

POLL_EVERY = "2s"
# Session-state key: this browser session gave the access token (navigation inside the app keeps working).
# (A comment, not a docstring: Streamlit's "magic" would draw a bare string of this script on the page.)
AUTHORISED = "_deck_authorised"
SECTIONS = ["Voting matrix", "Chopping block", "Ratings", "Epoch", "The book", "Lineage", "Judging health"]
CHAPTERS_PER_PAGE = 5
PLOT_CONFIG = {"displaylogo": False, "scrollZoom": False}


@dataclass(frozen=True)
class View:
    url: str
    reader: DeckReader
    book: dict[str, Any]
    version: Version
    epoch_no: int | None

    @property
    def book_id(self) -> UUID:
        book_id: UUID = self.book["book_id"]
        return book_id

    @property
    def key(self) -> data.VersionKey:
        return data.key_of(self.version)


# ---------------------------------------------------------------------------------------------- live
@st.fragment(run_every=POLL_EVERY)
def live(url: str, book_id: UUID | None, shown: Version | None) -> None:
    """Poll the fingerprint; rerun the whole page when the book moved (or the database came back)."""
    try:
        now = data.reader(url).version(book_id)
    except SpacetimeError as exc:
        st.caption(f"⚠ {exc}")
        return
    if now != shown:
        st.rerun(scope="app")
    when = datetime.now().strftime("%H:%M:%S")
    st.caption(f"● live · epoch {now.latest_epoch} · checked {when}", help="The page refreshes by itself "
               f"within {POLL_EVERY} of a new epoch or a new agent.")


# ---------------------------------------------------------------------------------------------- navigation
def _unfollow() -> None:
    st.session_state["follow"] = False


def open_epoch(epoch_no: int) -> None:
    """Jump to one epoch (from a chapter or a search hit)."""
    st.session_state["follow"] = False
    st.session_state["epoch"] = epoch_no
    st.session_state["section"] = "Epoch"


def choose_epoch(latest: int) -> int | None:
    state = st.session_state
    if latest < 1:
        return None
    state.setdefault("follow", True)
    if state["follow"] or not isinstance(state.get("epoch"), int) or not 1 <= state["epoch"] <= latest:
        state["epoch"] = latest
    st.toggle("Follow the latest epoch", key="follow", help="Show each new epoch as soon as it is committed.")
    if latest > 1:
        st.slider("Epoch", 1, latest, key="epoch", on_change=_unfollow)
    else:
        st.caption("Epoch 1")
    return int(state["epoch"])


# ---------------------------------------------------------------------------------------------- sections
def section_votes(v: View) -> None:
    if v.epoch_no is None:
        st.info("No epoch has been played in this book yet.")
        return
    ep = data.epoch(v.url, v.book_id, v.epoch_no)
    votes = data.votes(v.url, v.book_id, v.epoch_no)
    drafts = data.drafts(v.url, v.book_id, v.epoch_no)
    if ep is None:
        st.warning(f"Epoch {v.epoch_no} is not in this book.")
        return
    st.subheader(f"Epoch {v.epoch_no}: who scored whom")
    st.caption(
        f"Rows are voters, columns the drafts they judged blind — each column shows the author and the alias the "
        f"draft wore (revealed after the collapse). Red dotted columns carry penalties (✂ truncated, late). "
        f"Hover a cell for the rationale. Chapter {ep.chapter_position}: **{md(ep.chapter_title)}** by "
        f"**{md(ep.winner)}**; eliminated: **{md(ep.loser)}**."
    )
    if not votes:
        st.info("No votes were recorded in this epoch (every ballot abstained).")
    else:
        st.plotly_chart(figures.matrix_figure(votes, drafts), key="matrix", config=PLOT_CONFIG)
    left, right = st.columns(2)
    with left:
        st.markdown("**Who voted for whom**")
        st.plotly_chart(figures.vote_graph_figure(votes, drafts), key="vote_graph", config=PLOT_CONFIG)
    with right:
        st.markdown("**Aliases revealed**")
        st.dataframe(
            [
                {
                    "alias": d["alias"],
                    "author": d["author"],
                    "mean insight": d["mean_insight"],
                    "penalties": figures.draft_marks(d) or "",
                    "total": d["score"],
                    "votes": d["votes_received"],
                    "outcome": "chapter" if d["winner"] else "eliminated" if d["loser"] else "",
                }
                for d in drafts
            ],
            hide_index=True,
            column_config={"mean insight": st.column_config.NumberColumn(format="%.2f"),
                           "total": st.column_config.NumberColumn(format="%.2f")},
        )
        ballots = data.ballots(v.url, v.book_id, v.epoch_no)
        odd = [b for b in ballots if b["status"] != "ok"]
        if odd:
            with st.expander(f"{len(odd)} ballot(s) needed repair or abstained"):
                for b in odd:
                    st.markdown(f"- **{md(b['voter'])}**: {md(b['status'])} — "
                                + (md("; ".join(b["problems"])) or "no detail"))


def section_chopping(v: View) -> None:
    roster = data.roster(v.url, v.book_id, v.key)
    if not roster:
        st.info("Nobody is alive in this book.")
        return
    largest = data.largest_move(v.url, v.book_id, v.key)
    band = figures.danger_band(largest)
    rows = figures.standings(roster, band)
    lowest = rows[-1]
    falling = [s.name for s in rows if s.risk == "can fall"]
    st.subheader("The chopping block")
    c1, c2, c3 = st.columns(3)
    c1.metric("Next out if nothing changes", md(lowest.name), f"rating {lowest.rating:.0f}", delta_color="off",
              delta_arrow="off")
    c2.metric("Also at risk next epoch", len(falling), ", ".join(md(n) for n in falling) or "nobody",
              delta_color="off", delta_arrow="off")
    c3.metric("Safest", md(rows[0].name), f"+{rows[0].gap:.0f} over the line", delta_color="off", delta_arrow="off")
    rule = "The lowest-rated living agent after an epoch is eliminated (the epoch's winner is spared). "
    if band is None or largest is None:
        st.caption(rule + "No epoch has moved a rating yet, so how far one epoch can move it is unknown: every agent "
                   "but the lowest is marked *can fall*.")
    else:
        st.caption(
            rule + "Ratings are Plackett–Luce skills, and nothing bounds how far one epoch moves them: the largest "
            f"one-epoch move in this book so far is {largest:.1f} points. One agent falling that much while another "
            f"rises as much closes a gap of {band:.1f}, so an agent more than {band:.1f} points above every other "
            "agent is *safe* next epoch — by this book's history, not a guarantee."
        )
    st.plotly_chart(figures.chopping_figure(rows, band), key="chopping", config=PLOT_CONFIG)
    extra = {r["name"]: r for r in roster}
    st.dataframe(
        [
            {
                "rank": k + 1,
                "agent": s.name,
                "discipline": extra[s.name]["discipline"],
                "rating": round(s.rating, 1),
                "gap to elimination": round(s.gap, 1),
                "next epoch": s.risk,
                "last change": None if extra[s.name]["last_change"] is None else round(extra[s.name]["last_change"], 1),
                "epochs played": extra[s.name]["epochs_played"],
            }
            for k, s in enumerate(rows)
        ],
        hide_index=True,
    )
    dead = data.recent_deaths(v.url, v.book_id, v.key)
    if dead:
        st.markdown("**Recently eliminated**")
        st.dataframe(
            [{"agent": d["name"], "epoch": d["died_epoch"], "final rating": round(d["rating"], 1),
              "cause": d["cause_of_death"], "replaced by": d["replaced_by"]} for d in dead],
            hide_index=True,
        )


def section_ratings(v: View) -> None:
    traj = data.trajectories(v.url, v.book_id, v.key)
    everyone = data.agents(v.url, v.book_id, v.key)
    st.subheader("Ratings over time")
    if not traj:
        st.info("No ratings yet: they appear after the first epoch.")
        return
    alive = sum(1 for a in everyone if a["status"] == "alive")
    st.caption(
        f"Ratings (Plackett–Luce μ) of all {len(everyone)} agents ({alive} living in colour, "
        f"{len(everyone) - alive} eliminated in grey); ● an agent entering, ✕ an elimination."
    )
    st.plotly_chart(figures.ratings_figure(traj, everyone), key="ratings", config=PLOT_CONFIG)


def section_epoch(v: View) -> None:
    if v.epoch_no is None:
        st.info("No epoch has been played in this book yet.")
        return
    ep = data.epoch(v.url, v.book_id, v.epoch_no)
    drafts = data.drafts(v.url, v.book_id, v.epoch_no)
    if ep is None:
        st.warning(f"Epoch {v.epoch_no} is not in this book.")
        return
    st.subheader(f"Epoch {v.epoch_no}: the drafts")
    took = (ep.end_time - ep.start_time).total_seconds() if ep.end_time and ep.start_time else None
    st.markdown(f"★ Chapter {ep.chapter_position} **{md(ep.chapter_title)}** by **{md(ep.winner)}** · "
                f"eliminated: **{md(ep.loser)}**")
    c = st.columns(4)
    c[0].metric("Drafts", len(drafts))
    c[1].metric("Truncated", sum(1 for d in drafts if d["truncated"]))
    c[2].metric("Slowest draft", f"{max(d['latency_s'] for d in drafts):.1f} s" if drafts else "—")
    c[3].metric("Epoch time", f"{took:.0f} s" if took is not None else "—")
    forfeits = data.forfeits(v.url, v.book_id, v.epoch_no)
    if forfeits:
        st.warning("Forfeits: " + "; ".join(f"{md(f['agent'])} ({md(f['reason'])})" for f in forfeits))
    section_usage(v)
    if drafts:
        a, b = st.columns(2)
        a.plotly_chart(figures.epoch_scores_figure(drafts), key="epoch_scores", config=PLOT_CONFIG)
        b.plotly_chart(figures.epoch_latency_figure(drafts), key="epoch_latency", config=PLOT_CONFIG)
    per_row = 3
    for start in range(0, len(drafts), per_row):
        cols = st.columns(per_row)
        for col, d in zip(cols, drafts[start : start + per_row], strict=False):
            with col.container(border=True):
                if d["winner"]:
                    st.markdown(f"#### ★ {md(d['author'])}")
                    st.badge("canon: this draft became the chapter", color="yellow")
                else:
                    st.markdown(f"#### {md(d['author'])}")
                    if d["loser"]:
                        st.badge("eliminated this epoch", color="red")
                st.caption(f"alias {code(d['alias'])}")
                score = "—" if d["score"] is None else f"{d['score']:.2f}"
                mean = "—" if d["mean_insight"] is None else f"{d['mean_insight']:.2f}"
                st.markdown(
                    f"**total {score}** · insight {mean} from {d['votes_received']} vote(s)  \n"
                    f"{d['completion_tokens']} tokens (prompt {d['prompt_tokens']}) · {d['latency_s']:.2f} s · "
                    f"finish {code(d['finish_reason'])}"
                )
                marks = figures.draft_marks(d)
                if d["truncated"]:
                    st.badge(f"truncated {marks}", color="red")
                elif marks:
                    st.badge(marks, color="orange")
                with st.container(height=260):
                    st.text(d["text"])


def _usage_row(label: str, spent: Spend) -> dict[str, Any]:
    u = spent.usage
    return {"": label, "calls": u.calls, "prompt tokens": u.prompt_tokens, "cached": u.cached_tokens,
            "completion tokens": u.completion_tokens, "total tokens": u.total_tokens,
            "cost": "—" if spent.cost is None else dollars(spent.cost)}  # fmt: skip


def section_usage(v: View) -> None:
    """Tokens and cost of the chosen epoch (by kind of call), and of every epoch (a table)."""
    b = v.book
    usage = data.usage(v.url, Book(b["book_id"], b["name"], b["topic"], None, b["config"]), v.key)
    shown = next((e for e in usage.epochs if e.epoch_no == v.epoch_no), None)
    if shown is None:
        st.caption("No token usage recorded for this epoch.")
        return
    c = st.columns(4)
    c[0].metric("Tokens this epoch", f"{shown.spent.usage.total_tokens:,}",
                help="Prompt + completion tokens of every call since the previous epoch was committed: drafts, "
                     "ballots, re-asks, embeddings, failed tries and breeding meanwhile.")  # fmt: skip
    c[1].metric("Cached prompt tokens", f"{shown.spent.usage.cached_tokens:,}")
    c[2].metric("Model calls", shown.spent.usage.calls)
    c[3].metric("Cost this epoch", "—" if shown.spent.cost is None else dollars(shown.spent.cost),
                help="US dollars at the book's prices ([endpoints.NAME.price]); — when no endpoint is priced.")
    with st.expander(f"Tokens and cost: book total {usage_text(usage.spent)}"):
        st.dataframe([_usage_row(k.value, s) for k, s in usage.by_kind(shown.lines).items()], hide_index=True)
        st.dataframe([_usage_row(f"epoch {e.epoch_no}", e.spent) for e in usage.epochs]
                     + [_usage_row("book", usage.spent)], hide_index=True)  # fmt: skip


def section_book(v: View) -> None:
    index = data.chapter_index(v.url, v.book_id, v.key)
    st.subheader(f"The book: {md(v.book['name'])}")
    st.caption(md(v.book["topic"]))
    query = st.text_input("Search drafts and chapters", key="search", placeholder="e.g. entropy and memory")
    if query and query.strip():
        with st.spinner("Searching…"):
            found = data.search(v.url, v.book_id, v.book["name"], v.book["config"], query.strip(), v.key)
        if found.mode == "semantic":
            st.caption(f"Semantic search (pgvector cosine, embedder {code(found.model)}): nearest first.")
        else:
            st.caption(f"Plain text search — {md(found.note)}.")
        if not found.hits:
            st.info("Nothing found.")
        for k, hit in enumerate(found.hits):
            if hit["kind"] == "draft":
                where = f"Draft {code(hit['label'])}"
            elif hit["label"].lower().startswith("chapter"):
                where = md(hit["label"])
            else:
                where = f"Chapter {hit['position']}: {md(hit['label'])}"
            distance = hit.get("distance")
            near = f" · similarity {1 - distance:.3f}" if distance is not None else ""
            with st.container(border=True):
                st.markdown(f"**{where}** — {md(hit['author'])}, epoch {hit['epoch_no']}{near}")
                st.caption(md(hit["excerpt"]) + ("…" if len(hit["excerpt"]) >= 400 else ""))
                st.button(f"Open epoch {hit['epoch_no']}", key=f"hit_{k}", on_click=open_epoch,
                          args=(hit["epoch_no"],))
    if not index:
        st.info("No chapter yet: the canon grows by one chapter per epoch.")
        return
    st.markdown(f"**{len(index)} chapter(s)**")
    st.dataframe(
        [{"chapter": c["position"], "title": c["title"], "epoch": c["epoch_no"], "author": c["author"],
          "characters": c["chars"]} for c in index],
        hide_index=True, height=min(36 * (len(index) + 1) + 2, 300),
    )
    pages = (len(index) + CHAPTERS_PER_PAGE - 1) // CHAPTERS_PER_PAGE
    page = 1
    if pages > 1:
        if not 1 <= st.session_state.get("page", 1) <= pages:  # another book was shorter or longer
            st.session_state["page"] = 1
        page = int(st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key="page"))
    first = (page - 1) * CHAPTERS_PER_PAGE + 1
    for ch in data.chapter_texts(v.url, v.book_id, first, first + CHAPTERS_PER_PAGE - 1):
        with st.container(border=True):
            st.markdown(f"### {ch['position']}. {md(ch['title'])}")
            head, button = st.columns([4, 1])
            head.caption(f"by {md(ch['author'])} · committed in epoch {ch['epoch_no']}")
            button.button(f"Epoch {ch['epoch_no']} →", key=f"chapter_{ch['position']}", on_click=open_epoch,
                          args=(ch["epoch_no"],), help="Open the epoch this chapter won")
            st.text(ch["text"])


def section_lineage(v: View) -> None:
    everyone = data.agents(v.url, v.book_id, v.key)
    st.subheader("Lineage")
    if not everyone:
        st.info("No agent yet.")
        return
    nodes = figures.lineage(everyone, v.version.latest_epoch)
    bred = sum(1 for n in nodes if n.origin == "bred")
    st.caption(
        "Each row is a seat at the table: an eliminated agent's replacement takes its seat, so a row reads as a "
        f"succession. Dotted lines join a bred persona to its parents ({bred} bred so far). Drag or use the slider "
        "to travel back in time."
    )
    st.plotly_chart(figures.lineage_figure(nodes, v.version.latest_epoch), key="lineage", config=PLOT_CONFIG)
    names = [a["name"] for a in everyone]
    if st.session_state.get("trace") not in names:  # first visit, or another book
        st.session_state["trace"] = names[-1]
    who = st.selectbox("Trace an agent's ancestry", names, key="trace")
    st.markdown(_ancestry(who, everyone))
    st.dataframe(
        [{"agent": a["name"], "origin": a["origin"], "parents": " × ".join(a["parents"] or []),
          "replaced": a["replaced"], "entered after epoch": a["born_epoch"], "eliminated in epoch": a["died_epoch"],
          "rating": round(a["rating"], 1), "status": a["status"]} for a in everyone],
        hide_index=True,
    )


def _ancestry(name: str, everyone: list[dict[str, Any]], depth: int = 10) -> str:
    """The chain of seats behind one agent: whom it replaced, whom that one replaced, … (and bred parents)."""
    by_name = {a["name"]: a for a in everyone}
    by_id = {a["agent_id"]: a for a in everyone}
    lines: list[str] = []
    a: dict[str, Any] | None = by_name.get(name)
    while a is not None and len(lines) < depth:
        kind = f"bred from {' × '.join(md(p) for p in a['parents'])}" if a["parents"] else md(a["origin"])
        life = "founding roster" if a["born_epoch"] == 0 else f"entered after epoch {a['born_epoch']}"
        fate = "alive" if a["status"] == "alive" else f"eliminated in epoch {a['died_epoch']}"
        verb = "" if not lines else "which replaced "
        lines.append(f"{len(lines) + 1}. {verb}**{md(a['name'])}** ({kind}) — {life}, {fate}")
        a = by_id.get(a["replaced_agent_id"]) if a["replaced_agent_id"] is not None else None
    if a is not None:
        lines.append(f"{len(lines) + 1}. … and further back")
    return "\n".join(lines)


def section_judging(v: View) -> None:
    """The judging audit of the whole book: what would make its verdicts untrustworthy, said plainly."""
    st.subheader("Judging health")
    b = v.book
    judging = data.judging(v.url, Book(b["book_id"], b["name"], b["topic"], None, b["config"]), v.key)
    health = judging.health
    if health.agreement.chance_level:
        st.error("The judges agree no better than chance: this book's verdicts are a lottery, whatever the ratings "
                 "say. Use a stronger judge model.")  # fmt: skip
    if not health.votes:
        st.info("No votes yet: the audit appears after the first epoch.")
        return
    if health.warnings:
        for warning in health.warnings:
            st.warning(md(warning.text))  # names agents: shown as text
    else:
        st.success(f"No judging problem found in {health.ballots} ballots over {health.epochs} epoch(s).")
    cols = st.columns(4)
    alpha = health.agreement.alpha
    cols[0].metric("Agreement (Krippendorff's α)", "—" if alpha is None else f"{alpha:.2f}",
                   help="1 = judges agree fully, 0 = no better than chance.")  # fmt: skip
    first, chance = health.position.first_win_share, health.position.chance_share
    cols[1].metric("First-shown draft wins", "—" if first is None else f"{first:.0%}",
                   help=None if chance is None else f"By chance: {chance:.0%} of ballots.")  # fmt: skip
    conf = judging.last_verdict_confidence
    cols[2].metric("Last verdict confidence", "—" if conf is None else f"{conf:.0%}",
                   help="Share of ballot bootstraps in which the last winner stays the winner.")  # fmt: skip
    ties = health.ties
    tied = "—" if ties.ranked_share is None else f"{ties.ranked_share:.0%}"
    cols[3].metric("Ballots scoring every draft alike", tied, help=_ties_help(ties))
    if judging.flagged:
        st.markdown("**Drafts that addressed the reviewers** (neutralised before review, never eligible to win)")
        st.dataframe([{"epoch": f.epoch_no, "author": f.author, "flags": ", ".join(f.flags)}
                      for f in judging.flagged], hide_index=True)  # fmt: skip
    if health.blocs:
        st.markdown("**Voters who favour each other's drafts**")
        st.dataframe([to_json(p) for p in health.blocs], hide_index=True)
    if health.judges:
        st.markdown("**Judges' offsets** (mean score minus the others' on the same drafts)")
        st.dataframe([to_json(j) for j in health.judges], hide_index=True)


def _ties_help(ties: Ties) -> str:
    """The tied-ballots metric's help: both readings and what breaks a tie."""
    if not ties.ballots or ties.written_share is None:
        return "No ballot with two votes or more yet."
    return (
        f"{ties.ranked} of {ties.ballots} ballots give every draft the same score as the verdict ranks them; "
        f"as written (integer insight scores) {ties.written} ({ties.written_share:.0%}). A tied ballot tells the "
        "drafts apart by nothing. G-Eval readings (the judge's probability-weighted score) break such ties where "
        "the backend gives log-probabilities."
    )


RENDER = {
    "Voting matrix": section_votes,
    "Chopping block": section_chopping,
    "Ratings": section_ratings,
    "Epoch": section_epoch,
    "The book": section_book,
    "Lineage": section_lineage,
    "Judging health": section_judging,
}


# ---------------------------------------------------------------------------------------------- page
def authorised() -> bool:
    """Whether this session may see the deck: no token is set (loopback), or the page was opened with
    ``?token=<SPACETIME_DECK_TOKEN>`` in this browser session (compared in constant time)."""
    expected = os.environ.get(ENV_TOKEN, "")
    if not expected or st.session_state.get(AUTHORISED) is True:
        return True
    given = st.query_params.get("token", "")
    if hmac.compare_digest(given.encode(), expected.encode()):
        st.session_state[AUTHORISED] = True
        return True
    return False


def main() -> None:
    st.set_page_config(page_title="The Epistemic Deck · Space Time", page_icon="📖", layout="wide")
    if not authorised():  # before anything touches the database
        st.error("This deck needs its access token: open the address `spacetime deck` printed (…/?token=…).")
        st.stop()
    started = time.perf_counter()
    try:
        url = data.database_url()
    except SpacetimeError as exc:
        st.title("The Epistemic Deck")
        st.error(str(exc))
        return
    try:
        reader = data.reader(url)
        top = reader.version(None)
    except SpacetimeError as exc:
        st.title("The Epistemic Deck")
        st.error(str(exc))
        with st.sidebar:
            live(url, None, None)
        return
    books = data.books(url, top.books)
    if not books:
        st.title("The Epistemic Deck")
        st.info(
            "**No book yet.** Start one with `spacetime run` (for example `spacetime run --epochs 3`). "
            "This page watches the database and shows the book as soon as its first epoch is committed."
        )
        with st.sidebar:
            live(url, None, top)
        return
    names = [b["name"] for b in books]
    with st.sidebar:
        st.markdown("## The Epistemic Deck")
        if len(names) > 1:
            st.selectbox("Book", names, key="book", bind="query-params")
        chosen = st.session_state.get("book") if len(names) > 1 else names[0]
    book = next((b for b in books if b["name"] == chosen), books[0])
    version = reader.version(book["book_id"])
    with st.sidebar:
        epoch_no = choose_epoch(version.latest_epoch)
        st.divider()
        live(url, book["book_id"], version)
        st.caption("Read-only view of the Space Time store.")
    view = View(url, reader, book, version, epoch_no)

    st.title(md(book["name"]))
    st.caption(md(book["topic"]))
    ov = data.overview(url, view.book_id, view.key)
    m = st.columns([1, 1, 1, 1, 2])
    m[0].metric("Epochs", version.latest_epoch)
    m[1].metric("Chapters", ov.chapters)
    m[2].metric("Living agents", ov.alive)
    m[3].metric("Eliminated", ov.eliminated)
    m[4].metric("Leader", md(ov.leader) if ov.leader else "—")
    tabs = st.tabs(SECTIONS, key="section", bind="query-params")
    for label, tab in zip(SECTIONS, tabs, strict=True):
        with tab:
            if tab.open is not False:
                try:
                    RENDER[label](view)
                except SpacetimeError as exc:
                    st.error(str(exc))
    st.session_state["_render_s"] = time.perf_counter() - started


main()
