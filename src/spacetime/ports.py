"""The ports: the narrow interfaces the engine talks to, implemented by ``spacetime.adapters`` (and by fakes in
tests). Protocols and plain values only; no I/O here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from spacetime.domain import Completion

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
