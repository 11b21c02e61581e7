"""One epoch, pure of storage: burst → judgment (embeddings alongside) → scoring → Elo → collapse → ``EpochRecord``.

The Director reads what an epoch needs from the book's repository (its number, the canon for the draft prompt) and
the agents' memories from the Reaper, calls :func:`run_epoch`, and writes the record it returns in one transaction.
Nothing here touches storage: the seats (models), the embedder, the clock and the randomness come in as arguments.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from uuid import UUID

from spacetime.book import BookConfig
from spacetime.domain import Book, Draft, EpochRecord, RatingChange
from spacetime.engine.burst import burst
from spacetime.engine.events import Listener
from spacetime.engine.judgment import judgment
from spacetime.engine.seats import Seat
from spacetime.errors import EpochShort
from spacetime.ports import Embedder
from spacetime.prompts import render
from spacetime.rules.anonymize import assign_aliases, review_orders
from spacetime.rules.canon import DraftContext, split_title
from spacetime.rules.rating import elo_update
from spacetime.rules.scoring import draft_penalties, rated_totals, score_drafts
from spacetime.rules.selection import collapse

MIN_DRAFTS = 3
"""Below this many drafts an epoch is not played: it is retried later (a blind vote needs two other drafts)."""


def epoch_rng(seed: int | None, epoch_no: int, attempt: int) -> random.Random:
    """The epoch's randomness: replayable from the book's seed (per epoch and attempt), else fresh."""
    return random.Random(f"{seed}:{epoch_no}:{attempt}") if seed is not None else random.Random()


def draft_prompt(
    seat: Seat, *, book: Book, config: BookConfig, context: DraftContext, epoch_no: int, memory: Sequence[str]
) -> str:
    """The burst prompt of one agent: the canon (``context``), then its persona and its own notes."""
    return render(
        "draft.j2",
        topic=book.topic,
        outline=book.outline,
        passages=context.passages,
        previous=context.previous,
        chapter_no=epoch_no,
        persona_prompt=seat.agent.persona.system_prompt,
        memory=memory,
        max_words=max(20, int(config.max_tokens * 0.6)),
    )


async def embed_drafts(embedder: Embedder | None, drafts: Sequence[Draft]) -> dict[UUID, list[float]]:
    """Author id → embedding of its draft (empty without an embedder)."""
    if embedder is None:
        return {}
    vectors = await embedder.embed([d.text for d in drafts])
    return {d.agent_id: v for d, v in zip(drafts, vectors, strict=True)}


async def run_epoch(
    seats: Sequence[Seat],
    *,
    book: Book,
    config: BookConfig,
    epoch_no: int,
    context: DraftContext,
    memories: Mapping[UUID, Sequence[str]],
    rng: random.Random,
    embedder: Embedder | None,
    started: float,
    clock: Callable[[], float],
    emit: Listener,
) -> EpochRecord:
    """Play epoch ``epoch_no`` with ``seats`` and return everything it decided (nothing is written).

    Raises ``EpochShort`` when fewer than ``MIN_DRAFTS`` drafts came back (the caller waits and plays again).
    """
    seed = config.seed
    epoch_seed = None if seed is None else rng.randrange(1 << 30)

    def prompt_for(seat: Seat) -> str:
        memory = memories.get(seat.agent.agent_id, ())
        return draft_prompt(seat, book=book, config=config, context=context, epoch_no=epoch_no, memory=memory)

    drafts, forfeits = await burst(seats, prompt_for, max_tokens=config.max_tokens, seed=epoch_seed, emit=emit)
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
            topic=book.topic, chapter_no=epoch_no, marker=marker, seed=epoch_seed, emit=emit,
        ),  # fmt: skip
        embed_drafts(embedder, drafts),
    )
    votes = [v for b in ballots for v in b.votes]
    scores = score_drafts(drafts, votes, {a: (p.truncation, p.lateness) for a, p in penalties.items()})
    before = {s.agent.agent_id: s.agent.rating for s in seats}
    after = elo_update(before, rated_totals(scores))
    decision = collapse(scores, after, [s.agent.agent_id for s in seats], rng)
    winner = next(d for d in drafts if d.agent_id == decision.winner_id)
    title, body = split_title(winner.text, epoch_no)
    return EpochRecord(
        book_id=book.book_id,
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
        embedding_model=embedder.name if embeddings and embedder is not None else None,
        start_time=started,
        end_time=clock(),
    )
