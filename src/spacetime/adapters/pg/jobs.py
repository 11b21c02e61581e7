"""Fleet books: what the operator asked of each submitted book (``book_jobs``; ``store.jobs``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from spacetime.adapters.pg.repository import Repository, store_errors


class JobState(StrEnum):
    QUEUED = "queued"
    """May go on: a worker plays its next epoch (or is playing it)."""
    PAUSED = "paused"
    """Stops after the epoch in flight; ``resume`` goes on."""
    CANCELLED = "cancelled"
    """Stopped for good (the chapters so far stay); submit it again to play more."""
    DONE = "done"
    """Reached its target epoch."""


@dataclass(frozen=True, slots=True)
class Job:
    book_id: UUID
    target_epoch: int
    state: JobState


@store_errors
class Jobs(Repository):
    async def submit(self, book_id: UUID, target_epoch: int) -> Job:
        """Ask for the book to reach ``target_epoch`` (a new request replaces the old one, whatever its state)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO book_jobs (book_id, target_epoch, state) VALUES (%s, %s, 'queued') "
                "ON CONFLICT (book_id) DO UPDATE SET target_epoch = EXCLUDED.target_epoch, state = 'queued', "
                "updated_at = NOW()",
                (book_id, target_epoch),
            )
        return Job(book_id, target_epoch, JobState.QUEUED)

    async def get(self, book_id: UUID) -> Job | None:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute("SELECT target_epoch, state FROM book_jobs WHERE book_id = %s", (book_id,))
            ).fetchone()
        return None if row is None else Job(book_id, int(row[0]), JobState(row[1]))

    async def all(self) -> dict[UUID, Job]:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute("SELECT book_id, target_epoch, state FROM book_jobs")).fetchall()
        return {r[0]: Job(r[0], int(r[1]), JobState(r[2])) for r in rows}

    async def set_state(self, book_id: UUID, state: JobState) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE book_jobs SET state = %s, updated_at = NOW() WHERE book_id = %s", (state.value, book_id)
            )
