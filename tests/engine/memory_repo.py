"""An in-memory ``BookRepository`` (dicts, no PostgreSQL) for the engine's fast tests.

It keeps what ``spacetime.adapters.pg.store.Store`` keeps, as far as the Director can tell: books by name, personas
by name, agents in the order they entered, and each epoch written whole (the record, the ratings, the loser's
death, the chapter and its embedding) or not at all.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from spacetime.domain import Agent, AgentStatus, Book, Chapter, EpochRecord, EpochSummary, Persona, UsageLine
from spacetime.errors import ConfigError, StoreError
from spacetime.rules.cost import merged


@dataclass
class _StoredChapter:
    chapter: Chapter
    book_id: UUID
    embedding: list[float] | None
    embedding_model: str | None


@dataclass
class MemoryRepository:
    books: dict[str, Book] = field(default_factory=dict)
    personas: dict[str, Persona] = field(default_factory=dict)
    agents_by_id: dict[UUID, Agent] = field(default_factory=dict)
    """In the order the agents entered."""
    book_of: dict[UUID, UUID] = field(default_factory=dict)
    """Agent id → book id."""
    epochs: dict[UUID, EpochRecord] = field(default_factory=dict)
    """Epoch id → the record written, in the order written."""
    stored_chapters: list[_StoredChapter] = field(default_factory=list)

    # ---------------------------------------------------------------- books and personas
    async def get_book(self, name: str) -> Book | None:
        return self.books.get(name)

    async def create_book(
        self, name: str, topic: str, outline: str | None = None, config: dict[str, Any] | None = None
    ) -> Book:
        if name in self.books:
            raise ConfigError(f"a book named {name!r} already exists: pick another --book name")
        book = self.books[name] = Book(uuid.uuid4(), name, topic, outline, config or {})
        return book

    async def upsert_personas(self, personas: Sequence[Persona]) -> None:
        for persona in personas:
            self.personas.setdefault(persona.name, persona)

    # ---------------------------------------------------------------- agents
    async def add_agent(
        self, book_id: UUID, persona: Persona, *, rating: float, born_epoch: int, model: str | None = None
    ) -> Agent:
        await self.upsert_personas([persona])
        if any(a.name == persona.name and self.book_of[a.agent_id] == book_id for a in self.agents_by_id.values()):
            raise ConfigError(f"{persona.name} has already played in this book: an agent is never revived")
        agent = Agent(uuid.uuid4(), persona, rating, AgentStatus.ALIVE, born_epoch, None, model)
        self.agents_by_id[agent.agent_id] = agent
        self.book_of[agent.agent_id] = book_id
        return agent

    async def agents(self, book_id: UUID, *, alive_only: bool = False) -> list[Agent]:
        found = [
            a for a in self.agents_by_id.values()
            if self.book_of[a.agent_id] == book_id and (not alive_only or a.status is AgentStatus.ALIVE)
        ]  # fmt: skip
        return sorted(found, key=lambda a: a.born_epoch)  # stable: entry order within an epoch

    # ---------------------------------------------------------------- epochs
    def records(self, book_id: UUID) -> list[EpochRecord]:
        return [r for r in self.epochs.values() if r.book_id == book_id]

    async def epoch_count(self, book_id: UUID) -> int:
        return len(self.records(book_id))

    async def epoch_summary(self, book_id: UUID, epoch_no: int) -> EpochSummary | None:
        for epoch_id, r in self.epochs.items():
            if r.book_id == book_id and r.epoch_no == epoch_no:
                name = {a: self.agents_by_id[a].name for a in r.active_agent_ids}
                return EpochSummary(epoch_id, name[r.decision.winner_id], name[r.decision.loser_id],
                                    (r.end_time or 0.0) - (r.start_time or 0.0), len(r.drafts),
                                    sum(len(b.votes) for b in r.ballots),
                                    sum(d.completion_tokens for d in r.drafts), len(r.forfeits))  # fmt: skip
        return None

    async def book_usage(self, book_id: UUID) -> tuple[UsageLine, ...]:
        return merged(line for r in self.records(book_id) for line in r.usage)

    async def write_epoch(self, record: EpochRecord) -> UUID:
        if any(r.epoch_no == record.epoch_no for r in self.records(record.book_id)):
            raise StoreError(f"epoch {record.epoch_no} of this book is already recorded (epoch_no)")
        draft_by = {d.agent_id: d for d in record.drafts}
        winner = draft_by[record.decision.winner_id]  # checked before anything is kept: all or nothing
        epoch_id = uuid.uuid4()
        self.epochs[epoch_id] = record
        for change in record.ratings:
            self.agents_by_id[change.agent_id] = dataclasses.replace(self.agents_by_id[change.agent_id],
                                                                     rating=change.after)  # fmt: skip
        loser = self.agents_by_id[record.decision.loser_id]
        if loser.status is AgentStatus.ALIVE:
            self.agents_by_id[loser.agent_id] = dataclasses.replace(
                loser, status=AgentStatus.ELIMINATED, died_epoch=record.epoch_no
            )
        position = len(self._chapters(record.book_id)) + 1
        chapter = Chapter(position, record.chapter_title, record.chapter_text,
                          self.agents_by_id[winner.agent_id].name, record.epoch_no)  # fmt: skip
        model = record.embedding_model if record.chapter_embedding is not None else None
        self.stored_chapters.append(_StoredChapter(chapter, record.book_id, record.chapter_embedding, model))
        return epoch_id

    # ---------------------------------------------------------------- canon and retrieval
    def _chapters(self, book_id: UUID) -> list[_StoredChapter]:
        return [c for c in self.stored_chapters if c.book_id == book_id]

    async def chapters(self, book_id: UUID) -> list[Chapter]:
        return [c.chapter for c in self._chapters(book_id)]

    async def chapter_embedding(self, book_id: UUID, position: int) -> list[float] | None:
        found = [c.embedding for c in self._chapters(book_id) if c.chapter.position == position]
        return found[0] if found else None

    async def similar_chapters(
        self, book_id: UUID, embedding: Sequence[float], model: str, *, limit: int, before_position: int
    ) -> list[Chapter]:
        candidates = [
            c for c in self._chapters(book_id)
            if c.embedding_model == model and c.chapter.position < before_position and c.embedding is not None
        ]  # fmt: skip
        candidates.sort(key=lambda c: _cosine_distance(c.embedding or [], embedding))
        return [c.chapter for c in candidates[:limit]]


def _cosine_distance(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return 1.0 - dot / norm if norm else 1.0
