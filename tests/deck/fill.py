"""Fill a database with a realistic book quickly: the factories' epochs, re-scored with the real rules (skill-biased
votes → mean insight − penalties → Elo → winner and lowest-rated loser), written with ``Store.write_epoch`` exactly
as ``spacetime run`` writes them, and each loser replaced like the Reaper does (some replacements bred)."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from spacetime.adapters.llm.fake import HashEmbedder
from spacetime.adapters.pg.store import Store
from spacetime.domain import (
    Agent,
    Book,
    CallKind,
    CollapseDecision,
    DraftScore,
    EpochRecord,
    Persona,
    PersonaOrigin,
    RatingChange,
    Usage,
    UsageLine,
)
from spacetime.rules.rating import INITIAL_RATING, elo_update
from tests.factories import NAMES, make_epoch, persona

TOPICS = ["entropy and the arrow of time", "clocks, orbits and calendars", "memory and forgetting",
          "markets that price the future", "light cones and causality", "the politics of standard time"]


def skill(name: str) -> float:
    """A stable 3..8 writing skill per agent name."""
    return 3.0 + 5.0 * hashlib.blake2b(name.encode(), digest_size=2).digest()[0] / 255


def newcomer(epoch_no: int, alive: list[Agent], *, breed_every: int, book: str = "") -> Persona:
    """The persona replacing epoch ``epoch_no``'s loser: a copy of a built-in one, or (every ``breed_every``
    epochs) one bred from the two best, named after its ``book`` too (a bred persona's name is new in the store)."""
    base = NAMES[epoch_no % len(NAMES)]
    if breed_every and epoch_no % breed_every == 0 and len(alive) >= 2:
        best = sorted(alive, key=lambda a: -a.rating)[:2]
        name = f"{base} {epoch_no}" + (f" ({book})" if book else "")
        return Persona(name=name, discipline=base, voice=f"Writes like {best[0].name}.",
                       system_prompt=f"You are {name}.", origin=PersonaOrigin.BRED,
                       parents=(best[0].name, best[1].name))
    return dataclasses.replace(persona(base), name=f"{base} {epoch_no}")


def rescore(record: EpochRecord, agents: list[Agent], rng: random.Random) -> EpochRecord:
    """Skill-biased votes (a vote the factory gave a G-Eval reading keeps one, a quarter point above its new
    integer), the real scoring (G-Eval readings where known) and Elo, the real winner and loser."""
    names = {a.agent_id: a.name for a in agents}
    ballots = []
    for ballot in record.ballots:
        votes = []
        for v in ballot.votes:
            score = min(10, max(1, round(skill(names[v.target_id]) + rng.gauss(0, 1.8))))
            geval = None if v.expected_score is None else min(score + 0.25, 10.0)
            votes.append(dataclasses.replace(v, insight_score=score, expected_score=geval))
        ballots.append(dataclasses.replace(ballot, votes=tuple(votes)))
    received: dict[Any, list[float]] = {a.agent_id: [] for a in agents}
    for ballot in ballots:
        for v in ballot.votes:
            received[v.target_id].append(v.score)
    truncated = {d.agent_id for d in record.drafts if d.truncated}
    scores = {}
    for a in agents:
        got = received[a.agent_id]
        mean = sum(got) / len(got) if got else 0.0
        trunc = 5.0 if a.agent_id in truncated else 0.0
        scores[a.agent_id] = DraftScore(a.agent_id, mean, trunc, 0.0, mean - trunc, len(got))
    before = {a.agent_id: a.rating for a in agents}
    after = elo_update(before, {i: s.total for i, s in scores.items()})
    winner = max(scores.values(), key=lambda s: (s.total, s.mean_insight, str(s.agent_id))).agent_id
    loser = min((i for i in after if i != winner), key=lambda i: (after[i], scores[i].total))
    ratings = tuple(RatingChange(i, before[i], after[i]) for i in before)
    text = next(d.text for d in record.drafts if d.agent_id == winner)
    return dataclasses.replace(record, ballots=tuple(ballots), scores=tuple(scores.values()), ratings=ratings,
                               decision=CollapseDecision(winner, loser), chapter_text=text,
                               chapter_embedding=record.draft_embeddings.get(winner))


def usage_of(record: EpochRecord) -> tuple[UsageLine, ...]:
    """What the epoch's calls used: its drafts' own tokens, and 1,000 prompt tokens (400 cached) + 50 completion
    tokens per ballot."""
    drafts = Usage(len(record.drafts), sum(d.prompt_tokens for d in record.drafts), 0,
                   sum(d.completion_tokens for d in record.drafts))  # fmt: skip
    n = len(record.ballots)
    return (UsageLine(CallKind.DRAFT, "embedded", drafts),
            UsageLine(CallKind.BALLOT, "embedded", Usage(n, 1000 * n, 400 * n, 50 * n)))  # fmt: skip


async def fill_book(store: Store, name: str, epochs: int, *, roster: int = 6, topic: str = "What is time?",
                    config: dict[str, Any] | None = None, breed_every: int = 4, semantic: HashEmbedder | None = None,
                    start: int = 1, book: Book | None = None, alive: list[Agent] | None = None,
                    edit: Callable[[EpochRecord], EpochRecord] | None = None,
                    ) -> tuple[Book, list[Agent]]:
    """A book of ``epochs`` epochs (continuing ``book``/``alive`` from epoch ``start`` when given). With
    ``semantic``, drafts and chapters carry topic-specific texts embedded by that embedder (else the factory's
    random 8-d vectors, model ``test-hash``). ``edit`` changes each scored epoch before it is written (a test's
    own votes or ratings)."""
    if book is None:
        book = await store.create_book(name, topic, config=config if config is not None else {"embedder": "embedded"})
    if alive is None:
        alive = [await store.add_agent(book.book_id, persona(n), rating=INITIAL_RATING, born_epoch=0)
                 for n in NAMES[:roster]]
    for e in range(start, start + epochs):
        rng = random.Random(e)
        record = make_epoch(book.book_id, e, alive, rng=rng, embeddings=semantic is None)
        if semantic is not None:
            topic_of = {a.agent_id: TOPICS[(e + k) % len(TOPICS)] for k, a in enumerate(alive)}
            drafts = tuple(dataclasses.replace(d, text=f"On {topic_of[d.agent_id]}: a chapter draft of epoch {e}.")
                           for d in record.drafts)
            embedded = await semantic.embed([d.text for d in drafts])
            vectors = dict(zip([d.agent_id for d in drafts], embedded, strict=True))
            record = dataclasses.replace(record, drafts=drafts, draft_embeddings=vectors,
                                         embedding_model=semantic.name)
        record = rescore(record, alive, rng)
        winner = record.decision.winner_id
        title = f"Chapter {e}" + (f": {topic_of[winner]}" if semantic is not None else "")
        record = dataclasses.replace(record, chapter_title=title, usage=usage_of(record))
        if edit is not None:
            record = edit(record)
        await store.write_epoch(record)
        after = {r.agent_id: r.after for r in record.ratings}
        alive = [dataclasses.replace(a, rating=after.get(a.agent_id, a.rating)) for a in alive
                 if a.agent_id != record.decision.loser_id]
        entrant = newcomer(e, alive, breed_every=breed_every, book=book.name)
        alive.append(await store.add_agent(book.book_id, entrant, rating=INITIAL_RATING, born_epoch=e,
                                           replaced_agent_id=record.decision.loser_id))
    return book, alive


def _with_db(url: str, dbname: str) -> str:
    head, _, query = url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{dbname}" + (f"?{query}" if query else "")


def new_database(server_url: str) -> tuple[str, str]:
    from spacetime.adapters.pg.connect import prepare
    from spacetime.config import Settings

    name = f"deck_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, prepare(Settings(data_dir=Path("/nonexistent"), database_url=_with_db(server_url, name)))


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def play_more(url: str, name: str, epochs: int, **kwargs: Any) -> None:
    """Add ``epochs`` epochs to book ``name`` (creating it if needed), like another ``spacetime run`` would."""
    from spacetime.adapters.pg.store import open_store

    async with open_store(url, max_size=2) as store:
        book = await store.get_book(name)
        alive = None if book is None else await store.agents(book.book_id, alive_only=True)
        start = 1 if book is None else await store.epoch_count(book.book_id) + 1
        await fill_book(store, name, epochs, start=start, book=book, alive=alive, **kwargs)
