"""Store behaviour against the real embedded PostgreSQL: the one-transaction epoch write, vectors, status."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest

from spacetime.adapters.pg import reports
from spacetime.adapters.pg.jobs import JobState
from spacetime.adapters.pg.store import Store
from spacetime.book import parse_book
from spacetime.cli.render import status_json
from spacetime.domain import CallKind, Usage, UsageLine
from spacetime.engine.hosting import Host
from spacetime.engine.models import SharedModels
from spacetime.errors import BookBusy, ConfigError, StoreError
from tests.factories import NAMES, make_epoch, persona

TABLES = ("simulation_epochs", "peer_votes", "drafts", "ballots", "ratings", "chapters", "forfeits")


async def _book_with_agents(store: Store, n: int = 7, name: str = "b1"):  # type: ignore[no-untyped-def]
    book = await store.create_book(name, "What is time?")
    agents = [await store.add_agent(book.book_id, persona(nm), rating=1500.0, born_epoch=0) for nm in NAMES[:n]]
    return book, agents


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]


async def test_epoch_write_commits_everything_once(store: Store, migrated_url: str) -> None:
    book, agents = await _book_with_agents(store)
    record = make_epoch(book.book_id, 1, agents)
    epoch_id = await store.write_epoch(record)
    counts = _counts(migrated_url)
    assert counts == {"simulation_epochs": 1, "peer_votes": 42, "drafts": 7, "ballots": 7, "ratings": 7,
                      "chapters": 1, "forfeits": 0}
    with psycopg.connect(migrated_url) as conn:
        row = conn.execute("SELECT winner_agent_id, loser_agent_id, active_agent_ids FROM simulation_epochs "
                           "WHERE epoch_id = %s", (epoch_id,)).fetchone()
        assert row[0] == agents[-1].agent_id and row[1] == agents[0].agent_id and len(row[2]) == 7
        voters = conn.execute("SELECT DISTINCT voter_agent FROM peer_votes").fetchall()
        assert {v[0] for v in voters} == set(NAMES[:7])
        expected = conn.execute("SELECT voter_agent_id, insight_score, expected_score FROM peer_votes "
                                "WHERE expected_score IS NOT NULL").fetchall()
        assert len(expected) == 6 and all(v == agents[0].agent_id and e == min(s + 0.25, 10) for v, s, e in expected)
    alive = await store.agents(book.book_id, alive_only=True)
    assert agents[0].agent_id not in {a.agent_id for a in alive} and len(alive) == 6
    chapters = await store.chapters(book.book_id)
    assert [c.position for c in chapters] == [1] and chapters[0].agent_name == agents[-1].name


async def test_epoch_write_is_atomic(store: Store, migrated_url: str) -> None:
    book, agents = await _book_with_agents(store)
    # the votes violate the 1..10 CHECK: they are written after the epoch row and the drafts
    with pytest.raises((psycopg.Error, StoreError)):
        await store.write_epoch(make_epoch(book.book_id, 1, agents, bad_score=True))
    assert _counts(migrated_url) == dict.fromkeys(TABLES, 0)
    alive = await store.agents(book.book_id, alive_only=True)
    assert len(alive) == 7 and all(a.rating == 1500.0 for a in alive)


async def test_same_epoch_twice_is_refused_and_leaves_first(store: Store, migrated_url: str) -> None:
    book, agents = await _book_with_agents(store, 5)
    await store.write_epoch(make_epoch(book.book_id, 1, agents))
    with pytest.raises(StoreError, match="already recorded"):
        await store.write_epoch(make_epoch(book.book_id, 1, agents))
    assert _counts(migrated_url)["simulation_epochs"] == 1


async def test_vector_round_trip_and_similarity(store: Store) -> None:
    book, agents = await _book_with_agents(store, 5)
    for n in (1, 2, 3):
        await store.write_epoch(make_epoch(book.book_id, n, agents, dim=16))
    async with store.pool.connection() as conn:
        row = await (await conn.execute("SELECT embedding FROM chapters WHERE position = 2")).fetchone()
    vec = row[0].to_numpy()
    assert vec.shape == (16,)
    found = await store.similar_chapters(book.book_id, list(vec), "test-hash", limit=1, before_position=10)
    assert [c.position for c in found] == [2]
    none = await store.similar_chapters(book.book_id, list(vec), "another-model", limit=3, before_position=10)
    assert none == []


async def test_agents_are_never_revived_and_books_unique(store: Store) -> None:
    book, agents = await _book_with_agents(store, 5)
    with pytest.raises(ConfigError, match="never revived"):
        await store.add_agent(book.book_id, agents[0].persona, rating=1500.0, born_epoch=3)
    with pytest.raises(ConfigError, match="already exists"):
        await store.create_book("b1", "again")


async def test_status_reports_roster(store: Store) -> None:
    book, agents = await _book_with_agents(store, 5)
    await store.write_epoch(make_epoch(book.book_id, 1, agents))
    status = status_json(await reports.book_status(store, book))
    assert status["epochs"] == 1 and status["chapters"] == 1
    assert {a["name"] for a in status["roster"]} == set(NAMES[:5])
    dead = [a for a in status["roster"] if a["status"] == "eliminated"]
    assert [a["name"] for a in dead] == [agents[0].name] and dead[0]["died_epoch"] == 1


async def test_book_lock_refuses_second_player(store: Store) -> None:
    book, _ = await _book_with_agents(store, 3)
    async with store.book_lock(book):
        with pytest.raises(BookBusy, match="being played"):
            async with store.book_lock(book):
                pass
    async with store.book_lock(book):  # released
        pass


async def test_usage_is_written_with_its_epoch_once_and_summed_per_book(store: Store, migrated_url: str) -> None:
    book, agents = await _book_with_agents(store)
    one = (UsageLine(CallKind.DRAFT, "vllm", Usage(7, 2100, 700, 1421)),
           UsageLine(CallKind.BALLOT, "vllm", Usage(7, 9000, 4000, 600)),
           UsageLine(CallKind.EMBEDDING, "embedded", Usage(1, 350, 0, 0)))  # fmt: skip
    await store.write_epoch(dataclasses.replace(make_epoch(book.book_id, 1, agents), usage=one))
    # a replay of epoch 1 (a durable epoch finding itself committed would not even try): refused whole
    with pytest.raises(StoreError, match="already recorded"):
        await store.write_epoch(dataclasses.replace(make_epoch(book.book_id, 1, agents), usage=one))
    two = (UsageLine(CallKind.DRAFT, "vllm", Usage(6, 1800, 900, 1200)),
           UsageLine(CallKind.REASK, "vllm", Usage(1, 1300, 0, 80)),
           UsageLine(CallKind.BREEDING, "vllm", Usage(3, 600, 0, 300)))  # fmt: skip
    await store.write_epoch(dataclasses.replace(make_epoch(book.book_id, 2, agents[1:]), usage=two))
    with psycopg.connect(migrated_url) as conn:
        assert conn.execute("SELECT count(*) FROM epoch_usage").fetchone() == (6,)
    totals = await store.book_usage(book.book_id)
    by = {(line.kind, line.endpoint): line.usage for line in totals}
    assert by[(CallKind.DRAFT, "vllm")] == Usage(13, 3900, 1600, 2621)  # both epochs, counted once each
    assert sum((line.usage for line in totals), Usage()) == sum((line.usage for line in one + two), Usage())
    usage = await reports.book_usage(store, book)
    assert [e.epoch_no for e in usage.epochs] == [1, 2]
    assert sum((e.spent.usage for e in usage.epochs), Usage()) == usage.spent.usage
    assert usage.spent.cost is None  # no price in this book's settings
    assert (await reports.book_usage(store, book)).budget is None
    priced = parse_book({"endpoints": {"vllm": {"kind": "openai", "model": "m", "price": {"input": 1, "output": 2}}},
                         "model": "vllm", "budget": {"max_cost": 5}}).to_json()  # fmt: skip
    book = dataclasses.replace(book, config=priced)  # the same epochs, read as a priced book with a budget
    shaped = status_json(await reports.book_status(store, book))["usage"]
    assert shaped["budget"] == {"max_tokens_total": None, "max_cost": 5.0}  # type: ignore[index]
    every = sum((line.usage for line in one + two), Usage())
    assert shaped["cost"] == pytest.approx(((every.prompt_tokens - 350) * 1 + (every.completion_tokens) * 2) / 1e6)  # type: ignore[index]
    assert shaped["by_endpoint"]["embedded"]["cost"] is None  # type: ignore[index]
    assert isinstance(shaped, dict) and shaped["total_tokens"] == usage.spent.usage.total_tokens
    assert shaped["last_epoch"]["epoch"] == 2 and shaped["by_kind"]["breeding"]["calls"] == 3  # type: ignore[index]


async def test_a_fleet_book_that_reached_its_budget_is_done_instead_of_going_on(store: Store) -> None:
    config = parse_book({"budget": {"max_tokens_total": 1000}}).to_json()
    book = await store.create_book("fleet-book", "What is time?", None, config)
    agents = [await store.add_agent(book.book_id, persona(nm), rating=1500.0, born_epoch=0) for nm in NAMES[:5]]
    await store.jobs.submit(book.book_id, 10)
    host = Host(store, SharedModels())
    under = (UsageLine(CallKind.DRAFT, "embedded", Usage(5, 600, 0, 399)),)
    await store.write_epoch(dataclasses.replace(make_epoch(book.book_id, 1, agents), usage=under))
    assert await host.keep_going(book.book_id, 1)  # 999 of 1,000 tokens: it goes on
    more = (UsageLine(CallKind.BALLOT, "embedded", Usage(4, 1, 0, 0)),)
    await store.write_epoch(dataclasses.replace(make_epoch(book.book_id, 2, agents[1:]), usage=more))
    assert not await host.keep_going(book.book_id, 2)
    job = await store.jobs.get(book.book_id)
    assert job is not None and job.state is JobState.DONE
    assert await host.budget_reached(book.book_id, 2) == (
        'book "fleet-book": token budget reached (1,000 of 1,000 tokens) after epoch 2')
