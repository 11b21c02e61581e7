"""The Tournament Director: the one place that joins the pure rules to the models, the store and the clock.

One epoch: burst → judgment (with embeddings computed alongside) → scoring → Elo → collapse → ONE transaction →
the reaper replaces the eliminated agent before the next burst.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from spacetime.adapters.pg.store import Store
from spacetime.book import BookConfig
from spacetime.domain import Agent, Book, Draft, EpochRecord, RatingChange
from spacetime.engine.burst import burst
from spacetime.engine.events import EpochCommitted, EpochRetry, EpochStarted, Listener, ignore
from spacetime.engine.judgment import judgment
from spacetime.engine.models import ModelPool
from spacetime.engine.reaper import Reaper
from spacetime.engine.seats import Seat
from spacetime.errors import EpochShort, ModelError
from spacetime.prompts import render
from spacetime.rules.anonymize import assign_aliases, review_orders
from spacetime.rules.canon import DraftContext, Passage, fit_retrieved, plan_context, split_title
from spacetime.rules.rating import INITIAL_RATING, elo_update
from spacetime.rules.scoring import draft_penalties, rated_totals, score_drafts
from spacetime.rules.selection import collapse

MIN_DRAFTS = 3
"""Below this many drafts an epoch is not played: it is retried later (a blind vote needs two other drafts)."""
CONTEXT_TOKENS = 1536
"""At most this many prompt tokens of canon go into a draft prompt; past it, passages are retrieved (pgvector)."""
RETRIEVED_PASSAGES = 3


@dataclass
class EpochOutcome:
    epoch_no: int
    epoch_id: UUID
    winner: str
    loser: str
    wall_s: float
    drafts: int
    votes: int
    completion_tokens: int
    forfeits: int


@dataclass
class Director:
    store: Store
    book: Book
    config: BookConfig
    models: ModelPool
    emit: Listener = ignore
    clock: Callable[[], float] = time.time
    retry_waits_s: Sequence[float] = (5.0, 20.0, 60.0)
    seats: dict[UUID, Seat] = field(default_factory=dict)
    reaper: Reaper | None = None

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
        for agent in living:
            self.seats[agent.agent_id] = self.seat_for(agent)
        if self.reaper is None:
            self.reaper = Reaper(self.store, self.book, self.config, self.seat_for, self.emit, models=self.models)
        await self.reaper.start()

    def seat_for(self, agent: Agent) -> Seat:
        from spacetime.adapters.llm.autogen import PersonaAgent

        model = self.models.chat(agent.model or self.config.endpoint_for(agent.name))
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
        outcomes = []
        for _ in range(epochs):
            outcomes.append(await self.play_epoch_with_retries())
        return outcomes

    async def play_epoch_with_retries(self) -> EpochOutcome:
        waits = list(self.retry_waits_s)
        attempt = 1
        while True:
            try:
                return await self.play_epoch(attempt)
            except EpochShort as short:
                if not waits:
                    raise ModelError(
                        f"epoch could not gather {MIN_DRAFTS} drafts after {attempt} tries ({short}); the book is "
                        "intact: check the model endpoints and run again to resume"
                    ) from None
                wait = waits.pop(0)
                self.emit(EpochRetry(await self.next_epoch_no(), short.drafts, wait))
                await asyncio.sleep(wait)
                attempt += 1

    async def next_epoch_no(self) -> int:
        return await self.store.epoch_count(self.book.book_id) + 1

    async def play_epoch(self, attempt: int = 1) -> EpochOutcome:
        if self.reaper is not None:
            await self.reaper.ready(self.seats)  # the roster is complete before the burst
        epoch_no = await self.next_epoch_no()
        seed = self.config.seed
        rng = random.Random(f"{seed}:{epoch_no}:{attempt}") if seed is not None else random.Random()
        seats = list(self.seats.values())
        self.emit(EpochStarted(self.book.name, epoch_no, tuple(s.name for s in seats), attempt))
        started = self.clock()
        t0 = time.perf_counter()

        context = await self.draft_context(epoch_no, seats[0])
        memories = self.reaper.memories() if self.reaper is not None else {}

        def prompt_for(seat: Seat) -> str:
            return render(
                "draft.j2",
                topic=self.book.topic,
                outline=self.book.outline,
                passages=context.passages,
                previous=context.previous,
                chapter_no=epoch_no,
                persona_prompt=seat.agent.persona.system_prompt,
                memory=memories.get(seat.agent.agent_id, ()),
                max_words=max(20, int(self.config.max_tokens * 0.6)),
            )

        epoch_seed = None if seed is None else rng.randrange(1 << 30)
        drafts, forfeits = await burst(
            seats, prompt_for, max_tokens=self.config.max_tokens, seed=epoch_seed, emit=self.emit
        )
        if len(drafts) < MIN_DRAFTS:
            raise EpochShort(len(drafts))

        forbidden = [w for s in seats for w in (s.agent.persona.name, s.agent.persona.discipline)]
        aliases = assign_aliases([d.agent_id for d in drafts], rng, forbidden=forbidden)
        orders = review_orders([s.agent.agent_id for s in seats], aliases, rng)
        penalties = draft_penalties(drafts)
        marker = f"{rng.getrandbits(48):012x}"
        ballots, embeddings = await asyncio.gather(
            judgment(
                seats, drafts, aliases, orders, {a: p.truncation + p.lateness for a, p in penalties.items()},
                topic=self.book.topic, chapter_no=epoch_no, marker=marker, seed=epoch_seed, emit=self.emit,
            ),  # fmt: skip
            self.embed(drafts),
        )
        votes = [v for b in ballots for v in b.votes]
        scores = score_drafts(drafts, votes, {a: (p.truncation, p.lateness) for a, p in penalties.items()})
        before = {s.agent.agent_id: s.agent.rating for s in seats}
        after = elo_update(before, rated_totals(scores))
        decision = collapse(scores, after, [s.agent.agent_id for s in seats], rng)
        winner = next(d for d in drafts if d.agent_id == decision.winner_id)
        title, body = split_title(winner.text, epoch_no)
        model_name = self.models.embedder_name
        record = EpochRecord(
            book_id=self.book.book_id,
            epoch_no=epoch_no,
            active_agent_ids=tuple(s.agent.agent_id for s in seats),
            drafts=tuple(drafts),
            aliases=aliases,
            ballots=tuple(ballots),
            scores=tuple(scores.values()),
            ratings=tuple(RatingChange(a, before[a], after.get(a, before[a])) for a in before),
            decision=decision,
            chapter_title=title,
            chapter_text=body,
            forfeits=tuple(forfeits),
            draft_embeddings=embeddings,
            chapter_embedding=embeddings.get(winner.agent_id),
            embedding_model=model_name if embeddings else None,
            start_time=started,
            end_time=self.clock(),
        )
        epoch_id = await self.store.write_epoch(record)
        for agent_id, seat in self.seats.items():
            seat.agent = _with_rating(seat.agent, after.get(agent_id, seat.agent.rating))
        wall = time.perf_counter() - t0
        names = {s.agent.agent_id: s.name for s in seats}
        tokens = sum(d.completion_tokens for d in drafts)
        self.emit(EpochCommitted(epoch_no, epoch_id, names[decision.winner_id], names[decision.loser_id], title,
                                 wall, tokens))  # fmt: skip
        if self.reaper is not None:
            await self.reaper.epoch_committed(record, self.seats, names)
        return EpochOutcome(
            epoch_no=epoch_no, epoch_id=epoch_id, winner=names[decision.winner_id], loser=names[decision.loser_id],
            wall_s=wall, drafts=len(drafts), votes=len(votes), completion_tokens=tokens, forfeits=len(forfeits),
        )  # fmt: skip

    async def embed(self, drafts: Sequence[Draft]) -> dict[UUID, list[float]]:
        embedder = self.models.embedder()
        if embedder is None:
            return {}
        vectors = await embedder.embed([d.text for d in drafts])
        return {d.agent_id: v for d, v in zip(drafts, vectors, strict=True)}

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


def _with_rating(agent: Agent, rating: float) -> Agent:
    from dataclasses import replace

    return replace(agent, rating=rating)
