"""The living agents' notes (``agents.memory``) and what it takes to rebuild them from a stored epoch
(``store.notes``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from spacetime.adapters.pg.repository import Repository, store_errors
from spacetime.rules.memory import EpochFacts


@store_errors
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

    async def stored_epoch(self, book_id: UUID, epoch_no: int) -> EpochFacts | None:
        """The facts of a stored epoch that rebuild its agents' notes (``None``: no such epoch); every agent name of
        the book is masked in the rationales."""
        epochs = await self.rows(
            "SELECT epoch_id, epoch_no, active_agent_ids, winner_agent_id, loser_agent_id FROM simulation_epochs "
            "WHERE book_id = %s AND epoch_no = %s",
            (book_id, epoch_no),
        )
        if not epochs:
            return None
        epoch = epochs[0]
        eid = epoch["epoch_id"]
        drafts = {d["agent_id"]: d for d in await self.rows(
            "SELECT agent_id, alias, text, truncated, mean_insight, score, votes_received FROM drafts "
            "WHERE epoch_id = %s", (eid,))}  # fmt: skip
        ratings = await self.rows("SELECT agent_id, rating_before, rating_after FROM ratings WHERE epoch_id = %s",
                                  (eid,))  # fmt: skip
        received: dict[UUID, list[tuple[int, str]]] = {}
        for v in await self.rows("SELECT target_agent_id, insight_score, rationale FROM peer_votes "
                                 "WHERE epoch_id = %s", (eid,)):  # fmt: skip
            received.setdefault(v["target_agent_id"], []).append((v["insight_score"], v["rationale"] or ""))
        names = await self.rows("SELECT name FROM agents WHERE book_id = %s", (book_id,))
        return EpochFacts(
            epoch_no=int(epoch["epoch_no"]),
            active=tuple(epoch["active_agent_ids"] or ()),
            drafts={a: (d["text"], d["truncated"]) for a, d in drafts.items()},
            aliases={a: d["alias"] for a, d in drafts.items()},
            totals={a: d["score"] if d["score"] is not None else 0.0 for a, d in drafts.items()},
            means={a: d["mean_insight"] for a, d in drafts.items() if d["votes_received"]},
            ratings={r["agent_id"]: (r["rating_before"], r["rating_after"]) for r in ratings},
            received=received,
            winner=epoch["winner_agent_id"],
            loser=epoch["loser_agent_id"],
            names=tuple(r["name"] for r in names),
        )
