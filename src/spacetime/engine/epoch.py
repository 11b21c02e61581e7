"""One epoch, pure of storage: burst → judgment (embeddings alongside) → scoring → ratings → collapse → ``EpochRecord``.

The Director reads what an epoch needs from the book's repository (its number, the canon for the draft prompt) and
the agents' memories from the Reaper, calls :func:`run_epoch`, and writes the record it returns in one transaction.
Nothing here touches storage: the seats (models), the embedder, the clock and the randomness come in as arguments.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable, Mapping, Sequence
from uuid import UUID

from spacetime.book import BookConfig
from spacetime.domain import Book, Draft, EpochRecord, Persona
from spacetime.engine import durable
from spacetime.engine.burst import burst
from spacetime.engine.events import EmbeddingsSkipped, Listener, ignore
from spacetime.engine.judgment import judgment, preflight
from spacetime.engine.seats import Seat
from spacetime.errors import EpochShort, ModelError
from spacetime.ports import Embedder
from spacetime.prompts import render
from spacetime.rules.anonymize import assign_aliases, review_plans
from spacetime.rules.audit import audit_epoch, audit_votes
from spacetime.rules.audit import to_json as audit_json
from spacetime.rules.ballot import judge_copy, neutralise
from spacetime.rules.canon import DraftContext, Passage, split_title
from spacetime.rules.masking import mask_identities
from spacetime.rules.scoring import draft_penalties
from spacetime.rules.selection import judge

MIN_DRAFTS = 3
"""Below this many drafts an epoch is not played: it is retried later (a blind vote needs two other drafts)."""


def epoch_rng(seed: int | None, epoch_no: int, attempt: int, book_id: UUID | None = None) -> random.Random:
    """The epoch's randomness: replayable from the book's seed (per epoch and attempt), else from the book's id
    (a durable epoch replayed after a crash draws the same aliases and orders its recorded ballots were cast in).
    Fresh only without either."""
    if seed is not None:
        return random.Random(f"{seed}:{epoch_no}:{attempt}")
    return random.Random(f"book:{book_id}:{epoch_no}:{attempt}") if book_id is not None else random.Random()


def draft_prompt(
    persona: Persona, *, book: Book, config: BookConfig, context: DraftContext, epoch_no: int, memory: Sequence[str]
) -> str:
    """The burst prompt of one author: the canon (``context``), then its persona and its own notes.

    The canon and the notes are quoted as data between fixed frames; their text is ``neutralise``-d so no ``<<``
    or ``>>`` inside them can close a frame. A built-in or bred persona is described by its discipline and voice
    only — never its name or "you are the …", which a small model copies into the draft ("As the Physicist, …");
    a persona given its own ``system_prompt`` in the book file gets that prompt as written."""

    def quoted(p: Passage) -> Passage:
        return dataclasses.replace(p, title=neutralise(p.title), text=neutralise(p.text))

    custom = persona.system_prompt if persona.system_prompt != render("persona.j2", persona=persona).strip() else None
    return render(
        "draft.j2",
        topic=book.topic,
        outline=book.outline,
        passages=[quoted(p) for p in context.passages],
        previous=quoted(context.previous) if context.previous is not None else None,
        chapter_no=epoch_no,
        persona_prompt=custom,
        discipline=persona.discipline,
        voice=persona.voice,
        memory=[neutralise(note) for note in memory],
        max_words=max(20, int(config.max_tokens * 0.6)),
    )


def identities(seats: Sequence[Seat], config: BookConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names, disciplines) of every persona a judge must not learn of: the living seats, the roster, the reserve."""
    personas = [*(s.agent.persona for s in seats), *config.roster, *config.reserve]
    names = tuple(dict.fromkeys(p.name for p in personas))
    disciplines = tuple(dict.fromkeys(p.discipline for p in personas))
    return names, disciplines


async def embed_drafts(
    embedder: Embedder | None, drafts: Sequence[Draft], emit: Listener = ignore
) -> dict[UUID, list[float]]:
    """Author id → embedding of its draft (empty without an embedder, or when it fails: vectors only feed
    retrieval, so a failing embedder never costs an epoch — the drafts are stored without vectors, and ``emit``
    hears ``EmbeddingsSkipped``)."""
    if embedder is None:
        return {}
    slot = durable.reserve(1)[0]
    try:
        vectors = await slot.call("spacetime.embed", lambda: embedder.embed([d.text for d in drafts]))
    except ModelError as exc:
        emit(EmbeddingsSkipped(str(exc)))
        return {}
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

    Raises ``EpochShort`` when fewer than ``MIN_DRAFTS`` drafts came back, ``EpochUnjudged`` when no ballot yielded a
    counted vote (either way the caller waits and plays again). The verdict (scores, ratings, collapse) is
    ``rules.selection.judge``; a draft with screening ``flags`` never wins unless every judged draft has some.
    """
    seed = config.seed
    epoch_seed = None if seed is None else rng.randrange(1 << 30)

    def prompt_for(seat: Seat) -> str:
        memory = memories.get(seat.agent.agent_id, ())
        persona = seat.agent.persona
        return draft_prompt(persona, book=book, config=config, context=context, epoch_no=epoch_no, memory=memory)

    preflight(seats, topic=book.topic, chapter_no=epoch_no, draft_tokens=config.max_tokens,
              layout=config.ballot_layout)  # before any call
    drafts, forfeits = await burst(seats, prompt_for, max_tokens=config.max_tokens, seed=epoch_seed, emit=emit)
    if len(drafts) < MIN_DRAFTS:
        raise EpochShort(len(drafts))

    # blind review: judges read a screened, masked copy; the drafts (stored, canonised) keep their own text
    names, disciplines = identities(seats, config)
    copies = {d.agent_id: judge_copy(d.text, names, disciplines) for d in drafts}
    drafts = [dataclasses.replace(d, flags=copies[d.agent_id].flags) for d in drafts]
    aliases = assign_aliases([d.agent_id for d in drafts], rng, forbidden=[*names, *disciplines])
    plans = review_plans([s.agent.agent_id for s in seats], aliases, rng, config.ballot_layout)
    penalties = draft_penalties(drafts)
    spotlight_rng = random.Random(rng.getrandbits(48))
    ballots, embeddings = await asyncio.gather(
        judgment(
            seats, drafts, aliases, plans, {a: p.truncation + p.lateness for a, p in penalties.items()},
            topic=book.topic, chapter_no=epoch_no, rng=spotlight_rng, seed=epoch_seed, emit=emit,
            judge_texts={a: c.text for a, c in copies.items()},
            mask=lambda text: mask_identities(text, names, disciplines),
        ),  # fmt: skip
        embed_drafts(embedder, drafts, emit),
    )
    votes = [v for b in ballots for v in b.votes]
    flagged = {d.agent_id for d in drafts if d.flags}
    verdict = judge(drafts, votes, [s.agent for s in seats], rng, flagged=flagged, penalties=penalties)
    decision = verdict.decision
    winner = next(d for d in drafts if d.agent_id == decision.winner_id)
    title, body = split_title(winner.text, epoch_no)
    record = EpochRecord(
        book_id=book.book_id,
        epoch_no=epoch_no,
        active_agent_ids=tuple(s.agent.agent_id for s in seats),
        drafts=tuple(drafts),
        aliases=aliases,
        ballots=tuple(ballots),
        scores=tuple(verdict.scores.values()),
        ratings=verdict.ratings,
        decision=decision,
        chapter_title=title,
        chapter_text=body,
        forfeits=tuple(forfeits),
        draft_embeddings=embeddings,
        chapter_embedding=embeddings.get(winner.agent_id),
        embedding_model=embedder.name if embeddings and embedder is not None else None,
        start_time=started,
        end_time=clock(),
        verdict_confidence=verdict.confidence,
    )
    # the judging audit of this epoch (its own generator: the verdict's draws are done)
    health = audit_epoch(audit_votes(record), rng=random.Random(rng.getrandbits(64)),
                         names={s.agent.agent_id: s.name for s in seats})  # fmt: skip
    audit = audit_json(health)
    return dataclasses.replace(record, audit=audit if isinstance(audit, dict) else None)
