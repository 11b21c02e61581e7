"""``--json`` in-process on a real database: the keys (and kinds of values) scripts rely on, from the typed reports
of ``spacetime.adapters.pg.reports``."""

from __future__ import annotations

import asyncio
import json

from spacetime.adapters.pg import reports
from spacetime.adapters.pg.store import open_store
from spacetime.book import load_book
from spacetime.domain import NewcomerSource, Persona, PersonaOrigin, ReaperEvent, ReplacementKind
from tests.cli.conftest import Invoke

AGENT_KEYS = ["agent_id", "name", "discipline", "status", "rating", "born_epoch", "died_epoch", "cause_of_death"]
ROSTER_KEYS = [*AGENT_KEYS, "model", "replaced", "origin", "parents"]
LINEAGE_KEYS = [*AGENT_KEYS, "replaced", "replaced_agent_id", "via", "source", "origin", "parents", "stall_ms"]
USAGE_KEYS = ["calls", "prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens", "cost"]
PERSONA_KEYS = ["name", "discipline", "voice", "origin", "parents", "bred_in", "state", "died_epoch"]


async def _fill(url: str) -> None:
    """Book 'b': the built-in founders; the Financier died at epoch 1 (the Cyberneticist took its seat from the
    reserve, a logged elimination), the Politician at epoch 2 (a bred persona took it, with no logged event);
    a swap Physicist → Historian is pending."""
    async with open_store(url, max_size=2) as store:
        config = load_book(None)
        book = await store.create_book("b", config.topic, config.outline, config.to_json())
        await store.upsert_personas(config.roster + config.reserve)
        seated = {p.name: await store.add_agent(book.book_id, p, rating=1500.0, born_epoch=0) for p in config.roster}
        async with store.pool.connection() as conn:
            for name, epoch in (("Financier", 1), ("Politician", 2)):
                await conn.execute("UPDATE agents SET status = 'eliminated', died_epoch = %s, rating = 1487.123, "
                                   "cause_of_death = 'lowest rating' WHERE agent_id = %s",
                                   (epoch, seated[name].agent_id))  # fmt: skip
        cyber = await store.add_agent(book.book_id, config.reserve[0], rating=1500.0, born_epoch=1,
                                      replaced_agent_id=seated["Financier"].agent_id)  # fmt: skip
        bred = Persona("Chronoeconomist", "Economics of time", "Dry.", "You are…", PersonaOrigin.BRED,
                       ("Physicist", "Financier"))  # fmt: skip
        await store.add_agent(book.book_id, bred, rating=1500.0, born_epoch=2,
                              replaced_agent_id=seated["Politician"].agent_id)  # fmt: skip
        await store.reaper_log.record(book.book_id, [ReaperEvent(
            1, ReplacementKind.ELIMINATION, seated["Financier"].agent_id, cyber.agent_id, NewcomerSource.RESERVE, 0.5,
            1.23456)])  # fmt: skip
        await store.swaps.enqueue(book, "Physicist", "Historian")


def test_status_personas_and_lineage_json(invoke: Invoke, migrated_url: str) -> None:
    asyncio.run(_fill(migrated_url))
    env = {"SPACETIME_DATABASE_URL": migrated_url}

    every = invoke("status", "--json", env=env)
    assert every.exit_code == 0, every.output
    assert list(json.loads(every.stdout)) == ["books"]
    status = json.loads(invoke("status", "--book", "b", "--json", env=env).stdout)
    assert json.loads(every.stdout)["books"] == [status]
    assert list(status) == ["book", "topic", "epochs", "chapters", "fleet", "roster", "lineage", "judging", "usage"]
    usage = status["usage"]  # no epoch played: nothing used, nothing priced, no budget
    assert list(usage) == [*USAGE_KEYS, "by_kind", "by_endpoint", "epochs", "last_epoch", "budget"]
    assert (usage["total_tokens"], usage["calls"], usage["cost"], usage["epochs"], usage["last_epoch"],
            usage["budget"]) == (0, 0, None, [], None, None)  # fmt: skip
    assert status["fleet"] is None  # played by `spacetime run`, never submitted to a fleet
    assert (status["book"], status["epochs"], status["chapters"], status["judging"]) == ("b", 0, 0, None)
    assert all(list(a) == ROSTER_KEYS for a in status["roster"])
    assert [a["status"] for a in status["roster"]] == ["alive"] * 5 + ["eliminated"] * 2  # the living first
    dead = status["roster"][-1]
    assert isinstance(dead["agent_id"], str) and dead["rating"] == 1487.12 and dead["died_epoch"] in (1, 2)
    assert status["lineage"] == json.loads(invoke("lineage", "--book", "b", "--json", env=env).stdout)

    lineage = {e["name"]: e for e in status["lineage"]}
    assert all(list(e) == LINEAGE_KEYS for e in lineage.values())
    assert lineage["Physicist"]["via"] == "founder" and lineage["Physicist"]["source"] == "builtin"
    cyber = lineage["Cyberneticist"]
    assert (cyber["via"], cyber["source"], cyber["stall_ms"], cyber["replaced"]) == (
        "elimination", "reserve", 1.235, "Financier")  # fmt: skip
    assert cyber["replaced_agent_id"] == lineage["Financier"]["agent_id"]
    chrono = lineage["Chronoeconomist"]
    assert (chrono["via"], chrono["source"], chrono["origin"], chrono["parents"]) == (
        "replacement", "bred", "bred", ["Physicist", "Financier"])  # fmt: skip

    personas = json.loads(invoke("personas", "--book", "b", "--json", env=env).stdout)
    assert all(list(p) == PERSONA_KEYS for p in personas)
    state = {p["name"]: p["state"] for p in personas}
    assert (state["Physicist"], state["Financier"], state["Historian"], state["Philosopher"]) == (
        "alive", "dead", "pending", "reserve")  # fmt: skip
    assert {p["name"]: p["bred_in"] for p in personas}["Chronoeconomist"] == "b"
    assert all(p["state"] is None for p in json.loads(invoke("personas", "--json", env=env).stdout))

    tree = invoke("lineage", "--book", "b", env=env)
    assert tree.exit_code == 0 and "bred from Physicist × Financier" in tree.stdout, tree.output
    assert "dies at epoch 1 (lowest rating) · 1487.1" in tree.stdout


def test_the_swap_list_and_the_reaper_log_are_typed(migrated_url: str) -> None:
    asyncio.run(_fill(migrated_url))

    async def read() -> tuple[list[reports.SwapEntry], list[reports.ReaperLogEntry]]:
        async with open_store(migrated_url, max_size=2) as store:
            book = await store.get_book("b")
            assert book is not None
            return await reports.swaps(store, book.book_id), await reports.reaper_events(store, book.book_id)

    swaps, log = asyncio.run(read())
    assert [(s.status, s.out_name, s.in_name, s.applied_epoch) for s in swaps] == [
        (reports.SwapStatus.PENDING, "Physicist", "Historian", None)]  # fmt: skip
    assert [(e.epoch_no, e.kind, e.out_name, e.in_name, e.source, e.stall_ms) for e in log] == [
        (1, ReplacementKind.ELIMINATION, "Financier", "Cyberneticist", NewcomerSource.RESERVE, 1.23456)]  # fmt: skip
