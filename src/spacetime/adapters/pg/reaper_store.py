"""The Reaper's SQL: agent memory, the archive, operator swaps, persona embeddings, lineage and the reaper log.

Functions over a :class:`spacetime.adapters.pg.store.Store` (its pool, pgvector types registered). Tables are created by
``migrations/0002_reaper.sql``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import numpy as np
import psycopg
from psycopg.rows import dict_row

from spacetime.adapters.pg.rows import persona_from_row
from spacetime.domain import Persona, PersonaOrigin
from spacetime.errors import ConfigError, PersonaTaken

if TYPE_CHECKING:
    from spacetime.adapters.pg.store import Store
    from spacetime.domain import Book

SWAP_CHANNEL = "spacetime_swap"
"""NOTIFY channel of operator swaps; the payload is ``<book_id>:<swap_id>`` (ids only)."""
OPERATOR_SWAP = "operator swap"
"""``agents.cause_of_death`` of an agent swapped out by the operator."""


@dataclass(frozen=True, slots=True)
class SwapRequest:
    swap_id: UUID
    book_id: UUID
    out_agent_id: UUID
    out_name: str
    persona: Persona


@dataclass(frozen=True, slots=True)
class SwapResult:
    applied: bool
    reason: str | None = None
    out_agent_id: UUID | None = None


def _vec(values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


async def _rows(store: Store, sql: str, params: Any = None) -> list[dict[str, Any]]:
    return await store.rows(sql, params)


# --------------------------------------------------------------------------- memory
async def load_memories(store: Store, book_id: UUID) -> dict[UUID, Any]:
    """Living agent id → its stored ``memory`` JSONB."""
    rows = await _rows(store, "SELECT agent_id, memory FROM agents WHERE book_id = %s AND status = 'alive'", (book_id,))
    return {r["agent_id"]: r["memory"] for r in rows}


async def save_memories(store: Store, memories: Iterable[tuple[UUID, list[dict[str, Any]]]]) -> None:
    items = [(json.dumps(notes), agent_id) for agent_id, notes in memories]
    if not items:
        return
    async with store.pool.connection() as conn, conn.cursor() as cur:
        await cur.executemany("UPDATE agents SET memory = %s::jsonb WHERE agent_id = %s", items)


async def stored_epoch(store: Store, book_id: UUID, epoch_no: int) -> dict[str, Any] | None:
    """What ``spacetime.rules.memory.feedback_from_stored`` needs to rebuild the agents' notes of a stored epoch:
    ``{"epoch": row, "drafts": [...], "ratings": [...], "votes": [...], "names": [...]}`` (``None``: no such epoch);
    ``names`` are every agent name of the book (masked in rationales)."""
    epochs = await _rows(
        store,
        "SELECT epoch_id, epoch_no, active_agent_ids, winner_agent_id, loser_agent_id FROM simulation_epochs "
        "WHERE book_id = %s AND epoch_no = %s",
        (book_id, epoch_no),
    )
    if not epochs:
        return None
    epoch = epochs[0]
    eid = epoch["epoch_id"]
    return {
        "epoch": epoch,
        "drafts": await _rows(store, "SELECT agent_id, alias, text, truncated, mean_insight, score, votes_received "
                                     "FROM drafts WHERE epoch_id = %s", (eid,)),
        "ratings": await _rows(store, "SELECT agent_id, rating_before, rating_after FROM ratings WHERE epoch_id = %s",
                               (eid,)),
        "votes": await _rows(store, "SELECT target_agent_id, insight_score, rationale FROM peer_votes "
                                    "WHERE epoch_id = %s", (eid,)),
        "names": [r["name"] for r in await _rows(store, "SELECT name FROM agents WHERE book_id = %s", (book_id,))],
    }  # fmt: skip


# --------------------------------------------------------------------------- agents, archive
async def persona_names_and_disciplines(store: Store) -> tuple[set[str], set[str]]:
    rows = await _rows(store, "SELECT name, discipline FROM personas")
    return {r["name"] for r in rows}, {r["discipline"] for r in rows}


async def insert_agent(
    store: Store,
    book_id: UUID,
    agent_id: UUID,
    persona: Persona,
    *,
    rating: float,
    born_epoch: int,
    model: str | None,
    replaced_agent_id: UUID | None,
    embedding: tuple[str, Sequence[float]] | None = None,
) -> None:
    """Seat a newcomer with a known id (built ahead of time) in one transaction. A bred persona is stored first
    (``PersonaTaken`` when another persona already has its name); ``ConfigError`` when the persona already played
    in this book (agents are never revived)."""
    bred = persona.origin is PersonaOrigin.BRED
    async with store.pool.connection() as conn:
        try:
            # The loop waits on this transaction: pipelined (BEGIN … COMMIT in one go), no fsync wait. Losing it in
            # a crash is harmless: nothing refers to the newcomer until an epoch commits (which flushes the WAL),
            # and a resumed book seats a newcomer for every unreplaced death.
            async with conn.pipeline(), conn.transaction():
                await conn.execute("SET LOCAL synchronous_commit = off")
                added = await conn.execute(
                    "INSERT INTO personas (name, discipline, voice, system_prompt, origin, parents, book_id) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING RETURNING persona_id",
                    (persona.name, persona.discipline, persona.voice, persona.system_prompt, persona.origin.value,
                     list(persona.parents), book_id if bred else None),
                )  # fmt: skip
                if embedding is not None:
                    await conn.execute(
                        "UPDATE personas SET embedding = %s, embedding_model = %s WHERE name = %s",
                        (_vec(embedding[1]), embedding[0], persona.name),
                    )
                await conn.execute(
                    "INSERT INTO agents (agent_id, book_id, persona_id, name, rating, born_epoch, model, "
                    "replaced_agent_id) SELECT %s, %s, persona_id, name, %s, %s, %s, %s FROM personas "
                    "WHERE name = %s",
                    (agent_id, book_id, rating, born_epoch, model, replaced_agent_id, persona.name),
                )
                if bred and await added.fetchone() is None:
                    raise PersonaTaken(persona.name)  # rolls the transaction back
        except psycopg.errors.UniqueViolation:
            raise ConfigError(f"{persona.name} has already played in this book: an agent is never revived") from None


async def archive_agent(store: Store, agent_id: UUID, conversation: dict[str, Any]) -> None:
    """Copy a dead agent into the append-only archive (once; again is a no-op)."""
    async with store.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO agent_archive (agent_id, book_id, name, final_rating, born_epoch, died_epoch, cause_of_death, "
            "memory, conversation) SELECT agent_id, book_id, name, rating, born_epoch, died_epoch, "
            "coalesce(cause_of_death, 'unknown'), memory, %s::jsonb FROM agents "
            "WHERE agent_id = %s AND status = 'eliminated' ON CONFLICT (agent_id) DO NOTHING",
            (json.dumps(conversation, default=str), agent_id),
        )


async def unarchived_dead(store: Store, book_id: UUID) -> list[UUID]:
    rows = await _rows(
        store,
        "SELECT a.agent_id FROM agents a LEFT JOIN agent_archive x USING (agent_id) "
        "WHERE a.book_id = %s AND a.status = 'eliminated' AND x.agent_id IS NULL",
        (book_id,),
    )
    return [r["agent_id"] for r in rows]


async def archived(store: Store, agent_id: UUID) -> dict[str, Any] | None:
    rows = await _rows(store, "SELECT * FROM agent_archive WHERE agent_id = %s", (agent_id,))
    return rows[0] if rows else None


async def unreplaced_dead(store: Store, book_id: UUID) -> list[tuple[UUID, int]]:
    """Dead agents nobody replaced yet (a book stopped between a death and the newcomer), latest first."""
    rows = await _rows(
        store,
        "SELECT a.agent_id, a.died_epoch FROM agents a WHERE a.book_id = %s AND a.status = 'eliminated' "
        "AND NOT EXISTS (SELECT 1 FROM agents n WHERE n.replaced_agent_id = a.agent_id) "
        "ORDER BY a.died_epoch DESC, a.created_at DESC",
        (book_id,),
    )
    return [(r["agent_id"], r["died_epoch"]) for r in rows]


# --------------------------------------------------------------------------- persona embeddings
async def personas_without_embedding(store: Store, names: Sequence[str], model: str) -> list[Persona]:
    rows = await _rows(
        store,
        "SELECT name, discipline, voice, system_prompt, origin, parents FROM personas "
        "WHERE name = ANY(%s) AND (embedding IS NULL OR embedding_model IS DISTINCT FROM %s) ORDER BY name",
        (list(names), model),
    )
    return [persona_from_row(r, name="name") for r in rows]


async def set_persona_embeddings(store: Store, pairs: Iterable[tuple[str, Sequence[float]]], model: str) -> None:
    items = [(_vec(v), model, name) for name, v in pairs]
    if not items:
        return
    async with store.pool.connection() as conn, conn.cursor() as cur:
        await cur.executemany("UPDATE personas SET embedding = %s, embedding_model = %s WHERE name = %s", items)


async def most_different(store: Store, candidates: Sequence[str], living: Sequence[str], model: str) -> list[str]:
    """The candidates, most different first: ranked by the cosine distance (pgvector, exact search) to their
    nearest living persona, farthest first."""
    rows = await _rows(
        store,
        "SELECT c.name, min(c.embedding <=> l.embedding) AS nearest FROM personas c CROSS JOIN personas l "
        "WHERE c.name = ANY(%(c)s) AND l.name = ANY(%(l)s) AND c.embedding_model = %(m)s "
        "AND l.embedding_model = %(m)s GROUP BY c.name ORDER BY nearest DESC, c.name",
        {"c": list(candidates), "l": list(living), "m": model},
    )
    return [r["name"] for r in rows]


async def nearest_persona(
    store: Store, vector: Sequence[float], names: Sequence[str], model: str
) -> tuple[str, float] | None:
    """The most similar of ``names`` to ``vector`` and its cosine similarity."""
    rows = await _rows(
        store,
        "SELECT name, 1 - (embedding <=> %(v)s) AS similarity FROM personas WHERE name = ANY(%(n)s) "
        "AND embedding_model = %(m)s ORDER BY embedding <=> %(v)s LIMIT 1",
        {"v": _vec(vector), "n": list(names), "m": model},
    )
    return (rows[0]["name"], float(rows[0]["similarity"])) if rows else None


# --------------------------------------------------------------------------- swaps
async def enqueue_swap(store: Store, book: Book, out_name: str, in_name: str) -> SwapRequest:
    """Queue an operator swap (the running book applies it at its next epoch boundary) and NOTIFY it.

    Raises ``ConfigError`` (nothing queued) for an unknown or dead outgoing agent, an unknown persona, a persona
    alive in (or already dead in) the book, or a swap already pending for either of them."""
    async with store.pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT agent_id, name, status, died_epoch, cause_of_death FROM agents WHERE book_id = %s",
            (book.book_id,),
        )
        agents = await cur.fetchall()
        living = sorted(a["name"] for a in agents if a["status"] == "alive")
        out = next((a for a in agents if a["name"] == out_name), None) or next(
            (a for a in agents if a["name"].lower() == out_name.lower()), None
        )
        if out is None:
            raise ConfigError(f"book {book.name!r} has no agent named {out_name!r} (living: {', '.join(living)})")
        if out["status"] != "alive":
            raise ConfigError(
                f"{out['name']} is already dead in book {book.name!r} (epoch {out['died_epoch']}, "
                f"{out['cause_of_death'] or 'eliminated'}): only a living agent can be swapped out "
                f"(living: {', '.join(living)})"
            )
        await cur.execute(
            "SELECT persona_id, name, discipline, voice, system_prompt, origin, parents FROM personas "
            "WHERE name = %s OR lower(name) = lower(%s) ORDER BY (name = %s) DESC LIMIT 1",
            (in_name, in_name, in_name),
        )
        row = await cur.fetchone()
        if row is None:
            raise ConfigError(f"unknown persona {in_name!r}: `spacetime personas` lists the personas you can swap in")
        persona = persona_from_row(row, name="name")
        mine = next((a for a in agents if a["name"] == persona.name), None)
        if mine is not None and mine["status"] == "alive":
            raise ConfigError(f"{persona.name} is already alive in book {book.name!r}: swap in another persona")
        if mine is not None:
            raise ConfigError(
                f"{persona.name} already played in book {book.name!r} and died at epoch {mine['died_epoch']}: "
                "an agent is never revived"
            )
        await cur.execute(
            "SELECT a.name AS out_name, p.name AS in_name FROM swap_requests s JOIN agents a ON a.agent_id = "
            "s.out_agent_id JOIN personas p ON p.persona_id = s.in_persona_id WHERE s.book_id = %s "
            "AND s.status = 'pending' AND (s.out_agent_id = %s OR s.in_persona_id = %s)",
            (book.book_id, out["agent_id"], row["persona_id"]),
        )
        clash = await cur.fetchone()
        if clash is not None:
            raise ConfigError(
                f"a swap {clash['out_name']} → {clash['in_name']} is already pending in book {book.name!r}: "
                "wait for the next epoch boundary"
            )
        await cur.execute(
            "INSERT INTO swap_requests (book_id, out_agent_id, in_persona_id) VALUES (%s, %s, %s) RETURNING swap_id",
            (book.book_id, out["agent_id"], row["persona_id"]),
        )
        swap_id = (await cur.fetchone())["swap_id"]  # type: ignore[index]
        await cur.execute("SELECT pg_notify(%s, %s)", (SWAP_CHANNEL, f"{book.book_id}:{swap_id}"))
    return SwapRequest(swap_id, book.book_id, out["agent_id"], out["name"], persona)


async def pending_swaps(store: Store, book_id: UUID) -> list[SwapRequest]:
    rows = await _rows(
        store,
        "SELECT s.swap_id, s.out_agent_id, a.name AS out_name, p.name, p.discipline, p.voice, p.system_prompt, "
        "p.origin, p.parents FROM swap_requests s JOIN agents a ON a.agent_id = s.out_agent_id "
        "JOIN personas p ON p.persona_id = s.in_persona_id WHERE s.book_id = %s AND s.status = 'pending' "
        "ORDER BY s.requested_at",
        (book_id,),
    )
    return [
        SwapRequest(r["swap_id"], book_id, r["out_agent_id"], r["out_name"], persona_from_row(r, name="name"))
        for r in rows
    ]


_APPLY_SWAP = """
WITH ok AS (
    SELECT s.swap_id FROM swap_requests s JOIN agents o ON o.agent_id = s.out_agent_id
    WHERE s.swap_id = %(swap)s AND s.status = 'pending' AND o.status = 'alive'
      AND NOT EXISTS (SELECT 1 FROM agents x WHERE x.book_id = s.book_id AND x.name = %(name)s)
    FOR UPDATE OF s, o
), dead AS (
    UPDATE agents SET status = 'eliminated', died_epoch = %(epoch)s, cause_of_death = %(cause)s
    WHERE agent_id = %(out)s AND EXISTS (SELECT 1 FROM ok) RETURNING agent_id
), born AS (
    INSERT INTO agents (agent_id, book_id, persona_id, name, rating, born_epoch, model, replaced_agent_id)
    SELECT %(new)s, %(book)s, persona_id, name, %(rating)s, %(epoch)s, %(model)s, %(out)s FROM personas
    WHERE name = %(name)s AND EXISTS (SELECT 1 FROM ok) RETURNING agent_id
)
UPDATE swap_requests SET status = 'applied', applied_at = now(), applied_epoch = %(epoch)s, in_agent_id = %(new)s
WHERE swap_id IN (SELECT swap_id FROM ok) AND EXISTS (SELECT 1 FROM dead) AND EXISTS (SELECT 1 FROM born)
RETURNING swap_id
"""


async def apply_swap(
    store: Store, swap: SwapRequest, agent_id: UUID, *, epoch_no: int, rating: float, model: str | None
) -> SwapResult:
    """In ONE statement (the loop waits on it): the outgoing agent dies (``operator swap``), the newcomer is seated
    with ``agent_id``, the request is marked applied. A request that can no longer apply (its agent died first,
    the persona entered meanwhile) is marked rejected with the reason."""
    params = {"swap": swap.swap_id, "name": swap.persona.name, "epoch": epoch_no, "cause": OPERATOR_SWAP,
              "out": swap.out_agent_id, "new": agent_id, "book": swap.book_id, "rating": rating, "model": model}
    async with store.pool.connection() as conn:
        # pipelined (BEGIN … COMMIT in one go), no fsync wait: a swap lost in a crash is still pending (all or
        # nothing) and is applied when the book resumes
        async with conn.pipeline(), conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            result = await conn.execute(_APPLY_SWAP, params)
        applied = await result.fetchone()
        if applied is not None:
            return SwapResult(True, None, swap.out_agent_id)
        async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT status FROM swap_requests WHERE swap_id = %s FOR UPDATE", (swap.swap_id,))
            row = await cur.fetchone()
            if row is None or row["status"] != "pending":
                return SwapResult(False, "no longer pending")
            await cur.execute("SELECT status, died_epoch FROM agents WHERE agent_id = %s", (swap.out_agent_id,))
            out = await cur.fetchone()
            if out is None or out["status"] != "alive":
                reason = f"{swap.out_name} died before the swap (epoch {out['died_epoch'] if out else '?'})"
            else:
                reason = f"{swap.persona.name} already entered the book"
            await cur.execute("UPDATE swap_requests SET status = 'rejected', reason = %s WHERE swap_id = %s",
                              (reason, swap.swap_id))  # fmt: skip
        return SwapResult(False, reason)


async def reject_swap(store: Store, swap_id: UUID, reason: str) -> None:
    async with store.pool.connection() as conn:
        await conn.execute(
            "UPDATE swap_requests SET status = 'rejected', reason = %s WHERE swap_id = %s AND status = 'pending'",
            (reason, swap_id),
        )


async def swaps(store: Store, book_id: UUID) -> list[dict[str, Any]]:
    return await _rows(
        store,
        "SELECT s.swap_id, s.status, s.reason, s.applied_epoch, s.requested_at, a.name AS out_name, "
        "p.name AS in_name FROM swap_requests s JOIN agents a ON a.agent_id = s.out_agent_id "
        "JOIN personas p ON p.persona_id = s.in_persona_id WHERE s.book_id = %s ORDER BY s.requested_at",
        (book_id,),
    )


# --------------------------------------------------------------------------- reaper log, lineage, catalogue
@dataclass(frozen=True, slots=True)
class ReaperEvent:
    epoch_no: int
    kind: str
    out_agent_id: UUID | None
    in_agent_id: UUID
    source: str
    prepared_s: float | None
    stall_ms: float | None
    note: str | None = None


async def log_events(store: Store, book_id: UUID, events: Sequence[ReaperEvent]) -> None:
    if not events:
        return
    async with store.pool.connection() as conn, conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO reaper_events (book_id, epoch_no, kind, out_agent_id, in_agent_id, source, prepared_s, "
            "stall_ms, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(book_id, e.epoch_no, e.kind, e.out_agent_id, e.in_agent_id, e.source, e.prepared_s, e.stall_ms, e.note)
             for e in events],
        )  # fmt: skip


async def reaper_events(store: Store, book_id: UUID) -> list[dict[str, Any]]:
    return await _rows(
        store,
        "SELECT r.epoch_no, r.kind, o.name AS out_name, i.name AS in_name, r.source, r.prepared_s, r.stall_ms, "
        "r.note FROM reaper_events r LEFT JOIN agents o ON o.agent_id = r.out_agent_id "
        "JOIN agents i ON i.agent_id = r.in_agent_id WHERE r.book_id = %s ORDER BY r.epoch_no, r.created_at",
        (book_id,),
    )


async def lineage(store: Store, book_id: UUID) -> list[dict[str, Any]]:
    """Every agent of the book in order of entry: whom it replaced, at which epoch, how, and its persona's parents."""
    rows = await _rows(
        store,
        "SELECT a.agent_id, a.name, a.status, a.rating, a.born_epoch, a.died_epoch, a.cause_of_death, "
        "a.replaced_agent_id, r.name AS replaced, p.origin, p.parents, p.discipline, e.kind, e.source, e.stall_ms "
        "FROM agents a JOIN personas p USING (persona_id) LEFT JOIN agents r ON r.agent_id = a.replaced_agent_id "
        "LEFT JOIN LATERAL (SELECT kind, source, stall_ms FROM reaper_events x WHERE x.in_agent_id = a.agent_id "
        "ORDER BY created_at LIMIT 1) e ON true "
        "WHERE a.book_id = %s ORDER BY a.born_epoch, a.created_at, a.name",
        (book_id,),
    )
    return [
        {
            "agent_id": str(r["agent_id"]),
            "name": r["name"],
            "discipline": r["discipline"],
            "status": r["status"],
            "rating": round(r["rating"], 2),
            "born_epoch": r["born_epoch"],
            "died_epoch": r["died_epoch"],
            "cause_of_death": r["cause_of_death"],
            "replaced": r["replaced"],
            "replaced_agent_id": None if r["replaced_agent_id"] is None else str(r["replaced_agent_id"]),
            "via": r["kind"] or ("founder" if r["replaced_agent_id"] is None else "replacement"),
            "source": r["source"] or r["origin"],
            "origin": r["origin"],
            "parents": list(r["parents"] or ()),
            "stall_ms": None if r["stall_ms"] is None else round(r["stall_ms"], 3),
        }
        for r in rows
    ]


async def persona_catalog(store: Store, book_id: UUID | None = None) -> list[dict[str, Any]]:
    """Every stored persona with its origin, parents and (with ``book_id``) its state in that book:
    ``alive``, ``dead``, ``pending`` (a swap will bring it in) or ``—``."""
    rows = await _rows(
        store,
        "SELECT p.name, p.discipline, p.voice, p.origin, p.parents, b.name AS bred_in, a.status AS state, "
        "a.died_epoch, EXISTS (SELECT 1 FROM swap_requests s WHERE s.in_persona_id = p.persona_id "
        "AND s.book_id = %(b)s AND s.status = 'pending') AS pending "
        "FROM personas p LEFT JOIN books b ON b.book_id = p.book_id "
        "LEFT JOIN agents a ON a.persona_id = p.persona_id AND a.book_id = %(b)s "
        "ORDER BY p.created_at, p.name",
        {"b": book_id},
    )
    return [
        {
            "name": r["name"],
            "discipline": r["discipline"],
            "voice": r["voice"],
            "origin": r["origin"],
            "parents": list(r["parents"] or ()),
            "bred_in": r["bred_in"],
            "state": ("alive" if r["state"] == "alive" else "dead" if r["state"] else
                      "pending" if r["pending"] else None),
            "died_epoch": r["died_epoch"],
        }  # fmt: skip
        for r in rows
    ]
