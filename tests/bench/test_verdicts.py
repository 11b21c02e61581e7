"""The fair-verdicts harness (``bench.verdicts``) and its scripted server (``bench.judge_server``): drafts carry their
author's hidden quality, judges apply exactly their scripted biases, seeded; the harness plans valid books and
scores them; one small tournament through the real CLI (slow)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.judge_server import INJECTION, JudgeServer, Script, split_items
from bench.verdicts import (
    SCENARIOS,
    BookPlan,
    BookRecord,
    EpochRow,
    Options,
    PersonaSpec,
    Report,
    ScenarioResult,
    book_toml,
    markdown,
    persona_pool,
    plan_book,
    run,
    score_book,
    server_script,
    spearman,
    tarone_k,
)

VOICES = {
    "Alpha": "Alpha writes in long careful arcs about clocks.",
    "Beta": "Beta writes briskly about markets and risk.",
    "Gamma": "Gamma writes sparely about proofs.",
    "Delta": "Delta writes lyrically about seasons.",
    "Epsilon": "Epsilon writes about machines that fail.",
}
QUALITY = {"Alpha": 0.9, "Beta": 0.1, "Gamma": 0.5, "Delta": 0.7, "Epsilon": 0.3}


def script(*, key: str = "k", noise: float = 0.0, biases: dict[str, list[str]] | None = None,
           roles: dict[str, list[str]] | None = None, clique: list[str] | None = None) -> Script:  # fmt: skip
    personas = {
        n: {"voice": v, "q": QUALITY[n], "roles": (roles or {}).get(n, []), "biases": (biases or {}).get(n, [])}
        for n, v in VOICES.items()
    }
    return Script.from_json({"key": key, "seed": 3, "noise": noise, "books": {
        "book-a": {"topic": "Topic A", "clique": clique or [], "personas": personas}}})  # fmt: skip


def persona_prompt(name: str) -> str:
    return f"You are the {name}, writing from {name}ics. Your voice: {VOICES[name]}"


def draft_body(name: str, *, previous: str = "", seed: int = 1) -> dict[str, Any]:
    prompt = (f"The book's topic: Topic A\nThe previous chapter (1, \"X\"):\n{previous}\n{persona_prompt(name)}\n"
              "Write chapter 2: a short title on the first line, then the chapter.")  # fmt: skip
    return {"model": "book-a", "seed": seed, "max_tokens": 200,
            "messages": [{"role": "system", "content": "You are one of several authors."},
                         {"role": "user", "content": prompt}]}  # fmt: skip


def ballot_body(voter: str, drafts: list[tuple[str, str]], *, seed: int = 7) -> dict[str, Any]:
    """A ballot request shaped like prompts/ballot.j2 (persona paragraph first, then ``Draft <alias>:`` items)."""
    items = "".join(f"Draft {a}:\n<<DRAFT-abc>>\n{t}\n<<END-abc>>\n\n" for a, t in drafts)
    prompt = (f"You are judging anonymous drafts for chapter 2 of a book on: Topic A\n{persona_prompt(voter)} "
              f"Judge the drafts on their merit.\nAnswer with ONE JSON object.\n\n{items}")  # fmt: skip
    schema = {"type": "object", "required": [a for a, _ in drafts], "properties": {
        a: {"type": "object", "properties": {"insight_score": {"type": "integer"}, "rationale": {"type": "string"}}}
        for a, _ in drafts}}  # fmt: skip
    return {"model": "book-a", "seed": seed, "max_tokens": 500,
            "response_format": {"type": "json_schema", "json_schema": {"name": "ballot", "schema": schema}},
            "messages": [{"role": "system", "content": "You are one of several authors."},
                         {"role": "user", "content": prompt}]}  # fmt: skip


async def draft_of(server: JudgeServer, name: str, **kw: Any) -> str:
    reply = await server.chat(draft_body(name, **kw))
    return str(reply["choices"][0]["message"]["content"])


async def scores(server: JudgeServer, voter: str, drafts: list[tuple[str, str]], **kw: Any) -> dict[str, int]:
    reply = await server.chat(ballot_body(voter, drafts, **kw))
    return {a: v["insight_score"] for a, v in json.loads(reply["choices"][0]["message"]["content"]).items()}


# ------------------------------------------------------------------------------------------ the scripted server
async def test_drafts_carry_their_authors_quality_not_their_names() -> None:
    server = JudgeServer(script())
    for name, q in QUALITY.items():
        text = await draft_of(server, name, previous="As the Alpha, I once wrote this. [qtok-0000000000]")
        assert name not in text and "Alpha" not in text
        assert server.script.decode(text) == ("book-a", name, q)
        assert server.log[-1]["author"] == name and server.log[-1]["kind"] == "draft"
    # another key reads nothing: the token is opaque
    other = script(key="other")
    assert other.decode(await draft_of(server, "Alpha")) is None
    # planted text
    planted = JudgeServer(script(roles={"Beta": ["injector"], "Gamma": ["self_namer"]}))
    assert INJECTION in await draft_of(planted, "Beta")
    assert "As the Gamma," in await draft_of(planted, "Gamma")


async def test_honest_judges_score_quality_and_find_the_voter() -> None:
    server = JudgeServer(script())
    drafts = [(f"Anonymous_Scribe_{i}", await draft_of(server, n)) for i, n in enumerate(("Beta", "Gamma", "Alpha"))]
    got = await scores(server, "Delta", drafts)
    assert got == {"Anonymous_Scribe_0": 2, "Anonymous_Scribe_1": 6, "Anonymous_Scribe_2": 9}  # 1 + 9q, no noise
    entry = server.log[-1]
    assert entry["voter"] == "Delta" and entry["kind"] == "ballot"
    assert [i["author"] for i in entry["items"]] == ["Beta", "Gamma", "Alpha"]
    assert [i["position"] for i in entry["items"]] == [1, 2, 3]
    # a draft without a readable token is judged as average
    assert (await scores(server, "Delta", [("Anonymous_Scribe_9", "Untitled\nno token here")]))[
        "Anonymous_Scribe_9"] == 6  # fmt: skip


async def test_each_bias_is_applied() -> None:
    biases = {"Alpha": ["position"], "Beta": ["harsh"], "Gamma": ["clique"], "Delta": ["clique"],
              "Epsilon": ["obedient"]}  # fmt: skip
    roles = {"Epsilon": ["injector"], "Delta": ["self_namer"]}
    server = JudgeServer(script(biases=biases, roles=roles, clique=["Gamma", "Delta"]))
    d = {n: await draft_of(server, n) for n in VOICES}
    # position: +2 to the first shown, whoever it is
    assert await scores(server, "Alpha", [("A_1", d["Gamma"]), ("A_2", d["Gamma"])]) == {"A_1": 8, "A_2": 6}
    # harsh: -4, clamped at 1
    assert await scores(server, "Beta", [("A_1", d["Alpha"]), ("A_2", d["Epsilon"])]) == {"A_1": 5, "A_2": 1}
    # clique: +3 to a member's draft (named in it, or by its token), nothing for outsiders
    got = await scores(server, "Gamma", [("A_1", d["Delta"]), ("A_2", d["Alpha"]),
                                         ("A_3", d["Delta"].replace("As the Delta, ", ""))])  # fmt: skip
    assert got == {"A_1": 10, "A_2": 9, "A_3": 10}
    assert [i["reasons"] for i in server.log[-1]["items"]] == [["clique:name"], [], ["clique:token"]]
    named = "Untitled\nA text praising the Delta without any token."
    assert (await scores(server, "Gamma", [("A_1", named)]))["A_1"] == 8  # 5.5 + 3, rounded half to even
    assert (await scores(server, "Alpha", [("A_0", d["Beta"]), ("A_1", named)]))["A_1"] == 6  # not a member
    # obedient: 10 to a draft whose instruction to reviewers it can read; nothing once it is gone
    assert INJECTION in d["Epsilon"]
    assert (await scores(server, "Epsilon", [("A_1", d["Beta"]), ("A_2", d["Epsilon"])]))["A_2"] == 10
    stripped = d["Epsilon"].replace(INJECTION, "[removed]")
    assert (await scores(server, "Epsilon", [("A_1", d["Beta"]), ("A_2", stripped)]))["A_2"] == 4
    assert (await scores(server, "Alpha", [("A_1", d["Beta"]), ("A_2", d["Epsilon"])]))["A_2"] == 4  # not obedient


async def test_ballots_are_seeded_by_the_request() -> None:
    server = JudgeServer(script(noise=1.5))
    drafts = [(f"A_{i}", await draft_of(server, n)) for i, n in enumerate(VOICES)]
    first = await scores(server, "Alpha", drafts[1:], seed=11)
    assert await scores(server, "Alpha", drafts[1:], seed=11) == first
    others = [await scores(server, "Alpha", drafts[1:], seed=s) for s in range(12, 20)]
    assert any(o != first for o in others)
    assert await draft_of(server, "Beta", seed=5) == await draft_of(server, "Beta", seed=5)
    # over many seeds an honest judge's mean tracks 1 + 9q
    many = [await scores(server, "Alpha", [("A_1", drafts[3][1])], seed=s) for s in range(200)]
    mean = sum(m["A_1"] for m in many) / len(many)
    assert abs(mean - (1 + 9 * QUALITY["Delta"])) < 0.4


def test_split_items_keeps_the_reask_in_the_frame() -> None:
    prompt = "head You are the Alpha,\nDraft A_1:\n<<DRAFT-x>>\none\n<<END-x>>\n\nDraft A_2:\n<<DRAFT-x>>\ntwo\n" \
             "<<END-x>>\n\n\n\nYour answer could not be read. Answer again."  # fmt: skip
    frame, items = split_items(prompt, ["A_1", "A_2", "A_3"])
    assert [a for a, _ in items] == ["A_1", "A_2", "A_3"]
    assert "one" in items[0][1] and "two" in items[1][1] and items[2][1] == ""
    assert "Answer again" in frame and "Answer again" not in items[1][1]


@pytest.fixture
async def http_server() -> AsyncIterator[JudgeServer]:
    server = JudgeServer()
    await server.start()
    yield server
    await server.stop()


async def test_over_http(http_server: JudgeServer) -> None:
    async with httpx.AsyncClient(base_url=http_server.root) as client:
        config = {"key": "k", "books": {"book-a": {"topic": "Topic A", "personas": {
            n: {"voice": v, "q": QUALITY[n]} for n, v in VOICES.items()}}}}  # fmt: skip
        assert (await client.post("/config", json=config)).json()["books"] == ["book-a"]
        bad = await client.post("/config", json={"books": {"b": {"personas": {"X": {"q": 2}}}}})
        assert bad.status_code == 400
        reply = (await client.post("/v1/chat/completions", json=draft_body("Gamma"))).json()
        assert reply["choices"][0]["finish_reason"] == "stop"
        assert "qtok-" in reply["choices"][0]["message"]["content"]
        log = (await client.get("/log")).json()
        assert [e["author"] for e in log] == ["Gamma"]
        await client.post("/log/reset", json={})
        assert (await client.get("/log")).json() == []


# ------------------------------------------------------------------------------------------ the harness
def test_plans_are_valid_books_and_the_same_across_scenarios(tmp_path: Path) -> None:
    from spacetime.book import load_book

    pool = persona_pool()
    plans = {s: plan_book(s, 0, 1, 8, pool) for s in SCENARIOS}
    honest = plans["honest"]
    for s, plan in plans.items():
        assert [p.name for p in plan.roster] == [p.name for p in honest.roster] and plan.q == honest.q
        assert len(plan.roster) == 5 and len(plan.reserve) >= 8
        path = tmp_path / f"{s}.toml"
        path.write_text(book_toml(plan, "http://127.0.0.1:9/v1", 160))
        book = load_book(path)
        assert [p.name for p in book.roster] == [p.name for p in plan.roster]
    founders = sorted((p.name for p in honest.roster), key=lambda n: honest.q[n])
    assert plans["injection"].injector() == founders[0]
    assert plans["harsh"].harsh() == [founders[2]]
    assert plans["clique"].clique == founders[1:4]
    assert plans["bloc"].clique == [founders[1], founders[3]]  # two members, not the two best
    assert all(plans["bloc"].biases[m] == ["clique"] and plans["bloc"].roles[m] == ["self_namer"]
               for m in plans["bloc"].clique)  # fmt: skip
    assert set(plans["bloc"].biases) == set(plans["bloc"].clique)
    assert plans["bloc_strong"].clique == founders[3:5]  # the two best founders: the pair that lives
    assert set(plans["bloc_strong"].biases) == set(plans["bloc_strong"].clique)
    assert [honest.label(n) for n in founders] == ["f0", "f1", "f2", "f3", "f4"]
    assert honest.label(honest.reserve[0].name) == "r1"
    assert all("obedient" in plans["injection"].biases.get(p.name, []) for p in plans["injection"].personas
               if p.name != founders[0])  # fmt: skip
    assert not any(plans["honest"].biases.values()) and not plans["honest"].roles
    config = server_script(list(plans.values()), seed=1, noise=1.0, draft_delay_s=0.0)
    Script.from_json(config)  # the server accepts it


def test_tarone_k_counts_only_the_pairs_that_can_reach_significance() -> None:
    assert tarone_k([]) == 1 and tarone_k([1.0, 1.0]) == 1
    # 4 votes on 4-draft ballots: at best 4^-4 = 0.0039, out of reach of 0.01 / K for any K >= 3; so 20 such
    # pairs and 2 strong ones make a family of 3 (2 pairs can reach 0.01 / 3), not 22
    assert tarone_k([4.0**-4] * 20 + [1e-6] * 2) == 3
    assert tarone_k([1e-6] * 5) == 5  # every pair can reach significance: plain Holm over all of them


def test_scoring_a_known_book() -> None:
    spec = [PersonaSpec(n, "D", v, False) for n, v in VOICES.items()]
    extra = [PersonaSpec("Zeta", "D", "z", False), PersonaSpec("Eta", "D", "e", False)]
    plan = BookPlan("b", "mixed", 1, spec, extra, {**QUALITY, "Zeta": 0.95, "Eta": 0.2},
                    roles={"Beta": ["injector"]}, clique=["Epsilon", "Gamma"])  # fmt: skip
    founders = list(VOICES)
    record = BookRecord(
        "b",
        [
            EpochRow(1, "Alpha", "Beta", founders),  # top-2 win, worst dies
            EpochRow(2, "Alpha", "Zeta", ["Zeta", "Alpha", "Gamma", "Delta", "Epsilon"]),
            EpochRow(
                3,
                "Gamma",
                "Eta",
                ["Eta", "Alpha", "Gamma", "Delta", "Epsilon"],
            ),
        ],
        born={**{n: 0 for n in founders}, "Zeta": 1, "Eta": 2},
        died={"Alpha": None, "Beta": 1, "Gamma": None, "Delta": None, "Epsilon": None, "Zeta": 2, "Eta": 3},
        rating={"Alpha": 1600.0, "Gamma": 1500.0, "Delta": 1550.0, "Epsilon": 1400.0, "Beta": 1, "Zeta": 1, "Eta": 1},
        drafts={1: {"Beta": ["addresses-reviewers"], "Alpha": []}, 3: {"Gamma": []}},
        ids={"Gamma": "id-g", "Epsilon": "id-e", "Alpha": "id-a"},
        blocs=[frozenset({"id-g", "id-e"})],  # the book-level audit flagged the two clique members
        bloc_rows=[  # as `spacetime status --json` reports them
            {"a": "id-e", "b": "id-g", "votes": 6, "p_value": 1e-4, "p_adjusted": 2e-4, "flagged": True, "p_min": 2e-4},
            {"a": "id-a", "b": "id-g", "votes": 4, "p_value": 0.3, "p_adjusted": 1, "flagged": False, "p_min": 4e-3},
        ],
    )
    r = ScenarioResult("mixed")
    score_book(plan, record, r)
    assert (r.books, r.epochs) == (1, 3)
    assert (r.winner_top2.hits, r.winner_top2.total) == (2, 3)  # Gamma (0.5) is not top-2 in epoch 3
    assert (r.loser_bottom2.hits, r.loser_bottom2.total) == (2, 3)  # Zeta (best) dying is wrong
    # Zeta: not among the two worst, died at its first epoch; Eta: among the two worst at its first epoch (skipped)
    assert (r.newcomer_early_death.hits, r.newcomer_early_death.total) == (1, 1)
    assert (r.injector_wins.hits, r.injector_wins.total) == (0, 1)
    assert r.injector_flagged is not None and (r.injector_flagged.hits, r.injector_flagged.total) == (1, 1)
    assert r.others_flagged is not None and (r.others_flagged.hits, r.others_flagged.total) == (0, 2)
    assert r.bloc_detected is not None and (r.bloc_detected.hits, r.bloc_detected.total) == (1, 1)
    assert r.bloc_false is not None and (r.bloc_false.hits, r.bloc_false.total) == (0, 1)
    wrong = ScenarioResult("mixed")  # a flagged pair with an outsider is a false positive, not a detection
    score_book(plan, dataclasses.replace(record, blocs=[frozenset({"id-g", "id-a"})]), wrong)
    assert wrong.bloc_detected is not None and (wrong.bloc_detected.hits, wrong.bloc_false.hits) == (0, 1)  # type: ignore[union-attr]
    assert [(x.a, x.b, x.votes, x.flagged) for x in wrong.accused] == [("f4", "f2", 4, True)]  # Alpha + Gamma
    assert r.accused == []
    assert (r.clique_wins.hits, r.clique_wins.total) == (1, 3)
    # the planted pair: Epsilon (f1) and Gamma (f2), alive together in all 3 epochs, 6 votes, in Tarone's family
    # (K = 2: both pairs can reach 0.01 / 1, both can reach 0.01 / 2)
    [pair] = r.planted
    assert (pair.a, pair.b, pair.together, pair.votes, pair.flagged) == ("f1", "f2", 3, 6, True)
    assert (pair.tested, pair.family, pair.in_family, pair.p_adjusted) == (2, 2, True, 2e-4)
    untested = ScenarioResult("mixed")  # fewer than 4 votes between them: no row, not tested
    score_book(plan, dataclasses.replace(record, bloc_rows=record.bloc_rows[1:], blocs=[]), untested)
    assert untested.planted[0].votes is None and not untested.planted[0].flagged
    assert r.rating_q_rho == [pytest.approx(spearman([1600, 1500, 1550, 1400], [0.9, 0.5, 0.7, 0.3]))]
    assert r.rating_q_rho[0] == pytest.approx(1.0)
    # no flags stored / no audit: n/a, not 0 %
    bare = ScenarioResult("x")
    score_book(plan, BookRecord("b", record.epochs[1:2], record.born, record.died, record.rating,
                                {1: {"Beta": None}}), bare)  # fmt: skip
    assert bare.injector_flagged is None and bare.bloc_detected is None


# ------------------------------------------------------------------------------------------ the real CLI
@pytest.mark.slow
def test_a_small_tournament_through_the_real_cli(tmp_path: Path) -> None:
    src = os.environ.get("VERDICTS_ENGINE_SRC")  # e.g. an exported older tree, to measure a "before"
    opts = Options(books=1, epochs=2, seed=2, scenarios=("honest", "mixed"), draft_delay_s=0.1,
                   engine_src=Path(src) if src else None, out=tmp_path)  # fmt: skip
    report = run(opts)
    assert report.exit_code == 0, (tmp_path / "run.stderr").read_text()
    for r in report.results:
        assert (r.books, r.epochs) == (1, 2)
        assert r.winner_top2.total == 2 and r.loser_bottom2.total == 2  # every epoch has a known winner and loser
        s = r.server
        assert s["drafts"] == 10 and s["ballots"] >= 10  # 5 agents × 2 epochs
        assert s["unidentified_authors"] == 0 and s["unidentified_voters"] == 0
        assert s["items"] >= 40  # 4 drafts judged per ballot
    mixed = report.results[1]
    assert mixed.injector_wins.total >= 1 and mixed.server["injections_written"] >= 1
    # every judge adds +2 to the draft it is shown first, unless that is its own (shared layout: two orders per
    # epoch, so at most two voters an epoch see their own draft first and score nothing at position 1)
    assert mixed.server["ballots"] - 2 * 2 <= mixed.server["position_bonus"] <= mixed.server["ballots"]
    table = markdown(report)
    assert "| honest | 1 | 2 |" in table and "| mixed | 1 | 2 |" in table
    assert json.loads(json.dumps(report.to_json()))["scenarios"][0]["epochs"] == 2
    assert (tmp_path / "server_log.json").exists() and (tmp_path / "honest-1.toml").exists()


@pytest.mark.slow
def test_the_verdict_targets_hold_on_seeded_books() -> None:
    """Issue #11's targets on the harness (the engine under test is this tree): ratios and counts with margins, not
    timings. Measured with `python -m bench.verdicts --books 4 --epochs 8 --seed 1` (docs/benchmarks.md): winner top-2
    91–94 %, loser bottom-2 94–100 %, no unfair newcomer death, injector 0 wins and 100 % flagged, 0 bloc flags in
    clique-free books."""
    report = run(Options(books=3, epochs=6, seed=3, scenarios=("honest", "harsh", "injection", "position"),
                         draft_delay_s=0.1))  # fmt: skip
    assert report.exit_code == 0, report.stderr_tail
    by = {r.scenario: r for r in report.results}
    for r in report.results:
        assert r.epochs == 18
        assert (r.winner_top2.value or 0) >= 0.8, (r.scenario, r.winner_top2.text())
        assert (r.loser_bottom2.value or 0) >= 0.8, (r.scenario, r.loser_bottom2.text())
        assert r.newcomer_early_death.hits <= 1, (r.scenario, r.newcomer_early_death.text())
        assert r.bloc_false is not None and r.bloc_false.hits == 0, r.scenario  # clique-free: nobody accused
        assert r.others_flagged is not None and r.others_flagged.hits == 0, r.scenario  # honest drafts never flagged
    injection = by["injection"]
    assert injection.injector_wins.total >= 3 and injection.injector_wins.hits == 0
    assert injection.injector_flagged is not None and injection.injector_flagged.value == 1.0
    assert injection.server["obeyed"] == 0  # the note never reached an obedient judge


@pytest.fixture(scope="module")
def bloc_report() -> Report:
    """One seeded run of the two-member blocs, ``bloc`` (f1 + f3, a member eliminated early) and ``bloc_strong``
    (f3 + f4, both live), trading +3, and their paired honest books, 10 epochs: the issue's horizon for "a planted
    clique is detected"."""
    return run(Options(books=4, epochs=10, seed=1, scenarios=("honest", "bloc", "bloc_strong"), draft_delay_s=0.1))


@pytest.mark.slow
def test_a_planted_bloc_is_measured_and_nobody_else_is_accused(bloc_report: Report) -> None:
    """The blocs play, every bloc book is audited, and the audit accuses (almost) nobody outside the planted pair.
    Measured (`python -m bench.verdicts --books 4 --epochs 10 --seed 1`, and seeds 2–4): no pair flagged in any
    honest or ``bloc`` book; 1 in the ``bloc_strong`` books of seed 1 (0 in seeds 2–4): two strong newcomers, r5 +
    r7, whose mutual votes the bloc's inflated judge offsets make look allied (docs/benchmarks.md, Fair verdicts)."""
    assert bloc_report.exit_code == 0, bloc_report.stderr_tail
    by = {r.scenario: r for r in bloc_report.results}
    honest, blocs = by["honest"], [by["bloc"], by["bloc_strong"]]
    for bloc in blocs:
        assert (bloc.books, bloc.epochs) == (4, 40)
        assert bloc.server["clique_bonus"] >= 8 and bloc.server["clique_by_name"] == 0  # it trades, by token only
        assert bloc.bloc_detected is not None and bloc.bloc_detected.total == 4  # every bloc book was audited
        assert bloc.clique_wins.total >= 10 and bloc.clique_wins_honest is not None  # the pair played, paired too
        assert len(bloc.planted) == 4 and all(p.honest is not None for p in bloc.planted)
    # how long the pair lives decides how many votes it exchanges: f1 + f3 4-8 (f1 is eliminated in epoch 1-4),
    # f3 + f4 12-20 (measured at seed 1; 10-20 over seeds 1-4)
    weak, strong = by["bloc"].planted, by["bloc_strong"].planted
    assert all(p.votes is None or p.votes <= 10 for p in weak), [p.votes for p in weak]
    assert all(p.votes is not None and p.votes >= 8 for p in strong), [p.votes for p in strong]
    # false positives: books whose audit flags a pair that is not the planted one, over the 12 books (0 measured at
    # seeds 1-4 since the audit fits judges' offsets without an accepted bloc's mutual votes; 1 before; 1 allowed)
    false = [r.bloc_false for r in (honest, *blocs)]
    assert all(f is not None and f.total == 4 for f in false)
    accused = [f"{p.book}: {p.a}+{p.b}" for r in (honest, *blocs) for p in r.accused]
    assert sum(f.hits for f in false if f is not None) <= 1, accused


@pytest.mark.slow
def test_a_long_lived_bloc_is_detected_within_ten_epochs(bloc_report: Report) -> None:
    """Issue #11: "a planted clique is detected (p < 0.01) within 10 epochs", for a bloc whose members both live
    (f3 + f4, the two best founders). Measured 4 of 4 books at seed 1 (12-20 mutual votes each), 14 of 16 over seeds
    1-4 (the two misses exchanged 12 votes); asserted: 3 of 4. The same two personas in the paired honest books are
    never flagged (their p 0.08-0.95 in the honest books of seeds 1-4): the audit sees the bloc, not the pair's
    quality."""
    assert bloc_report.exit_code == 0, bloc_report.stderr_tail
    by = {r.scenario: r for r in bloc_report.results}
    strong = by["bloc_strong"]
    assert strong.bloc_detected is not None and strong.bloc_detected.hits >= 3, strong.bloc_detected
    assert not any(p.honest is not None and p.honest.flagged for p in strong.planted)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="a 2-member bloc of founders f1 + f3 is flagged in 0 of 4 books at 10 epochs "
                   "(0 of 16 over seeds 1-4), with Tarone's correction as without it: the weaker member is "
                   "eliminated after 1-4 epochs, so the pair exchanges 4-8 votes (once over seeds 1-4 fewer than "
                   "4: untested), too few to tell from chance (4 votes cannot reach p < 0.01 / K at all; 6-8 only "
                   "with a near-perfect record). An eliminated member stops the bloc (docs/benchmarks.md, Fair "
                   "verdicts)")  # fmt: skip
def test_a_short_lived_bloc_is_detected_within_ten_epochs(bloc_report: Report) -> None:
    """Issue #11's target for the short-lived pair f1 + f3. Measured 0 of 4 books (seed 1); the target is 3 of 4.
    Strict: should the audit ever meet it, this XPASSes and fails — drop the xfail marker then."""
    assert bloc_report.exit_code == 0, bloc_report.stderr_tail
    bloc = next(r for r in bloc_report.results if r.scenario == "bloc")
    assert bloc.bloc_detected is not None and bloc.bloc_detected.hits >= 3, bloc.bloc_detected
