"""The Tournament Director: plays a book's epochs, joining the book's repository, the models and the clock.

One epoch: read its number and canon → ``spacetime.engine.epoch.run_epoch`` (burst → judgment → scoring → Elo →
collapse, pure of storage) → ONE transaction (``write_epoch``) → the reaper replaces the eliminated agent before
the next burst. ``async with Director(...) as director:`` seats the roster and, on the way out, releases it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from uuid import UUID

from spacetime.adapters.pg.store import Store
from spacetime.book import BookConfig
from spacetime.domain import Agent, Book, EpochOutcome, RatingChange
from spacetime.engine import durable
from spacetime.engine.durable import Durable
from spacetime.engine.epoch import MIN_DRAFTS, epoch_rng, run_epoch
from spacetime.engine.events import BudgetReached, EpochCommitted, EpochRetry, EpochStarted, Listener, ignore
from spacetime.engine.metering import metering
from spacetime.engine.models import ModelPool
from spacetime.engine.reaper import Reaper
from spacetime.engine.seats import Seat
from spacetime.errors import EpochShort, EpochUnjudged, ModelError
from spacetime.ports import BookRepository
from spacetime.prompts import render
from spacetime.rules.canon import DraftContext, Passage, fit_retrieved, plan_context
from spacetime.rules.cost import Spend, budget_line, budget_stop, spend
from spacetime.rules.rating import INITIAL_RATING

CONTEXT_TOKENS = 1536
"""At most this many prompt tokens of canon go into a draft prompt; past it, passages are retrieved (pgvector)."""
RETRIEVED_PASSAGES = 3


@dataclass
class Director:
    store: BookRepository
    book: Book
    config: BookConfig
    models: ModelPool
    emit: Listener = ignore
    clock: Callable[[], float] = time.time
    retry_waits_s: Sequence[float] = (5.0, 20.0, 60.0)
    seats: dict[UUID, Seat] = field(default_factory=dict)
    reaper: Reaper | None = None
    succession_grace_s: float = 0.0
    """How long a boundary waits for the successor being prepared (a bred one) before taking a quick one. A
    Director seated for one epoch (a fleet worker's) waits: what it prepares is otherwise thrown away."""
    durable: Durable | None = None
    """Set: each epoch is a DBOS workflow started through it (``spacetime run``); unset: played in place."""

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Director:
        try:
            await self.setup()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ roster
    async def setup(self) -> None:
        """Seat the living agents (a new book seats its starting roster)."""
        living = await self.store.agents(self.book.book_id, alive_only=True)
        if not living:
            if await self.store.epoch_count(self.book.book_id):
                raise ModelError(f"book {self.book.name!r} has no living agents left")
            for persona in self.config.roster:
                living.append(
                    await self.store.add_agent(
                        self.book.book_id, persona, rating=INITIAL_RATING, born_epoch=0,
                        model=self.config.agent_models.get(persona.name),
                    )  # fmt: skip
                )
        self.seats = {agent.agent_id: self.seat_for(agent) for agent in living}
        if self.reaper is None and isinstance(self.store, Store):  # the Reaper keeps its own PostgreSQL queries
            self.reaper = Reaper(self.store, self.book, self.config, self.seat_for, self.emit, models=self.models,
                                 prep_grace_s=self.succession_grace_s)  # fmt: skip
        if self.reaper is not None:
            await self.reaper.start()

    def seat_for(self, agent: Agent) -> Seat:
        from spacetime.adapters.llm.autogen import PersonaAgent

        model = self.models.metered(agent.model or self.config.endpoint_for(agent.name))
        runner = PersonaAgent(agent.persona, model, system_message=render("system.j2").strip())
        return Seat(agent=agent, runner=runner, model=model)

    async def close(self) -> None:
        if self.reaper is not None:
            await self.reaper.stop()
        for seat in self.seats.values():
            await seat.runner.close()
        self.seats.clear()

    # ------------------------------------------------------------------ play
    async def play(self, epochs: int) -> list[EpochOutcome]:
        """Play ``epochs`` epochs, fewer when the book's budget runs out first (``budget_reached``)."""
        outcomes = []
        for _ in range(epochs):
            if await self.budget_reached():
                break
            outcomes.append(await self.play_epoch_with_retries())
        return outcomes

    async def spent(self) -> Spend:
        """What the book's stored epochs used, and cost at the book's prices."""
        return spend(await self.store.book_usage(self.book.book_id), self.config.prices)

    async def budget_reached(self) -> str | None:
        """At an epoch boundary: the one line saying the book's budget is reached (also told to the listener as
        ``BudgetReached``), else ``None`` (always without a budget)."""
        if self.config.budget is None or not self.config.budget.limited:
            return None
        stop = budget_stop(self.config.budget, await self.spent())
        if stop is None:
            return None
        line = budget_line(self.book.name, stop, await self.store.epoch_count(self.book.book_id))
        self.emit(BudgetReached(self.book.name, line))
        return line

    async def play_epoch_with_retries(self) -> EpochOutcome:
        """Play the next epoch: as a durable workflow when the Director has one (``durable``), else in place."""
        epoch_no = await self.next_epoch_no()
        if self.durable is not None:
            return await self.durable.play(self.book.book_id, epoch_no)
        return await self.play_durable_epoch(epoch_no)

    async def play_durable_epoch(self, epoch_no: int) -> EpochOutcome:
        """Epoch ``epoch_no`` with its retries: the body of the epoch workflow. Too few drafts or no counted vote
        → wait (a durable sleep) and play the epoch again; an epoch a crashed run already committed is not played
        again (its outcome is read back)."""
        waits = list(self.retry_waits_s)
        attempt = 1
        while True:
            try:
                return await self.play_epoch(attempt, epoch_no=epoch_no)
            except (EpochShort, EpochUnjudged) as short:
                if not waits and isinstance(short, EpochUnjudged):
                    raise ModelError(
                        f"no judge produced a counted vote after {attempt} tries; the book is intact: check the "
                        "judge model's ballots and run again to resume"
                    ) from None
                if not waits:
                    raise ModelError(
                        f"epoch could not gather {MIN_DRAFTS} drafts after {attempt} tries ({short}); the book is "
                        "intact: check the model endpoints and run again to resume"
                    ) from None
                wait = waits.pop(0)
                self.emit(EpochRetry(epoch_no, short.drafts, wait))
                await durable.sleep(wait)
                attempt += 1

    async def next_epoch_no(self) -> int:
        return await self.store.epoch_count(self.book.book_id) + 1

    async def play_epoch(self, attempt: int = 1, *, epoch_no: int | None = None) -> EpochOutcome:
        committed = await self.store.epoch_count(self.book.book_id)
        if epoch_no is None:
            epoch_no = committed + 1
        if epoch_no <= committed:  # a replay after the commit: nothing to play or write again
            return await self.committed_outcome(epoch_no)
        if epoch_no != committed + 1:
            raise ModelError(f"epoch {epoch_no} of book {self.book.name!r} cannot be played: {committed} committed")
        if self.reaper is not None:
            self.seats = await self.reaper.ready(self.seats)  # the roster is complete before the burst
        rng = epoch_rng(self.config.seed, epoch_no, attempt, self.book.book_id)
        seats = await self.recorded_roster(epoch_no)
        self.emit(EpochStarted(self.book.name, epoch_no, tuple(s.name for s in seats), attempt))
        started = self.clock()
        t0 = time.perf_counter()

        context = await self.draft_context(epoch_no, seats[0])
        memories = self.reaper.memories() if self.reaper is not None else {}
        with metering(self.models.meter):  # calls replayed from a durable record are counted too
            record = await run_epoch(
                seats, book=self.book, config=self.config, epoch_no=epoch_no, context=context, memories=memories,
                rng=rng, embedder=self.models.metered_embedder(), started=started, clock=self.clock, emit=self.emit,
            )  # fmt: skip
        usage = self.models.meter.take()  # everything since the last commit: this epoch's calls, its failed tries,
        record = replace(record, usage=usage)  # breeding meanwhile
        try:
            epoch_id = await self.store.write_epoch(record)
        except BaseException:
            self.models.meter.give_back(usage)
            raise
        after = {r.agent_id: r for r in record.ratings}
        self.seats = {agent_id: _with_rating(seat, after.get(agent_id)) for agent_id, seat in self.seats.items()}
        wall = time.perf_counter() - t0
        decision = record.decision
        names = {s.agent.agent_id: s.name for s in seats}
        tokens = sum(d.completion_tokens for d in record.drafts)
        found = (record.audit or {}).get("warnings")
        warnings = tuple(str(w["text"]) for w in found if isinstance(w, dict)) if isinstance(found, list) else ()
        used = spend(usage, self.config.prices)
        self.emit(EpochCommitted(epoch_no, epoch_id, names[decision.winner_id], names[decision.loser_id],
                                 record.chapter_title, wall, tokens, warnings, used.usage, used.cost))  # fmt: skip
        if self.reaper is not None:
            self.seats = await self.reaper.epoch_committed(record, self.seats, names)
        else:  # no Reaper (a repository other than PostgreSQL, in tests): the loser leaves, nobody replaces it
            gone = self.seats.pop(decision.loser_id, None)
            if gone is not None:
                await gone.runner.close()
        return EpochOutcome(
            epoch_no=epoch_no, epoch_id=epoch_id, winner=names[decision.winner_id], loser=names[decision.loser_id],
            wall_s=wall, drafts=len(record.drafts), votes=sum(len(b.votes) for b in record.ballots),
            completion_tokens=tokens, forfeits=len(record.forfeits),
        )  # fmt: skip

    async def recorded_roster(self, epoch_no: int) -> list[Seat]:
        """The seats in the order the epoch's calls were first made (a durable step: a replay after a crash gets
        the recorded order, so each recorded draft and ballot goes back to its own agent). A replay whose living
        roster is not the recorded one cannot be finished: it fails, and the next run plays the epoch afresh."""
        seats = list(self.seats.values())
        current = [str(s.agent.agent_id) for s in seats]

        async def now() -> list[str]:
            return current

        order = await durable.record("spacetime.roster", now)
        if sorted(order) != sorted(current):
            raise ModelError(
                f"epoch {epoch_no} of book {self.book.name!r} was begun with another roster than the book has now; "
                "run again to play it afresh"
            )
        by_id = {str(s.agent.agent_id): s for s in seats}
        return [by_id[agent_id] for agent_id in order]

    async def committed_outcome(self, epoch_no: int) -> EpochOutcome:
        summary = await self.store.epoch_summary(self.book.book_id, epoch_no)
        if summary is None:
            raise ModelError(f"epoch {epoch_no} of book {self.book.name!r} is counted but cannot be read back")
        return EpochOutcome(
            epoch_no=epoch_no, epoch_id=summary.epoch_id, winner=summary.winner, loser=summary.loser,
            wall_s=summary.wall_s, drafts=summary.drafts, votes=summary.votes,
            completion_tokens=summary.completion_tokens, forfeits=summary.forfeits,
        )  # fmt: skip

    async def draft_context(self, epoch_no: int, seat: Seat) -> DraftContext:
        """The canon for the next draft: whole while it fits the budget, else previous chapter + retrieved passages."""
        chapters = await self.store.chapters(self.book.book_id)
        canon = [Passage(c.position, c.title, c.text) for c in chapters]
        model = seat.model
        budget = max(256, min(CONTEXT_TOKENS, model.context_window - self.config.max_tokens - 768))
        whole = plan_context(canon, budget, model.count_tokens, model.truncate_to_tokens)
        if whole is not None:
            return whole
        previous = canon[-1]
        similar: list[Passage] = []
        name = self.models.embedder_name
        if name is not None:
            query = await self.store.chapter_embedding(self.book.book_id, previous.position)
            if query is not None:
                found = await self.store.similar_chapters(
                    self.book.book_id, query, name, limit=RETRIEVED_PASSAGES, before_position=previous.position
                )
                similar = [Passage(c.position, c.title, c.text) for c in found]
        return fit_retrieved(previous, similar, budget, model.count_tokens, model.truncate_to_tokens)


def _with_rating(seat: Seat, change: RatingChange | None) -> Seat:
    """``seat`` with its agent's rating, σ and Elo after the epoch (unchanged without a ``change``)."""
    if change is None:
        return seat
    agent = replace(seat.agent, rating=change.after, sigma=change.sigma_after, elo=change.elo_after)
    return replace(seat, agent=agent)
