"""Operator swaps (``store.swaps``): queued by ``spacetime swap`` from any terminal (a row in ``swap_requests`` and
a NOTIFY), read by the running book's Reaper, applied at its next epoch boundary in ONE statement."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from spacetime.adapters.pg.notify import SWAP_CHANNEL, SwapHub
from spacetime.adapters.pg.repository import Repository, store_errors
from spacetime.adapters.pg.roster import INSERT_AGENT, agent_params
from spacetime.adapters.pg.rows import persona_from_row
from spacetime.domain import Agent, Book, Persona
from spacetime.errors import ConfigError

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


_APPLY = f"""
WITH ok AS (
    SELECT s.swap_id FROM swap_requests s JOIN agents o ON o.agent_id = s.out_agent_id
    WHERE s.swap_id = %(swap)s AND s.status = 'pending' AND o.status = 'alive'
      AND NOT EXISTS (SELECT 1 FROM agents x WHERE x.book_id = s.book_id AND x.name = %(name)s)
    FOR UPDATE OF s, o
), dead AS (
    UPDATE agents SET status = 'eliminated', died_epoch = %(epoch)s, cause_of_death = %(cause)s
    WHERE agent_id = %(replaced)s AND EXISTS (SELECT 1 FROM ok) RETURNING agent_id
), born AS (
    {INSERT_AGENT} AND EXISTS (SELECT 1 FROM ok) RETURNING agent_id
)
UPDATE swap_requests SET status = 'applied', applied_at = now(), applied_epoch = %(epoch)s, in_agent_id = %(agent)s
WHERE swap_id IN (SELECT swap_id FROM ok) AND EXISTS (SELECT 1 FROM dead) AND EXISTS (SELECT 1 FROM born)
RETURNING swap_id
"""


@store_errors
class Swaps(Repository):
    def __init__(self, pool: AsyncConnectionPool, url: str) -> None:
        super().__init__(pool)
        self.listener = SwapHub(url)
        """The one LISTEN connection of this Store, shared by every Reaper using it."""

    async def enqueue(self, book: Book, out_name: str, in_name: str) -> SwapRequest:
        """Queue an operator swap (the running book applies it at its next epoch boundary) and NOTIFY it.

        Raises ``ConfigError`` (nothing queued) for an unknown or dead outgoing agent, an unknown persona, a persona
        alive in (or already dead in) the book, or a swap already pending for either of them."""
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
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
                raise ConfigError(
                    f"unknown persona {in_name!r}: `spacetime personas` lists the personas you can swap in"
                )
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
                "INSERT INTO swap_requests (book_id, out_agent_id, in_persona_id) VALUES (%s, %s, %s) "
                "RETURNING swap_id",
                (book.book_id, out["agent_id"], row["persona_id"]),
            )
            swap_id = (await cur.fetchone())["swap_id"]  # type: ignore[index]
            await cur.execute("SELECT pg_notify(%s, %s)", (SWAP_CHANNEL, f"{book.book_id}:{swap_id}"))
        return SwapRequest(swap_id, book.book_id, out["agent_id"], out["name"], persona)

    async def pending(self, book_id: UUID) -> list[SwapRequest]:
        rows = await self.rows(
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

    async def apply(self, swap: SwapRequest, agent: Agent) -> SwapResult:
        """In ONE statement (the loop waits on it): the outgoing agent dies (``operator swap``) at epoch
        ``agent.born_epoch``, ``agent`` is seated in its place, the request is marked applied. A request that can
        no longer apply (its agent died first, the persona entered meanwhile) is marked rejected with the reason."""
        params = agent_params(swap.book_id, agent, swap.out_agent_id)
        params.update(swap=swap.swap_id, epoch=agent.born_epoch, cause=OPERATOR_SWAP)
        async with self.pool.connection() as conn:
            # pipelined (BEGIN … COMMIT in one go), no fsync wait: a swap lost in a crash is still pending (all or
            # nothing) and is applied when the book resumes
            async with conn.pipeline(), conn.transaction():
                await conn.execute("SET LOCAL synchronous_commit = off")
                result = await conn.execute(_APPLY, params)
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

    async def reject(self, swap_id: UUID, reason: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE swap_requests SET status = 'rejected', reason = %s WHERE swap_id = %s AND status = 'pending'",
                (reason, swap_id),
            )
