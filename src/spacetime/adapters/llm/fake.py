"""Test doubles for the model interface: a scripted chat model and a deterministic embedder.

Tests only: the product never falls back to these. They live in the package (not under ``tests/``) so every test
suite — unit, store, engine, e2e — can import them: ``from spacetime.adapters.llm.fake import ScriptedModel``.

Token accounting of the fakes is by whitespace-separated words: ``count_tokens("a b c") == 3``. A scripted reply
longer than the call's ``max_tokens`` is cut to ``max_tokens`` words and reported with ``FinishReason.LENGTH``,
like a real backend hitting its cap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from spacetime.domain import Completion, FinishReason
from spacetime.errors import ModelError
from spacetime.ports import Message

_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """One call a :class:`ScriptedModel` received (what the code under test asked for)."""

    messages: tuple[Message, ...]
    max_tokens: int
    json_schema: dict[str, Any] | None
    temperature: float
    seed: int | None

    @property
    def system(self) -> str:
        return "\n".join(m.content for m in self.messages if m.role == "system")

    @property
    def prompt(self) -> str:
        """Content of the last user message."""
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")


Reply = str | Completion | BaseException
"""A scripted reply: text (finish reason computed), a full ``Completion`` (returned as is, latency replaced by the
measured one), or an exception instance (raised; use ``ModelError`` to simulate a backend failing for good)."""

Responder = Callable[[ScriptedCall], Reply | Awaitable[Reply]]


@dataclass
class ScriptedModel:
    """A ``ChatModel`` that answers from a script. For tests only.

    ``replies`` is either a sequence consumed in order (``cycle=True`` wraps around, otherwise running out raises
    ``ModelError``) or a callable ``(ScriptedCall) -> Reply`` (sync or async) deciding per call.

    ``delay_s`` sleeps inside the call (after taking a slot), so tests can observe concurrency and latency;
    ``concurrency`` bounds calls in flight like a real endpoint (``None`` = unbounded). Every call is recorded in
    ``calls``; ``max_in_flight`` is the most calls that were ever being served at once.
    """

    replies: Sequence[Reply] | Responder = ("",)
    name: str = "scripted"
    context_window: int = 8192
    delay_s: float = 0.0
    concurrency: int | None = None
    cycle: bool = False
    calls: list[ScriptedCall] = field(default_factory=list, init=False)
    max_in_flight: int = field(default=0, init=False)
    closed: bool = field(default=False, init=False)
    _next: int = field(default=0, init=False, repr=False)
    _in_flight: int = field(default=0, init=False, repr=False)
    _slots: asyncio.Semaphore | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.concurrency is not None:
            if self.concurrency < 1:
                raise ValueError("concurrency must be >= 1")
            self._slots = asyncio.Semaphore(self.concurrency)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        json_schema: dict[str, Any] | None = None,
        temperature: float = 0.8,
        seed: int | None = None,
    ) -> Completion:
        if self.closed:
            raise ModelError(f"model endpoint {self.name!r}: closed")
        call = ScriptedCall(tuple(messages), max_tokens, json_schema, temperature, seed)
        self.calls.append(call)
        if self._slots is None:
            return await self._serve(call)
        async with self._slots:
            return await self._serve(call)

    async def _serve(self, call: ScriptedCall) -> Completion:
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        started = time.perf_counter()
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            reply = self._reply_for(call)
            if inspect.isawaitable(reply):
                reply = await reply
        finally:
            self._in_flight -= 1
        latency = time.perf_counter() - started
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, Completion):
            return dataclasses.replace(reply, latency_s=latency)
        text = str(reply)
        finish = FinishReason.STOP
        if self.count_tokens(text) > call.max_tokens:
            text = self.truncate_to_tokens(text, call.max_tokens)
            finish = FinishReason.LENGTH
        prompt_tokens = sum(self.count_tokens(m.content) for m in call.messages)
        return Completion(text, finish, prompt_tokens, self.count_tokens(text), latency)

    def _reply_for(self, call: ScriptedCall) -> Reply | Awaitable[Reply]:
        if callable(self.replies):
            return self.replies(call)
        script = self.replies
        if self._next >= len(script):
            if not self.cycle or not script:
                return ModelError(f"model endpoint {self.name!r}: script exhausted after {self._next} replies")
            self._next = 0
        reply = script[self._next]
        self._next += 1
        return reply

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))

    def truncate_to_tokens(self, text: str, max_tokens: int) -> str:
        if max_tokens <= 0:
            return ""
        for i, match in enumerate(_WORD.finditer(text), start=1):
            if i == max_tokens:
                return text[: match.end()]
        return text

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class HashEmbedder:
    """A deterministic ``Embedder`` for tests: hashed bag of words, L2-normalised.

    Same text → same vector in every process; texts sharing words get a positive cosine similarity, so
    retrieval tests can rank. No model, no I/O.
    """

    dim: int = 32
    name: str = ""
    calls: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.dim < 2:
            raise ValueError("dim must be >= 2")
        if not self.name:
            self.name = f"hash-bow-{self.dim}"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        return [self.vector(t) for t in texts]

    def vector(self, text: str) -> list[float]:
        vec = [0.0] * self.dim
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self.dim
            vec[index] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in vec))
        if norm == 0.0:  # no words, or words that cancelled out: a fixed unit vector
            vec[0], norm = 1.0, 1.0
        return [x / norm for x in vec]

    async def aclose(self) -> None:
        return None
