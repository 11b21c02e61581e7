"""The Reaper daemon on the real embedded PostgreSQL with a scripted model: live operator swaps (from a second
process, through the real CLI), the reserve pool, breeding, memory, the archive, resume after a kill."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from spacetime.adapters.llm.fake import HashEmbedder, ScriptedCall, ScriptedModel
from spacetime.adapters.pg import reports
from spacetime.adapters.pg.store import Store
from spacetime.book import BookConfig, load_book
from spacetime.cli.render import status_json
from spacetime.engine.director import Director
from spacetime.engine.events import AgentEntered, EpochStarted, SuccessionFailed
from spacetime.engine.models import ModelPool
from spacetime.engine.reaper import Reaper
from spacetime.errors import ConfigError, ModelError, ModelHostCrashed, PersonaTaken
from spacetime.personas import builtin_personas
from spacetime.ports import Embedder
from spacetime.rules.breeding import BREED_TRIES
from spacetime.rules.memory import MAX_NOTES
from tests.engine.scripted import author_tag, tournament_responder

BRED = [
    ("Astrobiologist", "Astrobiology", "Looks for life between the stars with patient, careful wonder."),
    ("Cartographer", "Cartography", "Maps every idea onto terrain, borders and scale; precise and visual."),
    ("Linguist", "Linguistics", "Hears how words shape thought; dissects phrases, loves etymology."),
    ("Oceanographer", "Oceanography", "Thinks in currents, depths and slow circulation; calm and vast."),
    ("Geologist", "Geology", "Reads deep time in layered rock; unhurried sentences, solid evidence."),
    ("Epidemiologist", "Epidemiology", "Counts cases, rates and confounders; sober, careful with causes."),
    ("Architect", "Architecture", "Builds arguments like buildings: load, light, proportion and use."),
    ("Neuroscientist", "Neuroscience", "Explains minds by circuits and experiments; curious and exact."),
]

_DRAFT = re.compile(r"Draft (Anonymous_\w+?)(?: \(excerpt\))?:\n<<DRAFT-[0-9a-f]+>>\n(.*?)\n<<END-", re.DOTALL)


def is_breed_call(call: ScriptedCall) -> bool:
    return call.json_schema is not None and "voice" in call.json_schema.get("properties", {})


def responder(
    *,
    seed: int = 0,
    favourite: str | None = None,
    hated: str | None = None,
    bred: Sequence[tuple[str, str, str]] = BRED,
    bad_every: int = 3,
    before_ballot: Callable[[ScriptedCall], Awaitable[None]] | None = None,
    before_breed: Callable[[ScriptedCall], Awaitable[None]] | None = None,
) -> Callable[[ScriptedCall], Awaitable[str]]:
    """Drafts and ballots like ``tournament_responder``; ballots give ``favourite``'s draft a 10 (so it never
    loses); breed calls answer from ``bred`` in order, every ``bad_every``-th answer a duplicate of a parent
    (rejected by validation, then retried)."""
    rng = random.Random(seed)
    base = tournament_responder(random.Random(seed + 1))
    answers = iter(bred)
    calls = {"breed": 0}

    async def respond(call: ScriptedCall) -> str:
        if is_breed_call(call):
            if before_breed is not None:
                await before_breed(call)
            calls["breed"] += 1
            if bad_every and calls["breed"] % bad_every == 0:
                parent = re.search(r"^- (\S+) \(", call.prompt, re.MULTILINE)
                name = parent.group(1) if parent else "Physicist"
                return json.dumps({"name": name, "discipline": "Physics", "voice": "Same as before, really the same."})
            name, discipline, voice = next(answers, ("Zoologist", "Zoology", "Animals, behaviour and fieldwork."))
            return json.dumps({"name": name, "discipline": discipline, "voice": voice})
        if call.json_schema is not None:
            if before_ballot is not None:
                await before_ballot(call)
            aliases = list(call.json_schema["properties"])
            texts = dict(_DRAFT.findall(call.prompt))
            votes = {}
            for alias in aliases:
                text = texts.get(alias, "")
                score = rng.randint(2, 8)
                if favourite is not None and author_tag(favourite) in text:
                    score = 10
                if hated is not None and author_tag(hated) in text:
                    score = 1
                votes[alias] = {"insight_score": score, "rationale": f"{alias} is clear, says the Physicist."}
            return json.dumps(votes)
        return base(call)

    return respond


def book_config(*, reserve: Sequence[str] = ("Cyberneticist", "Philosopher"), order: str = "queue",
                seed: int = 1, max_tokens: int = 64) -> BookConfig:  # fmt: skip
    config = load_book(None)
    library = {p.name: p for p in builtin_personas()}
    return dataclasses.replace(config, reserve=tuple(library[n] for n in reserve), reserve_order=order,  # type: ignore[arg-type]
                               seed=seed, max_tokens=max_tokens)  # fmt: skip


async def make_director(
    store: Store,
    model: ScriptedModel,
    config: BookConfig,
    *,
    name: str = "book",
    embedder: Embedder | None = None,
    create: bool = True,
    reaper_options: dict[str, Any] | None = None,
    emit: Any = None,
) -> Director:
    if create:
        book = await store.create_book(name, config.topic, config.outline, config.to_json())
    else:
        found = await store.get_book(name)
        assert found is not None
        book = found
    await store.upsert_personas(config.roster + config.reserve)
    pool = ModelPool(config, prebuilt={"embedded": model}, prebuilt_embedder=embedder or HashEmbedder(dim=16))
    director = Director(store=store, book=book, config=config, models=pool, retry_waits_s=(0.0,))
    if emit is not None:
        director.emit = emit
    director.reaper = Reaper(store, book, config, director.seat_for, director.emit, models=pool,
                             **(reaper_options or {}))  # fmt: skip
    await director.setup()
    return director


def q(url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()  # type: ignore[arg-type]


def _cli_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACETIME_")}
    env["SPACETIME_DATABASE_URL"] = url
    return env


def _chapter_of(call: ScriptedCall) -> int:
    found = re.search(r"drafts for chapter (\d+)", call.prompt)
    return int(found.group(1)) if found else 0


class ConstantEmbedder:
    """Every text gets the same vector: every bred persona looks like a duplicate."""

    name = "constant-8"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0] + [0.0] * 7 for _ in texts]

    async def aclose(self) -> None:
        return None


# --------------------------------------------------------------------------- the "done when" scenario
async def test_six_epochs_two_reserve_four_bred_and_a_swap_from_a_second_terminal(
    store: Store, migrated_url: str
) -> None:
    swap_done = asyncio.Event()
    launched: list[asyncio.Task[None]] = []
    cli: dict[str, Any] = {}

    async def issue_swap() -> None:  # a second terminal: the real CLI in another process
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "spacetime", "swap", "--book", "six", "--out", "Physicist", "--in", "Historian",
            env=_cli_env(migrated_url), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        cli.update(code=proc.returncode, out=out.decode(), err=err.decode())
        swap_done.set()

    events: list[Any] = []

    def emit(event: Any) -> None:
        events.append(event)
        if isinstance(event, EpochStarted) and event.epoch_no == 3 and not launched:
            launched.append(asyncio.get_running_loop().create_task(issue_swap()))

    async def before_ballot(call: ScriptedCall) -> None:
        if _chapter_of(call) == 3:  # epoch 3 is judging while the operator types the swap
            await swap_done.wait()

    model = ScriptedModel(replies=responder(favourite="Physicist", before_ballot=before_ballot), name="embedded")
    director = await make_director(store, model, book_config(), name="six", emit=emit,
                                   reaper_options={"prep_grace_s": 5.0})  # fmt: skip
    reaper = director.reaper
    assert reaper is not None
    try:
        outcomes = await director.play(6)
    finally:
        await director.close()
    memories = reaper.memories()  # after close: the Reaper has noted epoch 6 (it does so off the loop)
    assert cli["code"] == 0, cli
    assert "queued: Physicist → Historian" in cli["out"]
    assert [o.epoch_no for o in outcomes] == [1, 2, 3, 4, 5, 6]  # the loop never stopped

    # roster size constant: 5 in every epoch, 5 alive at the end
    sizes = q(migrated_url, "SELECT epoch_no, cardinality(active_agent_ids) FROM simulation_epochs ORDER BY 1")
    assert sizes == [(e, 5) for e in range(1, 7)]
    agents = {r[0]: r[1:] for r in q(migrated_url, "SELECT a.name, a.status, a.born_epoch, a.died_epoch, "
                                                   "a.cause_of_death, p.origin, p.parents, r.name FROM agents a "
                                                   "JOIN personas p USING (persona_id) LEFT JOIN agents r "
                                                   "ON r.agent_id = a.replaced_agent_id")}  # fmt: skip
    assert sum(1 for a in agents.values() if a[0] == "alive") == 5
    assert sum(1 for a in agents.values() if a[3] == "lowest rating") == 6  # 6 eliminations
    # the swap: issued during epoch 3, applied at the boundary after it, the newcomer plays from epoch 4
    assert agents["Physicist"][:4] == ("eliminated", 0, 3, "operator swap")
    assert agents["Historian"][1] == 3 and agents["Historian"][6] == "Physicist"
    assert q(migrated_url, "SELECT status, applied_epoch FROM swap_requests") == [("applied", 3)]
    played = q(migrated_url, "SELECT e.epoch_no FROM drafts d JOIN agents a USING (agent_id) JOIN simulation_epochs e "
                             "USING (epoch_id) WHERE a.name = 'Historian' ORDER BY 1")  # fmt: skip
    assert played[0][0] == 4  # (it may die later like anyone else)
    # the reserve entered first, in queue order; then 4 bred personas with their parents
    born = sorted((a[1], n) for n, a in agents.items() if a[1] > 0)
    assert [n for e, n in born if n in ("Cyberneticist", "Philosopher")] == ["Cyberneticist", "Philosopher"]
    assert agents["Cyberneticist"][1] == 1 and agents["Philosopher"][1] == 2
    bred = {n: a for n, a in agents.items() if a[4] == "bred"}
    assert len(bred) == 4 and sorted(a[1] for a in bred.values()) == [3, 4, 5, 6]
    for a in bred.values():
        assert 1 <= len(a[5]) <= 2 and all(p in agents for p in a[5])
    assert q(migrated_url, "SELECT count(*), count(embedding), count(*) FILTER (WHERE book_id IS NOT NULL) "
                           "FROM personas WHERE origin = 'bred'") == [(4, 4, 4)]  # fmt: skip
    sources = q(migrated_url, "SELECT kind, source, count(*) FROM reaper_events GROUP BY 1, 2 ORDER BY 1, 2")
    assert sources == [("elimination", "bred", 4), ("elimination", "reserve", 2), ("swap", "operator", 1)]
    entered = [e for e in events if isinstance(e, AgentEntered)]
    assert len(entered) == 7 and ("Historian", "Physicist") in [(e.name, e.replaced) for e in entered]

    # the archive: every dead agent, its memory intact (identical to agents.memory), its AutoGen state
    archive = q(migrated_url, "SELECT x.name, x.memory = a.memory, jsonb_array_length(x.memory), x.cause_of_death, "
                              "x.conversation ? 'llm_context', x.final_rating = a.rating FROM agent_archive x "
                              "JOIN agents a USING (agent_id)")  # fmt: skip
    assert len(archive) == 7
    for name, same, notes, cause, has_state, same_rating in archive:
        assert same and same_rating and has_state and notes >= 1, name
        assert cause == agents[name][3]
    physicist_notes = q(migrated_url, "SELECT memory FROM agent_archive WHERE name = 'Physicist'")[0][0]
    assert [n["epoch"] for n in physicist_notes] == [1, 2, 3]
    with pytest.raises(psycopg.errors.RaiseException):
        q(migrated_url, "DELETE FROM agent_archive")  # append-only

    # memory: bounded, anonymized, in the living agents' prompts; gone for the dead
    living_ids = {r[0] for r in q(migrated_url, "SELECT agent_id FROM agents WHERE status = 'alive'")}
    assert set(memories) <= living_ids
    for notes in memories.values():
        assert 1 <= len(notes) <= MAX_NOTES
        for note in notes:
            assert "Anonymous_" not in note and "Physicist" not in note and "your draft is clear" in note
    last_prompts = [c.prompt for c in model.calls if c.json_schema is None and "Give chapter 6 " in c.prompt]
    assert sum("Notes on your earlier drafts" in p for p in last_prompts) >= 4

    # the lineage in `status --json`
    status = status_json(await reports.book_status(store, await _book(store, "six")))
    lineage = {e["name"]: e for e in status["lineage"]}
    assert len(lineage) == 12
    assert lineage["Historian"]["via"] == "swap" and lineage["Historian"]["replaced"] == "Physicist"
    assert all(lineage[n]["parents"] and lineage[n]["origin"] == "bred" for n in bred)

    # how long the loop waited on the Reaper at each boundary
    stalls = reaper.stats.stalls_ms
    assert len(stalls) == 5  # boundaries 1-5; after epoch 6 the newcomer is stored but nobody waits for it
    print(f"\nscripted 6 epochs: loop blocked per boundary (ms): {[round(s, 2) for s in stalls]}, "
          f"median {statistics.median(stalls):.2f} ms (of which epoch_committed "
          f"{statistics.median(reaper.stats.committed_ms):.2f} ms)")
    assert statistics.median(stalls) < 100
    logged = q(migrated_url, "SELECT count(*), count(stall_ms) FROM reaper_events WHERE prepared_s >= 0")
    assert logged == [(7, 6)]


async def _book(store: Store, name: str) -> Any:
    book = await store.get_book(name)
    assert book is not None
    return book


# --------------------------------------------------------------------------- breeding
async def test_breeding_never_blocks_a_boundary_and_keeps_the_slow_child(store: Store, migrated_url: str) -> None:
    async def slow_breed(call: ScriptedCall) -> None:
        await asyncio.sleep(0.6)

    async def slow_epoch_two(call: ScriptedCall) -> None:
        if _chapter_of(call) == 2:
            await asyncio.sleep(1.2)

    model = ScriptedModel(replies=responder(before_breed=slow_breed, before_ballot=slow_epoch_two, bad_every=0),
                          name="embedded")  # fmt: skip
    director = await make_director(store, model, book_config(reserve=()))
    try:
        await director.play(2)
        stalls = list(director.reaper.stats.stalls_ms)  # type: ignore[union-attr]
    finally:
        await director.close()
    rows = q(migrated_url, "SELECT r.epoch_no, r.source, a.name, p.parents FROM reaper_events r JOIN agents a "
                           "ON a.agent_id = r.in_agent_id JOIN personas p USING (persona_id) ORDER BY 1")  # fmt: skip
    # epoch 1 ended before the model finished breeding: a deterministic child, no wait
    assert rows[0][1] == "bred-fallback" and rows[0][3]
    assert rows[0][2].split("-")[0].split(" ")[0] in {p for p in rows[0][3]}
    # a slow child was kept and seated at the next death: one of the model's answers to the two preparations in
    # flight (which of them finishes first depends on the machine's load)
    assert rows[1][1] == "bred" and rows[1][2] in {name for name, _, _ in BRED[: 2 * BREED_TRIES]}
    assert max(stalls) < 100, stalls


async def test_rejected_answers_fall_back_to_a_deterministic_child(store: Store, migrated_url: str) -> None:
    model = ScriptedModel(replies=responder(bad_every=1), name="embedded")
    director = await make_director(store, model, book_config(reserve=()), reaper_options={"prep_grace_s": 5.0})
    try:
        await director.play(2)
    finally:
        await director.close()
    rows = q(migrated_url, "SELECT r.source, r.note, a.name, p.discipline, p.parents FROM reaper_events r "
                           "JOIN agents a ON a.agent_id = r.in_agent_id JOIN personas p USING (persona_id) "
                           "ORDER BY r.epoch_no")  # fmt: skip
    assert [r[0] for r in rows] == ["bred-fallback", "bred-fallback"]
    for _, note, name, _, parents in rows:
        assert "is taken" in note and parents
        assert name.split(" ")[0].split("-")[0] in parents or any(name.startswith(p) for p in parents)
    assert len({r[2] for r in rows}) == 2 and len({r[3] for r in rows}) == 2
    breed_calls = [c for c in model.calls if is_breed_call(c)]
    assert len(breed_calls) >= 2 * BREED_TRIES  # (more are in flight for the next deaths when the book stops)


async def test_near_duplicate_personas_are_rejected_by_embedding(store: Store, migrated_url: str) -> None:
    model = ScriptedModel(replies=responder(bad_every=0), name="embedded")
    director = await make_director(store, model, book_config(reserve=()), embedder=ConstantEmbedder(),
                                   reaper_options={"prep_grace_s": 5.0})  # fmt: skip
    try:
        await director.play(1)
    finally:
        await director.close()
    (source, note), = q(migrated_url, "SELECT source, note FROM reaper_events")
    assert source == "bred-fallback" and "near-duplicate" in note


# --------------------------------------------------------------------------- reserve orders
async def test_diverse_order_picks_the_persona_farthest_from_the_living_roster(store: Store) -> None:
    import numpy as np

    reserve = ("Cyberneticist", "Philosopher", "Biologist", "Historian", "Artist")
    config = book_config(reserve=reserve, order="diverse")
    embedder = HashEmbedder(dim=16)
    model = ScriptedModel(replies=responder(), name="embedded")
    director = await make_director(store, model, config, embedder=embedder, reaper_options={"prep_grace_s": 5.0})
    try:
        await director.play(1)
    finally:
        await director.close()
    seated = {a.name for a in await store.agents(director.book.book_id, alive_only=True)}
    founders = [p for p in config.roster]
    living = np.array([embedder.vector(p.description) for p in founders], dtype=np.float32)

    def nearest_distance(p: Any) -> float:
        v = np.array(embedder.vector(p.description), dtype=np.float32)
        sims = living @ v / (np.linalg.norm(living, axis=1) * np.linalg.norm(v))
        return float(1 - sims.max())

    expected = max(config.reserve, key=lambda p: (round(nearest_distance(p), 5), [-ord(c) for c in p.name]))
    newcomer = seated - {p.name for p in founders}
    assert newcomer == {expected.name}


async def test_random_order_is_seeded(store: Store) -> None:
    reserve = ("Cyberneticist", "Philosopher", "Biologist", "Historian", "Artist")
    picks = []
    for run in range(2):
        model = ScriptedModel(replies=responder(), name="embedded")
        director = await make_director(store, model, book_config(reserve=reserve, order="random", seed=5),
                                       name=f"random-{run}", reaper_options={"prep_grace_s": 5.0})  # fmt: skip
        try:
            await director.play(2)
        finally:
            await director.close()
        picks.append([a.name for a in await store.agents(director.book.book_id) if a.born_epoch > 0])
    assert picks[0] == picks[1] and len(set(picks[0])) == 2 and set(picks[0]) <= set(reserve)


# --------------------------------------------------------------------------- swaps
async def test_bad_swaps_are_refused_and_nothing_is_queued(store: Store, migrated_url: str) -> None:
    model = ScriptedModel(replies=responder(), name="embedded")
    director = await make_director(store, model, book_config(), name="bad")
    try:
        await director.play(1)
    finally:
        await director.close()
    book = await _book(store, "bad")
    await store.upsert_personas(builtin_personas())
    dead = q(migrated_url, "SELECT name FROM agents WHERE status = 'eliminated'")[0][0]
    cases = [
        ("Nobody", "Historian", "has no agent named 'Nobody'"),
        (dead, "Historian", "already dead"),
        ("Financier" if dead != "Financier" else "Politician", "Shaman", "unknown persona 'Shaman'"),
        ("Financier" if dead != "Financier" else "Politician", "Mathematician" if dead != "Mathematician"
         else "Technologist", "already alive"),
        ("Financier" if dead != "Financier" else "Politician", dead, "never revived"),
    ]  # fmt: skip
    for out, incoming, needle in cases:
        with pytest.raises(ConfigError, match=needle):
            await store.swaps.enqueue(book, out, incoming)
    assert q(migrated_url, "SELECT count(*) FROM swap_requests") == [(0,)]
    alive = [r[0] for r in q(migrated_url, "SELECT name FROM agents WHERE status = 'alive' ORDER BY name")]
    await store.swaps.enqueue(book, alive[0], "Historian")
    with pytest.raises(ConfigError, match="already pending"):
        await store.swaps.enqueue(book, alive[0], "Artist")
    with pytest.raises(ConfigError, match="already pending"):
        await store.swaps.enqueue(book, alive[1], "Historian")
    assert q(migrated_url, "SELECT count(*) FROM swap_requests") == [(1,)]


async def test_a_swap_whose_agent_dies_first_is_rejected_and_the_book_goes_on(
    store: Store, migrated_url: str
) -> None:
    queued: list[Any] = []

    async def during_judgment(call: ScriptedCall) -> None:
        if _chapter_of(call) == 1 and not queued:
            queued.append("Financier → Historian")
            await store.swaps.enqueue(await _book(store, "doomed"), "Financier", "Historian")
            await asyncio.sleep(0.2)  # let the NOTIFY reach the Reaper's listener

    await store.upsert_personas(builtin_personas())
    model = ScriptedModel(replies=responder(hated="Financier", before_ballot=during_judgment), name="embedded")
    director = await make_director(store, model, book_config(), name="doomed")
    try:
        outcomes = await director.play(2)
    finally:
        await director.close()
    assert [o.loser for o in outcomes][0] == "Financier" and len(outcomes) == 2
    (status, reason), = q(migrated_url, "SELECT status, reason FROM swap_requests")
    assert status == "rejected" and "Financier died before the swap" in reason
    assert q(migrated_url, "SELECT count(*) FROM agents WHERE name = 'Historian'") == [(0,)]
    assert q(migrated_url, "SELECT count(*) FROM agents WHERE status = 'alive'") == [(5,)]


async def test_swap_queued_before_the_run_applies_before_the_first_burst(store: Store, migrated_url: str) -> None:
    model = ScriptedModel(replies=responder(), name="embedded")
    config = book_config()
    book = await store.create_book("early", config.topic, config.outline, config.to_json())
    await store.upsert_personas(builtin_personas())
    for persona in config.roster:
        await store.add_agent(book.book_id, persona, rating=1500.0, born_epoch=0)
    await store.swaps.enqueue(book, "Technologist", "Economist")
    director = await make_director(store, model, config, name="early", create=False)
    try:
        await director.play(1)
    finally:
        await director.close()
    first = q(migrated_url, "SELECT a.name FROM drafts d JOIN agents a USING (agent_id)")
    assert "Economist" in {r[0] for r in first} and "Technologist" not in {r[0] for r in first}
    assert q(migrated_url, "SELECT died_epoch, cause_of_death FROM agents WHERE name = 'Technologist'") == [
        (0, "operator swap")
    ]


# --------------------------------------------------------------------------- resume
async def test_resumed_book_restores_roster_and_memories(store: Store, migrated_url: str) -> None:
    config = book_config()
    model = ScriptedModel(replies=responder(), name="embedded")
    first = await make_director(store, model, config, name="resume")
    try:
        await first.play(3)
    finally:
        await first.close()
    before = first.reaper.memories()  # type: ignore[union-attr]
    alive = {r[0] for r in q(migrated_url, "SELECT agent_id FROM agents WHERE status = 'alive'")}
    assert len(before) == 4 and set(before) < alive  # the newcomer seated after epoch 3 has no notes yet

    second = await make_director(store, model, config, name="resume", create=False)
    try:
        assert second.reaper.memories() == before  # type: ignore[union-attr]
        assert {s.agent.agent_id for s in second.seats.values()} == alive
    finally:
        await second.close()

    # notes the stopped process had not saved are rebuilt from the stored epochs: the very same notes
    q(migrated_url, "UPDATE agents SET memory = '[]' WHERE status = 'alive' RETURNING 1")
    third = await make_director(store, model, config, name="resume", create=False)
    try:
        assert third.reaper.memories() == before  # type: ignore[union-attr]
    finally:
        await third.close()
    assert q(migrated_url, "SELECT count(*) FROM agents WHERE status = 'alive' AND memory <> '[]'") == [(4,)]


async def test_a_death_without_a_newcomer_is_topped_up_on_resume(store: Store, migrated_url: str) -> None:
    config = book_config()
    model = ScriptedModel(replies=responder(), name="embedded")
    first = await make_director(store, model, config, name="topup")
    try:
        await first.play(1)
    finally:
        await first.close()
    # as if the process died between a commit and the newcomer's INSERT
    (gone,) = q(migrated_url, "UPDATE agents SET status = 'eliminated', died_epoch = 1, cause_of_death = "
                              "'lowest rating' WHERE name = 'Mathematician' AND status = 'alive' RETURNING agent_id")
    second = await make_director(store, model, config, name="topup", create=False)
    try:
        assert len(second.seats) == 4
        await second.play(1)
    finally:
        await second.close()
    assert q(migrated_url, "SELECT cardinality(active_agent_ids) FROM simulation_epochs WHERE epoch_no = 2") == [(5,)]
    assert q(migrated_url, "SELECT count(*) FROM agents WHERE replaced_agent_id = %s", gone[0]) == [(1,)]
    assert q(migrated_url, "SELECT count(*) FROM agent_archive WHERE agent_id = %s", gone[0]) == [(1,)]
    assert q(migrated_url, "SELECT count(*) FROM agents WHERE status = 'alive'") == [(5,)]


KILLED_RUN = """
import asyncio, dataclasses, random, sys
from spacetime.engine.director import Director
from spacetime.engine.models import ModelPool
from spacetime.adapters.llm.fake import HashEmbedder, ScriptedModel
from spacetime.adapters.pg.store import open_store
from tests.engine.test_reaper import book_config, responder

async def main(url):
    config = book_config()
    async with open_store(url) as store:
        book = await store.create_book("killed", config.topic, config.outline, config.to_json())
        await store.upsert_personas(config.roster + config.reserve)
        model = ScriptedModel(replies=responder(), name="embedded", delay_s=0.05)
        pool = ModelPool(config, prebuilt={"embedded": model}, prebuilt_embedder=HashEmbedder(dim=16))
        director = Director(store=store, book=book, config=config, models=pool)
        await director.setup()
        await director.play(100)

asyncio.run(main(sys.argv[1]))
"""


async def test_killed_and_resumed_book_restores_roster_and_memories(
    store: Store, migrated_url: str, tmp_path: Any
) -> None:
    script = tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN)
    root = str(Path(__file__).parents[2])
    proc = subprocess.Popen([sys.executable, str(script), migrated_url], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**_cli_env(migrated_url), "PYTHONPATH": root})  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode() if proc.stderr else "run ended")  # type: ignore[union-attr]
            done = q(migrated_url, "SELECT count(*) FROM simulation_epochs")[0][0]
            if done >= 3:
                break
            await asyncio.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # no cleanup at all
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    committed = q(migrated_url, "SELECT count(*) FROM simulation_epochs")[0][0]
    assert committed >= 3
    model = ScriptedModel(replies=responder(), name="embedded")
    director = await make_director(store, model, book_config(), name="killed", create=False)
    try:
        await director.play(1)
        seats = dict(director.seats)
    finally:
        await director.close()
    memories = director.reaper.memories()  # type: ignore[union-attr]
    assert len(seats) == 4  # the loser of the resumed epoch left; its newcomer waits for the next burst
    assert q(migrated_url, "SELECT count(*) FROM agents WHERE status = 'alive'") == [(5,)]
    assert q(migrated_url, "SELECT cardinality(active_agent_ids) FROM simulation_epochs WHERE epoch_no = %s",
             committed + 1) == [(5,)]  # fmt: skip
    # every survivor that played the last epochs remembers them all (caught up if the kill lost them)
    played = q(migrated_url, "SELECT d.agent_id, array_agg(e.epoch_no ORDER BY e.epoch_no) FROM drafts d "
                             "JOIN simulation_epochs e USING (epoch_id) GROUP BY 1")  # fmt: skip
    epochs_of = dict(played)
    for agent_id in seats:
        expected = [e for e in epochs_of.get(agent_id, []) if e > committed + 1 - MAX_NOTES]
        notes = memories.get(agent_id, ())
        assert [int(n.split(":")[0].removeprefix("Epoch ")) for n in notes] == expected
    assert q(migrated_url, "SELECT count(*) FROM agents a LEFT JOIN agent_archive x USING (agent_id) "
                           "WHERE a.status = 'eliminated' AND x.agent_id IS NULL") == [(0,)]  # fmt: skip


async def test_two_books_in_one_process_share_one_listener_and_keep_their_swaps_apart(
    store: Store, migrated_url: str
) -> None:
    await store.upsert_personas(builtin_personas())
    asked: list[str] = []

    async def during_judgment(call: ScriptedCall) -> None:
        if _chapter_of(call) == 1 and not asked:
            asked.append("right")
            await store.swaps.enqueue(await _book(store, "right"), "Technologist", "Economist")
            await asyncio.sleep(0.3)

    left = await make_director(store, ScriptedModel(replies=responder(favourite="Technologist"), name="embedded"),
                               book_config(), name="left")  # fmt: skip
    right = await make_director(store, ScriptedModel(replies=responder(favourite="Technologist",
                                                                       before_ballot=during_judgment),
                                                     name="embedded"), book_config(), name="right")  # fmt: skip
    try:
        hub = store.swaps.listener  # the store's one listener, joined by both books' Reapers
        assert set(hub.subscribers) == {left.book.book_id, right.book.book_id} and hub.task is not None
        listening = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ^@ 'LISTEN'"
        for _ in range(200):  # the listener connects in the background
            if q(migrated_url, listening) != [(0,)]:
                break
            await asyncio.sleep(0.05)
        assert q(migrated_url, listening) == [(1,)]  # one listening connection for the two books
        await asyncio.gather(left.play(2), right.play(2))
    finally:
        await left.close()
        await right.close()
    assert not store.swaps.listener.subscribers and store.swaps.listener.task is None
    rows = q(migrated_url, "SELECT b.name, a.name, a.born_epoch FROM agents a JOIN books b USING (book_id) "
                           "WHERE a.name IN ('Economist', 'Technologist') ORDER BY 1, 2")  # fmt: skip
    assert rows == [("left", "Technologist", 0), ("right", "Economist", 1), ("right", "Technologist", 0)]
    assert q(migrated_url, "SELECT count(*) FROM agents a JOIN books b USING (book_id) WHERE b.name = 'right' "
                           "AND a.status = 'alive'") == [(5,)]  # fmt: skip


async def test_persona_name_taken_by_another_book_is_not_reused(store: Store, migrated_url: str) -> None:
    import uuid as _uuid

    from spacetime.domain import Agent
    from spacetime.rules.breeding import Plan, PlanKind, bred_persona

    config = book_config()
    book = await store.create_book("names", config.topic, config.outline, config.to_json())
    await store.upsert_personas(config.roster)
    plan = Plan(PlanKind.MUTATION, (config.roster[0],))
    first = bred_persona({"name": "Astrobiologist", "discipline": "Astrobiology", "voice": "a b c d e f"}, plan)
    await store.roster.insert(book.book_id, Agent(_uuid.uuid4(), first, 1500.0, born_epoch=1))
    other = await store.create_book("names-2", config.topic)
    twin = bred_persona({"name": "Astrobiologist", "discipline": "Star Biology", "voice": "g h i j k l"}, plan)
    with pytest.raises(PersonaTaken):
        await store.roster.insert(other.book_id, Agent(_uuid.uuid4(), twin, 1500.0, born_epoch=1))
    assert q(migrated_url, "SELECT count(*) FROM agents WHERE book_id = %s", other.book_id) == [(0,)]
    assert q(migrated_url, "SELECT discipline FROM personas WHERE name = 'Astrobiologist'") == [("Astrobiology",)]


# --------------------------------------------------------------------------- a dead model host
async def test_a_model_host_crash_while_breeding_ends_the_run_once_and_keeps_the_book(
    store: Store, migrated_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Breeding calls go to the same model host as drafts: its death there is not swallowed as a failed breed (a
    fallback child and a warning) but ends the run with the host's one error; the committed epoch stays."""

    async def host_dies(call: ScriptedCall) -> None:
        raise ModelHostCrashed("the embedded model's host process (pid 1) was killed by SIGSEGV while generating")

    model = ScriptedModel(replies=responder(before_breed=host_dies), name="embedded")
    director = await make_director(store, model, book_config(reserve=()), reaper_options={"prep_grace_s": 5.0})
    try:
        with pytest.raises(ModelHostCrashed, match="SIGSEGV"):
            await director.play(3)
    finally:
        await director.close()
    assert any(is_breed_call(c) for c in model.calls)
    assert q(migrated_url, "SELECT epoch_no FROM simulation_epochs") == [(1,)]  # nothing of epoch 2 was written
    reaper_lines = [r for r in caplog.records if r.name == "spacetime.reaper" and r.levelno >= logging.WARNING]
    assert reaper_lines == []  # the run's one error line says it; the Reaper adds nothing


async def test_a_successor_that_cannot_be_seated_never_stops_the_book(store: Store, migrated_url: str) -> None:
    """Seating the first loser's successor fails (the database refused it five times, say): the book plays on with
    four agents, says so once, archives the loser all the same, and the missing seat is filled at the next
    boundary."""
    heard: list[object] = []
    model = ScriptedModel(replies=responder(bad_every=0), name="embedded")
    director = await make_director(store, model, book_config(), emit=heard.append)
    succession = director.reaper._succession  # type: ignore[union-attr]
    real_seat = succession.seat
    failed = {"n": 0}

    async def seat_once_failing(epoch_no: int, replaced: object, *, grace_s: float) -> object:
        if failed["n"] == 0:
            failed["n"] += 1
            raise ModelError("the Reaper could not seat a newcomer after 5 tries")
        return await real_seat(epoch_no, replaced, grace_s=grace_s)  # type: ignore[arg-type]

    succession.seat = seat_once_failing  # type: ignore[method-assign]
    try:
        await director.play(3)
    finally:
        await director.close()
    sizes = q(migrated_url, "SELECT epoch_no, cardinality(active_agent_ids) FROM simulation_epochs ORDER BY 1")
    assert sizes == [(1, 5), (2, 4), (3, 5)]  # short-handed for one epoch, then topped up
    said = [e for e in heard if isinstance(e, SuccessionFailed)]
    assert said == [SuccessionFailed("the Reaper could not seat a newcomer after 5 tries", 4)]
    archived = q(migrated_url, "SELECT count(*) FROM agent_archive")[0][0]
    assert archived == 3  # every loser archived, the first one too
    assert q(migrated_url, "SELECT count(*) FROM agents WHERE status = 'alive'") == [(5,)]
