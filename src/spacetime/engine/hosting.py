"""The epoch host of a process: what a durable epoch workflow (``spacetime.engine.durable``) runs on.

A ``spacetime run`` process registers the Director of each book it plays (seated once, with its live progress);
a ``spacetime worker`` registers none and seats a Director for each epoch it is handed, from what the database
holds, under the book's advisory lock (so two processes never play one book at once). Either kind can be handed
an epoch another process left pending when it died; it plays it the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from spacetime.adapters.pg.jobs import JobState
from spacetime.adapters.pg.store import Store
from spacetime.book import BookConfig, EndpointSpec, parse_book
from spacetime.domain import Completion, EpochOutcome
from spacetime.engine.director import Director
from spacetime.engine.durable import CallOptions, Durable
from spacetime.engine.events import Listener, ignore
from spacetime.engine.models import ModelPool, SharedModels
from spacetime.engine.trust import EndpointTrust
from spacetime.errors import BookBusy, ModelError
from spacetime.ports import Message
from spacetime.rules.cost import budget_line, budget_stop, spend

log = logging.getLogger("spacetime.hosting")

LOCK_WAITS_S = (0.5, 1.0, 2.0, 5.0, 5.0, 10.0, 10.0, 30.0, 30.0, 60.0)
"""How long a worker waits, in turn, for a book another process holds (about 2.5 minutes in all)."""


SUCCESSION_GRACE_S = 300.0
"""A worker's Director lives for one epoch: its boundary waits for the successor it began preparing (a bred
persona's model call) rather than throw it away."""


def stored_config(book_config: dict[str, object], name: str, topic: str, outline: str | None) -> BookConfig:
    config = parse_book(dict(book_config), where=f"stored settings of book {name!r}")
    return dataclasses.replace(config, topic=topic, outline=outline)


@dataclass
class Host:
    """Plays durable epochs for this process (see the module docs)."""

    store: Store
    shared: SharedModels
    directors: dict[UUID, Director] = field(default_factory=dict)
    emit_for: Callable[[str], Listener] = lambda _name: ignore
    """The listener of a Director seated here for one epoch (a worker's log line per epoch)."""
    lock_waits_s: tuple[float, ...] = LOCK_WAITS_S
    engine: Durable | None = None
    """The process's durable engine, handed to each registered Director."""
    trust: EndpointTrust = field(default_factory=EndpointTrust)
    """Which endpoints read from the database (a book's stored settings, a queued call) this process builds."""

    def register(self, director: Director) -> None:
        """Play the epochs of ``director``'s book with it (a ``spacetime run`` book, seated by the run)."""
        self.directors[director.book.book_id] = director
        director.durable = self.engine

    async def play_epoch(self, book_id: UUID, epoch_no: int) -> EpochOutcome:
        director = self.directors.get(book_id)
        if director is not None:
            return await director.play_durable_epoch(epoch_no)
        book = await self.store.book_by_id(book_id)
        if book is None:
            raise ModelError(f"no book with id {book_id} in this database")
        config = self.trust.book(stored_config(book.config, book.name, book.topic, book.outline),
                                 where=f"book {book.name!r}")  # fmt: skip
        waits = list(self.lock_waits_s)
        while True:
            try:
                async with self.store.book_lock(book):
                    models = ModelPool(config, shared=self.shared)
                    try:
                        async with Director(self.store, book, config, models, emit=self.emit_for(book.name),
                                            succession_grace_s=SUCCESSION_GRACE_S) as d:  # fmt: skip
                            return await d.play_durable_epoch(epoch_no)
                    finally:
                        await models.aclose()
            except BookBusy:
                if not waits:
                    raise
                await asyncio.sleep(waits.pop(0))  # not a durable sleep: how long it takes is not the epoch's

    async def call_model(self, spec: EndpointSpec, messages: Sequence[Message], options: CallOptions) -> Completion:
        model = self.shared.raw(self.trust.admit(spec, where="a queued model call"))
        return await model.complete(messages, max_tokens=options.max_tokens, json_schema=options.json_schema,
                                    temperature=options.temperature, seed=options.seed)  # fmt: skip

    async def keep_going(self, book_id: UUID, epoch_no: int) -> bool:
        job = await self.store.jobs.get(book_id)
        if job is None or job.state is not JobState.QUEUED:
            return False
        if epoch_no >= job.target_epoch:
            await self.store.jobs.set_state(book_id, JobState.DONE)
            return False
        line = await self.budget_reached(book_id, epoch_no)
        if line is not None:  # the book's budget is spent: done, with one line in the worker's log
            await self.store.jobs.set_state(book_id, JobState.DONE)
            log.warning("%s", line)
            return False
        return True

    async def budget_reached(self, book_id: UUID, epoch_no: int) -> str | None:
        """The line saying a book has reached its ``[budget]`` after epoch ``epoch_no``, else ``None``."""
        book = await self.store.book_by_id(book_id)
        if book is None:
            return None
        config = stored_config(book.config, book.name, book.topic, book.outline)
        if config.budget is None:
            return None
        stop = budget_stop(config.budget, spend(await self.store.book_usage(book_id), config.prices))
        return None if stop is None else budget_line(book.name, stop, epoch_no)
