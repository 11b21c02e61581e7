"""The ports: the narrow interfaces the engine talks to, implemented by ``spacetime.adapters`` (and by fakes in
tests). Protocols and plain values only; no I/O here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable
from uuid import UUID

from spacetime.domain import Agent, Book, Chapter, Completion, EpochRecord, EpochSummary, Persona, UsageLine

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@runtime_checkable
class ChatModel(Protocol):
    """One model endpoint (embedded llama.cpp, an OpenAI-compatible server, or a test fake).

    Implementations bound their own concurrency (the embedded model runs one request at a time; an HTTP endpoint
    has a configurable limit), retry transient failures, and raise ``spacetime.errors.ModelError`` when a call
    fails for good.
    """

    name: str
    """Endpoint name as configured (``embedded``, ``vllm-a`` …)."""
    context_window: int
    """Total tokens (prompt + completion) the model accepts."""

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        json_schema: dict[str, Any] | None = None,
        temperature: float = 0.8,
        seed: int | None = None,
    ) -> Completion:
        """Generate one reply. With ``json_schema`` the backend is asked for structured output when it can do it."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in this model's prompt (exact for the embedded model, a safe estimate over HTTP)."""
        ...

    def truncate_to_tokens(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` that fits in ``max_tokens`` tokens."""
        ...

    async def aclose(self) -> None:
        """Release the model (weights, HTTP connections)."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors for pgvector retrieval."""

    name: str
    """Identifies the vector space (model name); vectors of different embedders are never compared."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def aclose(self) -> None: ...


class BookRepository(Protocol):
    """Where books are kept: what ``spacetime run`` (``engine/play.py``) and the Director read and write.

    Implemented by ``spacetime.adapters.pg.store.Store`` (PostgreSQL + pgvector) and, for tests, by an in-memory
    repository. Raises ``spacetime.errors.StoreError`` when the storage fails.
    """

    async def get_book(self, name: str) -> Book | None: ...

    async def create_book(
        self, name: str, topic: str, outline: str | None = None, config: dict[str, Any] | None = None
    ) -> Book:
        """A new book; ``ConfigError`` when the name is taken."""
        ...

    async def upsert_personas(self, personas: Sequence[Persona]) -> None:
        """Keep the personas not kept yet (by name); existing ones are left as they are."""
        ...

    async def add_agent(
        self, book_id: UUID, persona: Persona, *, rating: float, born_epoch: int, model: str | None = None
    ) -> Agent:
        """Seat ``persona`` in the book as a living agent; ``ConfigError`` when it has played the book before."""
        ...

    async def agents(self, book_id: UUID, *, alive_only: bool = False) -> list[Agent]:
        """The book's agents, founders first, in the order they entered."""
        ...

    async def epoch_count(self, book_id: UUID) -> int: ...

    async def epoch_summary(self, book_id: UUID, epoch_no: int) -> EpochSummary | None:
        """The committed epoch ``epoch_no`` of the book as its outcome is reported, or ``None``."""
        ...

    async def book_usage(self, book_id: UUID) -> tuple[UsageLine, ...]:
        """What the book's stored epochs used (``EpochRecord.usage`` summed by kind of call and endpoint)."""
        ...

    async def write_epoch(self, record: EpochRecord) -> UUID:
        """Keep a whole epoch at once (its usage, drafts, ballots, votes, ratings, the loser's death, the chapter) or
        nothing of it; returns the epoch's id. ``StoreError`` when the epoch is already recorded."""
        ...

    async def chapters(self, book_id: UUID) -> list[Chapter]:
        """The canon, in order."""
        ...

    async def chapter_embedding(self, book_id: UUID, position: int) -> list[float] | None: ...

    async def similar_chapters(
        self, book_id: UUID, embedding: Sequence[float], model: str, *, limit: int, before_position: int
    ) -> list[Chapter]:
        """At most ``limit`` chapters before ``before_position`` embedded by ``model``, nearest (cosine) first."""
        ...
