"""The living agents' notes (``agents.memory``) and what it takes to rebuild them from a stored epoch
(``store.notes``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from spacetime.adapters.pg.repository import Repository


class AgentNotes(Repository):
    async def living(self, book_id: UUID) -> dict[UUID, Any]:
        """Living agent id → its stored ``memory`` JSONB."""
        rows = await self.rows("SELECT agent_id, memory FROM agents WHERE book_id = %s AND status = 'alive'",
                               (book_id,))  # fmt: skip
        return {r["agent_id"]: r["memory"] for r in rows}

    async def save(self, memories: Iterable[tuple[UUID, list[dict[str, Any]]]]) -> None:
        items = [(json.dumps(notes), agent_id) for agent_id, notes in memories]
        if not items:
            return
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany("UPDATE agents SET memory = %s::jsonb WHERE agent_id = %s", items)

    async def stored_epoch(self, book_id: UUID, epoch_no: int) -> dict[str, Any] | None:
        """What ``spacetime.rules.memory.feedback_from_stored`` needs to rebuild the agents' notes of a stored
        epoch: ``{"epoch": row, "drafts": [...], "ratings": [...], "votes": [...], "names": [...]}`` (``None``: no
        such epoch); ``names`` are every agent name of the book (masked in rationales)."""
        epochs = await self.rows(
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
            "drafts": await self.rows("SELECT agent_id, alias, text, truncated, mean_insight, score, votes_received "
                                      "FROM drafts WHERE epoch_id = %s", (eid,)),
            "ratings": await self.rows("SELECT agent_id, rating_before, rating_after FROM ratings WHERE epoch_id = %s",
                                       (eid,)),
            "votes": await self.rows("SELECT target_agent_id, insight_score, rationale FROM peer_votes "
                                     "WHERE epoch_id = %s", (eid,)),
            "names": [r["name"] for r in await self.rows("SELECT name FROM agents WHERE book_id = %s", (book_id,))],
        }  # fmt: skip
