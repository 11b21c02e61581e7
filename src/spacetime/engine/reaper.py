"""The Reaper: archives the eliminated agent and seats its replacement from the reserve pool.

This is the synchronous first version: replacement happens right after the epoch commits, before the next burst.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from uuid import UUID

from spacetime.book import BookConfig
from spacetime.domain import Agent, EpochRecord, Persona
from spacetime.engine.events import AgentEntered, Listener
from spacetime.engine.seats import Seat
from spacetime.store.store import Book, Store
from spacetime.tournament.rating import INITIAL_RATING


class Reaper:
    def __init__(
        self,
        store: Store,
        book: Book,
        config: BookConfig,
        seat_for: Callable[[Agent], Seat],
        emit: Listener,
    ) -> None:
        self.store = store
        self.book = book
        self.config = config
        self.seat_for = seat_for
        self.emit = emit
        self.rng = random.Random(config.seed)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def memories(self) -> dict[UUID, tuple[str, ...]]:
        return {}

    async def ready(self, seats: dict[UUID, Seat]) -> None:
        return None

    async def next_persona(self) -> Persona | None:
        used = {a.name for a in await self.store.agents(self.book.book_id)}
        candidates = [p for p in self.config.reserve if p.name not in used]
        if not candidates:
            return None
        if self.config.reserve_order == "random":
            return self.rng.choice(candidates)
        return candidates[0]

    async def epoch_committed(self, record: EpochRecord, seats: dict[UUID, Seat], names: dict[UUID, str]) -> None:
        loser = record.decision.loser_id
        gone = seats.pop(loser, None)
        if gone is not None:
            await gone.runner.close()
        persona = await self.next_persona()
        if persona is None:
            return
        agent = await self.store.add_agent(
            self.book.book_id, persona, rating=INITIAL_RATING, born_epoch=record.epoch_no,
            model=self.config.agent_models.get(persona.name), replaced_agent_id=loser,
        )  # fmt: skip
        seats[agent.agent_id] = self.seat_for(agent)
        self.emit(AgentEntered(persona.name, names.get(loser), persona.origin.value, record.epoch_no))
