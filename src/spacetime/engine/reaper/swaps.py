"""Operator swaps, taken in: a swap queued by ``spacetime swap`` (seen through the store's one listener, or the
poll) gets its newcomer's ``PersonaAgent`` prepared at once and is applied at the next epoch boundary."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from uuid import UUID

from spacetime.adapters.pg.store import Store
from spacetime.adapters.pg.swaps import SwapRequest
from spacetime.domain import NewcomerSource
from spacetime.engine.reaper.tasks import finish
from spacetime.engine.reaper.values import MakeNewcomer, Newcomer, ReaperStats
from spacetime.errors import SpacetimeError

log = logging.getLogger("spacetime.reaper")

class SwapIntake:
    def __init__(self, store: Store, book_id: UUID, newcomer: MakeNewcomer, stats: ReaperStats,
                 leftovers: list[Newcomer]) -> None:  # fmt: skip
        self.store = store
        self.book_id = book_id
        self.newcomer = newcomer
        self.stats = stats
        self.leftovers = leftovers
        """Where a newcomer whose swap was rejected goes (closed when the Reaper stops)."""
        self._pending: dict[UUID, tuple[SwapRequest, asyncio.Task[Newcomer]]] = {}
        self._lock = asyncio.Lock()

    def awaited(self) -> set[str]:
        """Names of the personas the pending swaps bring in."""
        return {swap.persona.name for swap, _ in self._pending.values()}

    async def notice(self) -> None:
        """Read the pending swaps of this book and start preparing each new one's PersonaAgent."""
        async with self._lock:
            for swap in await self.store.swaps.pending(self.book_id):
                if swap.swap_id not in self._pending:
                    task = asyncio.create_task(self._prepare(swap), name=f"reaper-swap:{swap.swap_id}")
                    self._pending[swap.swap_id] = (swap, task)

    async def _prepare(self, swap: SwapRequest) -> Newcomer:
        return self.newcomer(swap.persona, NewcomerSource.OPERATOR, time.perf_counter())

    async def apply(self, epoch_no: int) -> AsyncIterator[tuple[SwapRequest, Newcomer]]:
        """At a boundary (after epoch ``epoch_no``): apply every swap noticed so far, one statement each; yields
        those applied with their newcomer. One that cannot apply any more is marked rejected and logged."""
        for swap_id, (swap, task) in list(self._pending.items()):
            del self._pending[swap_id]
            try:
                newcomer = (await task).entering(epoch_no, await self.store.agents(swap.book_id, alive_only=True))
            except SpacetimeError as exc:
                await self.store.swaps.reject(swap_id, str(exc))
                self.stats.swaps_rejected += 1
                continue
            result = await self.store.swaps.apply(swap, newcomer.agent)
            if not result.applied:
                log.warning("swap %s → %s rejected: %s", swap.out_name, swap.persona.name, result.reason)
                self.stats.swaps_rejected += 1
                self.leftovers.append(newcomer)
                continue
            self.stats.swaps_applied += 1
            yield swap, newcomer

    async def stop(self, patience_s: float) -> None:
        """Cancel the preparations; the newcomers already built become leftovers."""
        tasks = [task for _, task in self._pending.values()]
        self._pending.clear()
        await finish(tasks, patience_s=patience_s, cancel=True)
        self.leftovers += [t.result() for t in tasks if t.done() and not t.cancelled() and t.exception() is None]
