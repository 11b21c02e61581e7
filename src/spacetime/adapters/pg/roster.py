"""The agents of a book: THE agent INSERT (founders, newcomers and, inside the swap statement, operator swaps),
the append-only archive of the dead and the deaths nobody has replaced yet (``store.roster``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg

from spacetime.adapters.pg.repository import Repository, store_errors, vector
from spacetime.domain import Agent, Persona, PersonaOrigin
from spacetime.errors import ConfigError, PersonaTaken

INSERT_AGENT = (
    "INSERT INTO agents (agent_id, book_id, persona_id, name, rating, sigma, elo, born_epoch, model, "
    "replaced_agent_id) SELECT %(agent)s, %(book)s, persona_id, name, %(rating)s, %(sigma)s, %(elo)s, %(born)s, "
    "%(model)s, %(replaced)s FROM personas WHERE name = %(name)s"
)
"""The one agent INSERT (named parameters from :func:`agent_params`); the swap statement adds a condition."""

INSERT_PERSONA = (
    "INSERT INTO personas (name, discipline, voice, system_prompt, origin, parents, book_id) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING"
)
"""A persona not stored yet (by name); an existing one is left as it is. ``book_id``: where it was bred."""


def persona_params(persona: Persona, book_id: UUID | None) -> tuple[Any, ...]:
    """The parameters of ``INSERT_PERSONA``."""
    return (persona.name, persona.discipline, persona.voice, persona.system_prompt, persona.origin.value,
            list(persona.parents), book_id)  # fmt: skip


def agent_params(book_id: UUID, agent: Agent, replaced_agent_id: UUID | None) -> dict[str, Any]:
    return {"agent": agent.agent_id, "book": book_id, "rating": agent.rating, "sigma": agent.sigma,
            "elo": agent.elo, "born": agent.born_epoch, "model": agent.model, "replaced": replaced_agent_id,
            "name": agent.name}  # fmt: skip


def never_revived(name: str) -> ConfigError:
    return ConfigError(f"{name} has already played in this book: an agent is never revived")


@store_errors
class Roster(Repository):
    async def insert(
        self,
        book_id: UUID,
        agent: Agent,
        *,
        replaced_agent_id: UUID | None = None,
        embedding: tuple[str, Sequence[float]] | None = None,
    ) -> None:
        """Seat ``agent`` (its id made by the caller, ahead of time) in one transaction, its persona stored first
        (with its ``embedding``, if given). ``PersonaTaken`` when a bred persona's name is already another
        persona's; ``ConfigError`` when the persona already played in this book (agents are never revived)."""
        persona = agent.persona
        bred = persona.origin is PersonaOrigin.BRED
        async with self.pool.connection() as conn:
            try:
                # The loop waits on this transaction: pipelined (BEGIN … COMMIT in one go), no fsync wait. Losing it
                # in a crash is harmless: nothing refers to the agent until an epoch commits (which flushes the
                # WAL), and a resumed book seats a newcomer for every unreplaced death (or its founders again).
                async with conn.pipeline(), conn.transaction():
                    await conn.execute("SET LOCAL synchronous_commit = off")
                    added = await conn.execute(
                        INSERT_PERSONA + " RETURNING persona_id",
                        persona_params(persona, book_id if bred else None),
                    )
                    if embedding is not None:
                        await conn.execute(
                            "UPDATE personas SET embedding = %s, embedding_model = %s WHERE name = %s",
                            (vector(embedding[1]), embedding[0], persona.name),
                        )
                    await conn.execute(INSERT_AGENT, agent_params(book_id, agent, replaced_agent_id))
                    if bred and await added.fetchone() is None:
                        raise PersonaTaken(persona.name)  # rolls the transaction back
            except psycopg.errors.UniqueViolation:
                raise never_revived(persona.name) from None

    async def archive(self, agent_id: UUID, conversation: dict[str, Any]) -> None:
        """Copy a dead agent into the append-only archive (once; again is a no-op)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO agent_archive (agent_id, book_id, name, final_rating, born_epoch, died_epoch, "
                "cause_of_death, memory, conversation) SELECT agent_id, book_id, name, rating, born_epoch, died_epoch, "
                "coalesce(cause_of_death, 'unknown'), memory, %s::jsonb FROM agents "
                "WHERE agent_id = %s AND status = 'eliminated' ON CONFLICT (agent_id) DO NOTHING",
                (json.dumps(conversation, default=str), agent_id),
            )

    async def unarchived_dead(self, book_id: UUID) -> list[UUID]:
        rows = await self.rows(
            "SELECT a.agent_id FROM agents a LEFT JOIN agent_archive x USING (agent_id) "
            "WHERE a.book_id = %s AND a.status = 'eliminated' AND x.agent_id IS NULL",
            (book_id,),
        )
        return [r["agent_id"] for r in rows]

    async def unreplaced_dead(self, book_id: UUID) -> list[tuple[UUID, int]]:
        """Dead agents nobody replaced yet (a book stopped between a death and the newcomer), latest first."""
        rows = await self.rows(
            "SELECT a.agent_id, a.died_epoch FROM agents a WHERE a.book_id = %s AND a.status = 'eliminated' "
            "AND NOT EXISTS (SELECT 1 FROM agents n WHERE n.replaced_agent_id = a.agent_id) "
            "ORDER BY a.died_epoch DESC, a.created_at DESC",
            (book_id,),
        )
        return [(r["agent_id"], r["died_epoch"]) for r in rows]
