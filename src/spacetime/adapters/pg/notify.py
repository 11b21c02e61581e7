"""LISTEN for operator swaps: ONE connection per Store (one database, one event loop) on behalf of every Reaper
of the process — a process playing 100 books holds one listening connection, not 100 (``store.swaps.listener``).

A notification (payload ``<book_id>:<swap_id>``) wakes the Reaper of its book; every ``poll_s`` each Reaper also
re-reads its queue, in case a notification was missed (NOTIFY is not replayed, e.g. across a reconnect)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

import psycopg

log = logging.getLogger("spacetime.reaper")

SWAP_CHANNEL = "spacetime_swap"
"""NOTIFY channel of operator swaps; the payload is ``<book_id>:<swap_id>`` (ids only)."""
POLL_S = 5.0
"""The default poll: a missed notification costs at most this delay."""
STOP_PATIENCE_S = 5.0
"""How long ``leave`` waits for the cancelled listener to end."""

Notice = Callable[[], Awaitable[None]]
"""What a subscriber runs when its book may have a new swap: read its queue."""


class SwapHub:
    def __init__(self, url: str) -> None:
        self.url = url
        self.poll_s: float | None = None
        """The shortest poll of the subscribers (set by the first ``join``)."""
        self.subscribers: dict[UUID, Notice] = {}
        self.task: asyncio.Task[None] | None = None

    def join(self, book_id: UUID, notice: Notice, poll_s: float) -> None:
        """Wake ``notice`` on every swap of ``book_id`` (and every ``poll_s``); starts listening if needed."""
        self.poll_s = poll_s if self.poll_s is None else min(self.poll_s, poll_s)
        self.subscribers[book_id] = notice
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name="reaper-swap-listener")

    async def leave(self, book_id: UUID) -> None:
        """Stop waking ``book_id``; the last one to leave closes the listening connection (cancelled once, then
        awaited for at most ``STOP_PATIENCE_S``)."""
        self.subscribers.pop(book_id, None)
        if self.subscribers or self.task is None:
            return
        task, self.task, self.poll_s = self.task, None, None
        task.cancel()
        await asyncio.wait([task], timeout=STOP_PATIENCE_S)
        if not task.done():
            log.warning("task %s did not stop", task.get_name())

    def _poll_s(self) -> float:
        return self.poll_s if self.poll_s is not None else POLL_S

    async def _wake(self, book_ids: Sequence[UUID]) -> None:
        for book_id in book_ids:
            notice = self.subscribers.get(book_id)
            if notice is None:
                continue
            try:
                await notice()
            except asyncio.CancelledError:
                raise
            except Exception:  # one book's trouble does not stop the others' swaps
                log.exception("reading the swap queue of book %s failed", book_id)

    async def _run(self) -> None:
        while self.subscribers:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {SWAP_CHANNEL}")
                    await self._wake(list(self.subscribers))  # whatever was queued before we listened
                    while self.subscribers:
                        async for note in conn.notifies(timeout=self._poll_s()):
                            with contextlib.suppress(ValueError):
                                await self._wake([UUID(note.payload.split(":", 1)[0])])
                        await self._wake(list(self.subscribers))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # lost connection: retry after a pause
                log.warning("swap listener: %s; retrying in %.0f s", exc, self._poll_s())
                await asyncio.sleep(self._poll_s())
