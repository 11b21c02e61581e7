"""The only place with SQL for the tournament: books, personas, agents, epochs and their record.

An epoch is written by ``Store.write_epoch`` only, in ONE transaction with batched statements (executemany in
pipeline mode, COPY for the votes); a failure anywhere leaves nothing of that epoch behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from spacetime.adapters.pg.connect import APPLICATION_NAME, connect_error
from spacetime.adapters.pg.jobs import Jobs
from spacetime.adapters.pg.notes import AgentNotes
from spacetime.adapters.pg.personas import Personas
from spacetime.adapters.pg.reaper_log import ReaperLog
from spacetime.adapters.pg.repository import lost_database, store_errors
from spacetime.adapters.pg.roster import INSERT_PERSONA, Roster, persona_params
from spacetime.adapters.pg.rows import PERSONA_COLUMNS, agent_from_row, book_from_row, usage_from_row
from spacetime.adapters.pg.swaps import Swaps
from spacetime.domain import (
    Agent,
    AgentStatus,
    Book,
    Chapter,
    DraftScore,
    EpochRecord,
    EpochSummary,
    Persona,
    UsageLine,
)
from spacetime.errors import BookBusy, ConfigError, StoreError
from spacetime.rules.cost import merged


def _ts(value: float | None) -> datetime | None:
    # The spec's columns are TIMESTAMP (without time zone): store UTC.
    return None if value is None else datetime.fromtimestamp(value, tz=UTC).replace(tzinfo=None)


def _interval(score: DraftScore | None) -> tuple[float | None, float | None, float | None]:
    """``drafts.normalised_insight, ci_low, ci_high`` of a draft (``None`` for a draft no counted vote judged)."""
    if score is None or score.votes == 0:
        return None, None, None
    return score.insight, score.ci_low, score.ci_high


def _vec(values: Sequence[float] | None) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype=np.float32)


BOOK_USAGE = (
    "SELECT kind, endpoint, sum(calls) AS calls, sum(prompt_tokens) AS prompt_tokens, "
    "sum(cached_tokens) AS cached_tokens, sum(completion_tokens) AS completion_tokens "
    "FROM epoch_usage WHERE book_id = %(b)s GROUP BY kind, endpoint"
)
"""A book's usage summed by kind and endpoint (``USAGE_COLUMNS``; parameter ``b`` = the book id)."""

_AGENT_SELECT = f"""
SELECT a.agent_id, a.rating, a.sigma, a.elo, a.status, a.born_epoch, a.died_epoch, a.model, a.name, {PERSONA_COLUMNS}
FROM agents a JOIN personas p USING (persona_id)
"""


def _lock_key(book: Book) -> int:
    return uuid.UUID(str(book.book_id)).int & 0x7FFF_FFFF_FFFF_FFFF


class BookLocks:
    """Session advisory locks of several books on one connection (see ``Store.book_locks``)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn
        self._guard = asyncio.Lock()
        self._held: set[int] = set()

    @asynccontextmanager
    async def hold(self, book: Book) -> AsyncIterator[None]:
        """Hold ``book`` for this process; ``BookBusy`` when another process plays it."""
        key = _lock_key(book)
        async with self._guard:
            cur = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            got = (await cur.fetchone())[0]  # type: ignore[index]
            if got:
                self._held.add(key)
        if not got:
            raise BookBusy(
                f"book {book.name!r} is being played by another spacetime process: wait for it to finish "
                "or stop it, or run another --book"
            )
        try:
            yield
        finally:
            async with self._guard:
                if key in self._held:
                    self._held.discard(key)
                    with contextlib.suppress(psycopg.OperationalError):  # a lost session holds no lock anyway
                        await self._conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    async def release_all(self) -> None:
        async with self._guard:
            for key in list(self._held):
                await self._conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            self._held.clear()


@store_errors
class Store:
    """Async access to one database through a connection pool with pgvector types registered."""

    def __init__(self, pool: AsyncConnectionPool, url: str) -> None:
        self.pool = pool
        self.url = url
        # one concern each, over this pool: the agents and the archive, their notes, personas (embeddings,
        # rankings), operator swaps (and the one swap listener), the Reaper's log, fleet books' jobs
        self.roster = Roster(pool)
        self.notes = AgentNotes(pool)
        self.personas = Personas(pool)
        self.swaps = Swaps(pool, url)
        self.reaper_log = ReaperLog(pool)
        self.jobs = Jobs(pool)

    async def rows(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """All rows of one query as dicts."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, params)
            return await cur.fetchall()

    # ---------------------------------------------------------------- books
    async def create_book(
        self, name: str, topic: str, outline: str | None = None, config: dict[str, Any] | None = None
    ) -> Book:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "INSERT INTO books (name, topic, outline, config) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (name) DO NOTHING RETURNING book_id",
                    (name, topic, outline, json.dumps(config or {})),
                )
            ).fetchone()
        if row is None:
            raise ConfigError(f"a book named {name!r} already exists: pick another --book name")
        return Book(row[0], name, topic, outline, config or {})

    async def get_book(self, name: str) -> Book | None:
        found = await self.rows("SELECT * FROM books WHERE name = %s", (name,))
        if not found:
            return None
        return book_from_row(found[0])

    async def book_by_id(self, book_id: UUID) -> Book | None:
        found = await self.rows("SELECT * FROM books WHERE book_id = %s", (book_id,))
        return book_from_row(found[0]) if found else None

    async def list_books(self) -> list[Book]:
        return [book_from_row(r) for r in await self.rows("SELECT * FROM books ORDER BY created_at, name")]

    @asynccontextmanager
    async def book_lock(self, book: Book) -> AsyncIterator[None]:
        """Hold the book for one player: a second ``spacetime run`` of the same book gets a clear error."""
        async with self.book_locks() as locks, locks.hold(book):
            yield

    @asynccontextmanager
    async def book_locks(self) -> AsyncIterator[BookLocks]:
        """``book_lock`` for many books played by one process: their advisory locks live on ONE pooled connection
        (100 books hold one connection, not 100). ``async with locks.hold(book):`` inside."""
        async with self.pool.connection() as conn:
            locks = BookLocks(conn)
            try:
                yield locks
            finally:
                await locks.release_all()

    # ---------------------------------------------------------------- personas and agents
    async def upsert_personas(self, personas: Sequence[Persona], *, book_id: UUID | None = None) -> None:
        """Insert personas that are not stored yet (by name); existing ones are left as they are."""
        async with self.pool.connection() as conn, conn.cursor() as cur:
            # one order for every book: two books storing the same personas at once never deadlock
            ordered = sorted(personas, key=lambda p: p.name)
            await cur.executemany(INSERT_PERSONA, [persona_params(p, book_id) for p in ordered])

    async def add_agent(
        self,
        book_id: UUID,
        persona: Persona,
        *,
        rating: float,
        born_epoch: int,
        model: str | None = None,
        replaced_agent_id: UUID | None = None,
    ) -> Agent:
        """Seat a new living agent of ``persona`` (see ``Roster.insert``, the one agent INSERT)."""
        agent = Agent(uuid.uuid4(), persona, rating, AgentStatus.ALIVE, born_epoch, None, model)
        await self.roster.insert(book_id, agent, replaced_agent_id=replaced_agent_id)
        return agent

    async def agents(self, book_id: UUID, *, alive_only: bool = False) -> list[Agent]:
        sql = _AGENT_SELECT + " WHERE a.book_id = %s" + (" AND a.status = 'alive'" if alive_only else "")
        sql += " ORDER BY a.born_epoch, a.created_at, a.name"
        return [agent_from_row(r) for r in await self.rows(sql, (book_id,))]

    # ---------------------------------------------------------------- epochs
    async def epoch_count(self, book_id: UUID) -> int:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute("SELECT count(*) FROM simulation_epochs WHERE book_id = %s", (book_id,))
            ).fetchone()
        return int(row[0]) if row else 0

    async def epoch_summary(self, book_id: UUID, epoch_no: int) -> EpochSummary | None:
        rows = await self.rows(
            "SELECT e.epoch_id, w.name AS winner, l.name AS loser, "
            "EXTRACT(EPOCH FROM (e.end_time - e.start_time))::float8 AS wall_s, "
            "(SELECT count(*) FROM drafts d WHERE d.epoch_id = e.epoch_id) AS drafts, "
            "(SELECT count(*) FROM peer_votes v WHERE v.epoch_id = e.epoch_id) AS votes, "
            "(SELECT coalesce(sum(d.completion_tokens), 0) FROM drafts d WHERE d.epoch_id = e.epoch_id) AS tokens, "
            "(SELECT count(*) FROM forfeits f WHERE f.epoch_id = e.epoch_id) AS forfeits "
            "FROM simulation_epochs e JOIN agents w ON w.agent_id = e.winner_agent_id "
            "JOIN agents l ON l.agent_id = e.loser_agent_id WHERE e.book_id = %s AND e.epoch_no = %s",
            (book_id, epoch_no),
        )
        if not rows:
            return None
        r = rows[0]
        return EpochSummary(r["epoch_id"], r["winner"], r["loser"], float(r["wall_s"] or 0.0), int(r["drafts"]),
                            int(r["votes"]), int(r["tokens"]), int(r["forfeits"]))  # fmt: skip

    async def write_epoch(self, record: EpochRecord, *, cause_of_death: str = "lowest rating") -> UUID:
        """Commit a whole epoch in ONE transaction. Nothing is written if any part fails."""
        epoch_id = uuid.uuid4()
        decision = record.decision
        names = await self._names(record.active_agent_ids)
        score_by = {s.agent_id: s for s in record.scores}
        draft_by = {d.agent_id: d for d in record.drafts}
        winner = draft_by[decision.winner_id]
        try:
            async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                await cur.execute(
                    "INSERT INTO simulation_epochs (epoch_id, start_time, end_time, active_agent_ids, "
                    "winner_agent_id, loser_agent_id, book_id, epoch_no, verdict_confidence, audit) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        epoch_id,
                        _ts(record.start_time) or datetime.now(UTC).replace(tzinfo=None),
                        _ts(record.end_time),
                        list(record.active_agent_ids),
                        decision.winner_id,
                        decision.loser_id,
                        record.book_id,
                        record.epoch_no,
                        record.verdict_confidence,
                        None if record.audit is None else Jsonb(record.audit),
                    ),
                )
                if record.usage:
                    await cur.executemany(
                        "INSERT INTO epoch_usage (book_id, epoch_no, kind, endpoint, calls, prompt_tokens, "
                        "cached_tokens, completion_tokens) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                        "ON CONFLICT DO NOTHING",
                        [(record.book_id, record.epoch_no, line.kind.value, line.endpoint, line.usage.calls,
                          line.usage.prompt_tokens, line.usage.cached_tokens, line.usage.completion_tokens)
                         for line in merged(record.usage)],
                    )  # fmt: skip
                await cur.executemany(
                    "INSERT INTO drafts (epoch_id, agent_id, alias, text, prompt_tokens, completion_tokens, "
                    "finish_reason, truncated, latency_s, mean_insight, truncation_penalty, lateness_penalty, score, "
                    "votes_received, embedding, embedding_model, flags, normalised_insight, ci_low, ci_high) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            epoch_id,
                            d.agent_id,
                            record.aliases[d.agent_id],
                            d.text,
                            d.prompt_tokens,
                            d.completion_tokens,
                            d.finish_reason.value,
                            d.truncated,
                            d.latency_s,
                            score_by[d.agent_id].mean_insight if d.agent_id in score_by else None,
                            score_by[d.agent_id].truncation_penalty if d.agent_id in score_by else 0.0,
                            score_by[d.agent_id].lateness_penalty if d.agent_id in score_by else 0.0,
                            score_by[d.agent_id].total if d.agent_id in score_by else None,
                            score_by[d.agent_id].votes if d.agent_id in score_by else 0,
                            _vec(record.draft_embeddings.get(d.agent_id)),
                            record.embedding_model if d.agent_id in record.draft_embeddings else None,
                            list(d.flags),
                            *_interval(score_by.get(d.agent_id)),
                        )
                        for d in record.drafts
                    ],
                )
                async with cur.copy(
                    "COPY peer_votes (vote_id, epoch_id, voter_agent, target_agent, insight_score, latency_penalty, "
                    "rationale, voter_agent_id, target_agent_id, target_alias, excerpted, display_position, "
                    "expected_score) FROM STDIN"
                ) as copy:
                    for ballot in record.ballots:
                        for v in ballot.votes:
                            await copy.write_row(
                                (
                                    uuid.uuid4(),
                                    epoch_id,
                                    names[v.voter_id],
                                    names[v.target_id],
                                    v.insight_score,
                                    v.latency_penalty,
                                    v.rationale,
                                    v.voter_id,
                                    v.target_id,
                                    record.aliases[v.target_id],
                                    v.excerpted,
                                    v.position or None,
                                    v.expected_score,
                                )
                            )
                await cur.executemany(
                    "INSERT INTO ballots (epoch_id, voter_agent_id, status, raw, problems) VALUES (%s, %s, %s, %s, %s)",
                    [(epoch_id, b.voter_id, b.status.value, b.raw, list(b.problems)) for b in record.ballots],
                )
                if record.forfeits:
                    await cur.executemany(
                        "INSERT INTO forfeits (epoch_id, agent_id, reason) VALUES (%s, %s, %s)",
                        [(epoch_id, f.agent_id, f.reason) for f in record.forfeits],
                    )
                await cur.executemany(
                    "INSERT INTO ratings (epoch_id, agent_id, rating_before, rating_after, score, sigma_before, "
                    "sigma_after, elo_before, elo_after) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            epoch_id,
                            r.agent_id,
                            r.before,
                            r.after,
                            score_by[r.agent_id].total if r.agent_id in score_by else None,
                            r.sigma_before,
                            r.sigma_after,
                            r.elo_before,
                            r.elo_after,
                        )
                        for r in record.ratings
                    ],
                )
                await cur.executemany(
                    "UPDATE agents SET rating = %s, sigma = %s, elo = %s WHERE agent_id = %s",
                    [(r.after, r.sigma_after, r.elo_after, r.agent_id) for r in record.ratings],
                )
                await cur.execute(
                    "UPDATE agents SET status = 'eliminated', died_epoch = %s, cause_of_death = %s "
                    "WHERE agent_id = %s AND status = 'alive'",
                    (record.epoch_no, cause_of_death, decision.loser_id),
                )
                await cur.execute(
                    "INSERT INTO chapters (book_id, position, epoch_id, agent_id, title, text, embedding, "
                    "embedding_model) VALUES (%s, (SELECT count(*) + 1 FROM chapters WHERE book_id = %s), "
                    "%s, %s, %s, %s, %s, %s)",
                    (
                        record.book_id,
                        record.book_id,
                        epoch_id,
                        winner.agent_id,
                        record.chapter_title,
                        record.chapter_text,
                        _vec(record.chapter_embedding),
                        record.embedding_model if record.chapter_embedding is not None else None,
                    ),
                )
        except psycopg.errors.UniqueViolation as exc:
            where = exc.diag.constraint_name
            raise StoreError(f"epoch {record.epoch_no} of this book is already recorded ({where})") from None
        except psycopg.OperationalError as exc:
            raise lost_database(exc) from None
        return epoch_id

    async def book_usage(self, book_id: UUID) -> tuple[UsageLine, ...]:
        """What every stored epoch of the book used, summed by kind of call and endpoint."""
        rows = await self.rows(BOOK_USAGE, {"b": book_id})
        return merged(usage_from_row(r) for r in rows)

    async def _names(self, agent_ids: Sequence[UUID]) -> dict[UUID, str]:
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute("SELECT agent_id, name FROM agents WHERE agent_id = ANY(%s)", (list(agent_ids),))
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    # ---------------------------------------------------------------- canon and retrieval
    async def chapters(self, book_id: UUID) -> list[Chapter]:
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT c.position, c.title, c.text, a.name, e.epoch_no FROM chapters c "
                    "JOIN agents a USING (agent_id) JOIN simulation_epochs e USING (epoch_id) "
                    "WHERE c.book_id = %s ORDER BY c.position",
                    (book_id,),
                )
            ).fetchall()
        return [Chapter(*r) for r in rows]

    async def chapter_embedding(self, book_id: UUID, position: int) -> list[float] | None:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT embedding FROM chapters WHERE book_id = %s AND position = %s", (book_id, position)
                )
            ).fetchone()
        return None if row is None or row[0] is None else row[0].to_list()

    async def similar_chapters(
        self, book_id: UUID, embedding: Sequence[float], model: str, *, limit: int, before_position: int
    ) -> list[Chapter]:
        """Exact cosine search over this book's chapters in one vector space (filtered scans stay exact)."""
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT c.position, c.title, c.text, a.name, e.epoch_no FROM chapters c "
                    "JOIN agents a USING (agent_id) JOIN simulation_epochs e USING (epoch_id) "
                    "WHERE c.book_id = %s AND c.embedding_model = %s AND c.position < %s "
                    "AND c.embedding IS NOT NULL ORDER BY c.embedding <=> %s LIMIT %s",
                    (book_id, model, before_position, _vec(embedding), limit),
                )
            ).fetchall()
        return [Chapter(*r) for r in rows]


async def _configure(conn: psycopg.AsyncConnection) -> None:
    await register_vector_async(conn)


@asynccontextmanager
async def open_store(url: str, *, min_size: int = 1, max_size: int = 8) -> AsyncIterator[Store]:
    """A pooled Store on an already migrated database (see ``spacetime.adapters.pg.connect.prepare``)."""
    pool = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        configure=_configure,
        kwargs={"application_name": APPLICATION_NAME, "autocommit": True},
    )
    try:
        await pool.open(wait=True, timeout=15)
    except psycopg.Error as exc:
        raise connect_error(url, exc) from None
    except Exception as exc:  # psycopg_pool.PoolTimeout
        raise StoreError(f"cannot open a connection pool to the database: {exc}") from None
    try:
        yield Store(pool, url)
    finally:
        await pool.close()
