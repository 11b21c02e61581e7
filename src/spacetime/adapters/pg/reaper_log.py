"""The Reaper's log of replacements, one row per newcomer in ``reaper_events`` (``store.reaper_log``)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import psycopg

from spacetime.adapters.pg.repository import Repository, store_errors
from spacetime.domain import ReaperEvent
from spacetime.errors import StoreError


@store_errors
class ReaperLog(Repository):
    async def record(self, book_id: UUID, events: Sequence[ReaperEvent]) -> None:
        """Append ``events``; ``StoreError`` when the database cannot take them."""
        if not events:
            return
        try:
            async with self.pool.connection() as conn, conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO reaper_events (book_id, epoch_no, kind, out_agent_id, in_agent_id, source, "
                    "prepared_s, stall_ms, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(book_id, e.epoch_no, e.kind.value, e.out_agent_id, e.in_agent_id, e.source.value, e.prepared_s,
                      e.stall_ms, e.note) for e in events],
                )  # fmt: skip
        except psycopg.Error as exc:
            raise StoreError(f"could not log {len(events)} replacement(s) of the Reaper: {exc}") from None
