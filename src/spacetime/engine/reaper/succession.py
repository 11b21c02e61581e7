"""Who enters next. The Reaper keeps ``ahead`` newcomers in preparation while the epochs run: the next reserve
persona (in ``queue``, seeded ``random`` or ``diverse`` order: the one farthest, by pgvector cosine distance,
from the living roster) or, once the reserve is dry, a persona bred by the book's model (``breeder``). When a death
finds no prepared newcomer ready, a quick one is taken instead — the next reserve persona, else the fallback
child — and the slow one is kept for the next death, so breeding never stalls the book."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from spacetime.adapters.pg.store import Store
from spacetime.book import BookConfig
from spacetime.domain import Agent, Book, NewcomerSource, Persona
from spacetime.engine.reaper.breeder import Breeder
from spacetime.engine.reaper.tasks import finish
from spacetime.engine.reaper.values import Census, Claims, Embedding, Newcomer, ReaperStats
from spacetime.engine.seats import Seat
from spacetime.errors import ModelError, ModelHostCrashed, SpacetimeError
from spacetime.rules.rating import INITIAL_RATING

if TYPE_CHECKING:
    from spacetime.engine.models import ModelPool

log = logging.getLogger("spacetime.reaper")

SEAT_TRIES = 5
"""Newcomers tried for one seat (each lost to a race with another book or a swap) before giving up."""


class Succession:
    def __init__(
        self,
        store: Store,
        book: Book,
        config: BookConfig,
        models: ModelPool | None,
        seat_for: Callable[[Agent], Seat],
        census: Census,
        stats: ReaperStats,
        awaited: Callable[[], set[str]],
        *,
        ahead: int,
    ) -> None:
        self.store = store
        self.book = book
        self.config = config
        self.seat_for = seat_for
        self.census = census
        self.stats = stats
        self.ahead = max(1, ahead)
        """Newcomers kept in preparation."""
        self.rng = random.Random(config.seed)
        self.claims = Claims(census, awaited)
        self.breeder = Breeder(store, book, config, models, self.rng, self.claims, self.newcomer)
        self.leftovers: list[Newcomer] = []
        """Newcomers built and never seated: their runners are closed when the Reaper stops."""
        self._preparing: list[asyncio.Task[Newcomer]] = []
        self._choosing = asyncio.Lock()

    def newcomer(self, persona: Persona, source: NewcomerSource, t0: float, note: str | None = None,
                 embedding: Embedding | None = None) -> Newcomer:  # fmt: skip
        """``persona`` ready to enter: a fresh agent id, its seat built (``t0``: when its preparation began)."""
        agent = Agent(uuid.uuid4(), persona, INITIAL_RATING, born_epoch=self.census.epochs,
                      model=self.config.agent_models.get(persona.name))  # fmt: skip
        return Newcomer(persona, self.seat_for(agent), source, time.perf_counter() - t0, note, embedding)

    # ------------------------------------------------------------------ seating
    async def seat(self, epoch_no: int, replaced: UUID | None, *, grace_s: float) -> Newcomer:
        """Store the next successor as a living agent that entered after ``epoch_no`` (in place of ``replaced``)."""
        for _ in range(SEAT_TRIES):
            living = await self.store.agents(self.book.book_id, alive_only=True)
            newcomer = (await self._take(grace_s)).entering(epoch_no, living)
            name = newcomer.persona.name
            try:
                await self.store.roster.insert(self.book.book_id, newcomer.agent, replaced_agent_id=replaced,
                                               embedding=newcomer.embedding)  # fmt: skip
            except SpacetimeError as exc:  # raced by another book or a swap: pick again
                log.info("newcomer %s not seated (%s); picking another", name, exc)
                self.census.barred.add(name)
                self._set_aside(newcomer)
                continue
            self.claims.release(newcomer.persona)
            self.census.barred.add(name)
            self.census.names[newcomer.agent.agent_id] = name
            if newcomer.source is NewcomerSource.BRED:
                self.stats.bred += 1
            elif newcomer.source is NewcomerSource.BRED_FALLBACK:
                self.stats.bred_fallback += 1
            return newcomer
        raise ModelError(f"the Reaper could not seat a newcomer after {SEAT_TRIES} tries")

    def _set_aside(self, newcomer: Newcomer) -> None:
        """``newcomer`` will not enter (its persona was taken meanwhile)."""
        self.claims.release(newcomer.persona)
        self.leftovers.append(newcomer)

    # ------------------------------------------------------------------ preparation ahead
    def keep_ahead(self) -> None:
        """Keep ``ahead`` newcomers in preparation (the slow ones, bred by a model, get several epochs)."""
        while len(self._preparing) < self.ahead:
            self._preparing.append(asyncio.create_task(self._prepare(), name=f"reaper-prepare:{self.book.name}"))

    async def _take(self, grace_s: float) -> Newcomer:
        """The first prepared newcomer that is ready (waiting at most ``grace_s`` for one), else a quick one; the
        slow ones stay in preparation."""
        if grace_s > 0 and self._preparing and not any(t.done() for t in self._preparing):
            await asyncio.wait(self._preparing, timeout=grace_s, return_when=asyncio.FIRST_COMPLETED)
        for task in list(self._preparing):
            if not task.done():
                continue
            self._preparing.remove(task)
            if task.cancelled():
                continue
            error = task.exception()
            if isinstance(error, ModelHostCrashed):  # the model is gone for good: so is this run
                raise error
            if error is not None:
                log.warning("preparing a newcomer failed: %s", error)
                continue
            newcomer = task.result()
            if self.claims.usable(newcomer.persona):
                return newcomer
            self._set_aside(newcomer)
        return await self._quick()

    async def stop(self, patience_s: float) -> None:
        """Cancel the preparations; the newcomers already built become leftovers."""
        tasks, self._preparing = self._preparing, []
        await finish(tasks, patience_s=patience_s, cancel=True)
        self.leftovers += [t.result() for t in tasks if t.done() and not t.cancelled() and t.exception() is None]

    # ------------------------------------------------------------------ the choice
    async def _prepare(self) -> Newcomer:
        t0 = time.perf_counter()
        async with self._choosing:  # reserve picks happen in the order the preparations were started
            persona = await self._reserve(rank=True)
            if persona is not None:
                return self.newcomer(self.claims.claim(persona), NewcomerSource.RESERVE, t0)
        return await self.breeder.breed(t0)

    async def _quick(self) -> Newcomer:
        """No model call, no embedding: the next reserve persona (unranked), else the fallback child."""
        t0 = time.perf_counter()
        persona = await self._reserve(rank=False)
        if persona is not None:
            return self.newcomer(self.claims.claim(persona), NewcomerSource.RESERVE, t0)
        return await self.breeder.fallback(await self.breeder.plan(), ["no time to breed"], t0, embedder=None)

    async def _reserve(self, *, rank: bool) -> Persona | None:
        """THE reserve pick: the next reserve persona free to enter, in the book's ``reserve_order`` (``diverse``
        ranks only with ``rank`` and an embedder; else it takes the queue order)."""
        left = self._reserve_left()
        if rank and left and self.config.reserve_order == "diverse":
            chosen = await self._most_different(left)
            if chosen is not None:
                return chosen
            left = self._reserve_left()
        if not left:
            return None
        return self.rng.choice(left) if self.config.reserve_order == "random" else left[0]

    def _reserve_left(self) -> list[Persona]:
        return [p for p in self.config.reserve if self.claims.free(p)]

    async def _most_different(self, left: Sequence[Persona]) -> Persona | None:
        living = [a.name for a in await self.store.agents(self.book.book_id, alive_only=True)]
        model = await self.breeder.ensure_embeddings([p.name for p in left] + living)
        if model is None or not living:
            return None
        ranked = await self.store.personas.most_different([p.name for p in left], living, model)
        by_name = {p.name: p for p in self._reserve_left()}  # again: a swap may have taken one meanwhile
        return next((by_name[n] for n in ranked if n in by_name), None)
