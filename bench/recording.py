"""ChatModel wrappers for benchmarks: record every call (kind, latency, tokens), or force per-phase settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from spacetime.domain import Completion
from spacetime.ports import ChatModel, Message


@dataclass(frozen=True, slots=True)
class CallRecord:
    ballot: bool
    latency_s: float
    prompt_tokens: int
    completion_tokens: int
    messages: tuple[Message, ...]
    max_tokens: int
    json_schema: dict[str, Any] | None
    seed: int | None
    temperature: float
    text: str
    cached_tokens: int = 0
    """Prompt tokens the backend took from its prefix cache (llama.cpp's KV reuse on the embedded model)."""


@dataclass(eq=False)
class RecordingModel:
    """Forwards to ``inner`` (the real backend) and records every completed call in ``calls``."""

    inner: ChatModel
    calls: list[CallRecord] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    @property
    def concurrency(self) -> int:
        return int(getattr(self.inner, "concurrency", 1) or 1)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        json_schema: dict[str, Any] | None = None,
        temperature: float = 0.8,
        seed: int | None = None,
    ) -> Completion:
        done = await self.inner.complete(
            messages, max_tokens=max_tokens, json_schema=json_schema, temperature=temperature, seed=seed
        )
        self.calls.append(
            CallRecord(json_schema is not None, done.latency_s, done.prompt_tokens, done.completion_tokens,
                       tuple(messages), max_tokens, json_schema, seed, temperature, done.text,
                       done.cached_tokens)  # fmt: skip
        )
        return done

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def truncate_to_tokens(self, text: str, max_tokens: int) -> str:
        return self.inner.truncate_to_tokens(text, max_tokens)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(eq=False)
class PhaseModel:
    """For the sequential baseline: every call gets this agent's settings of the current phase (a draft cap, or a
    ballot schema and reply cap), whatever AutoGen's team passes, and goes to ``inner``. Not closed by ``aclose``."""

    inner: ChatModel
    max_tokens: int = 256
    json_schema: dict[str, Any] | None = None
    temperature: float = 0.8

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        json_schema: dict[str, Any] | None = None,
        temperature: float = 0.8,
        seed: int | None = None,
    ) -> Completion:
        return await self.inner.complete(
            messages, max_tokens=self.max_tokens, json_schema=self.json_schema, temperature=self.temperature,
            seed=seed,
        )  # fmt: skip

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def truncate_to_tokens(self, text: str, max_tokens: int) -> str:
        return self.inner.truncate_to_tokens(text, max_tokens)

    async def aclose(self) -> None:
        return None
