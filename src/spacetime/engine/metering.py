"""Every model call a book makes, counted: a per-book :class:`UsageMeter` and the wrappers that feed it.

The Director's ``ModelPool`` hands its seats, its Reaper and its epochs metered models (``MeteredModel``,
``MeteredEmbedder``) over the shared ones, so several books on one ``SharedModels`` keep their own counts. What a
chat call was for (draft, ballot, re-ask, breeding) is a context variable: a durable step sets it from its name
(``spacetime.draft`` …, see ``durable.Slot.call``), the breeder sets ``BREEDING``; an embedding is always
``EMBEDDING``. The Director drains the meter when an epoch is committed: the epoch's ``usage`` is everything the
book's calls used since the previous commit (its failed tries, breeding that happened meanwhile).

A call replayed from a durable epoch's record (a run resuming a killed epoch) is counted from the recorded
``Completion`` (``replayed``), into the meter of the epoch being played (``metering(meter)``): it was paid for by
the dead run, whose counts were never stored.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from spacetime.domain import CallKind, Completion, Usage, UsageLine
from spacetime.ports import ChatModel, Embedder, Message
from spacetime.rules.cost import merged

_kind: ContextVar[CallKind | None] = ContextVar("spacetime_call_kind", default=None)
_meter: ContextVar[UsageMeter | None] = ContextVar("spacetime_usage_meter", default=None)

STEP_KINDS = {"spacetime.draft": CallKind.DRAFT, "spacetime.ballot": CallKind.BALLOT,
              "spacetime.reask": CallKind.REASK, "spacetime.embed": CallKind.EMBEDDING}  # fmt: skip
"""The durable steps' names and the kind of call each makes."""
ESTIMATE_BYTES_PER_TOKEN = 4
"""An embedder that neither reports usage nor counts tokens is charged ``ceil(utf-8 bytes / 4)`` per text."""


@contextmanager
def calls(kind: CallKind | None) -> Iterator[None]:
    """Chat calls made inside the block (and in tasks started from it) are counted as ``kind``."""
    token = _kind.set(kind)
    try:
        yield
    finally:
        _kind.reset(token)


def current_kind() -> CallKind:
    """The kind of the chat call being made (``DRAFT`` when nothing says otherwise)."""
    return _kind.get() or CallKind.DRAFT


@contextmanager
def metering(meter: UsageMeter) -> Iterator[None]:
    """Calls replayed from a durable record inside the block are counted in ``meter``."""
    token = _meter.set(meter)
    try:
        yield
    finally:
        _meter.reset(token)


def replayed(step: str, result: object) -> None:
    """A durable step ``step`` returned ``result`` from its record without calling: count it, when it is a chat
    call's ``Completion`` that says on which endpoint it was made."""
    meter = _meter.get()
    if meter is None or not isinstance(result, Completion) or not getattr(result, "endpoint", ""):
        return
    meter.add(STEP_KINDS.get(step, CallKind.DRAFT), result.endpoint, Usage.of(result))


class UsageMeter:
    """The usage of one book's calls not yet stored, by (kind, endpoint). Not thread-safe: one event loop."""

    def __init__(self) -> None:
        self._pending: dict[tuple[CallKind, str], Usage] = {}

    def add(self, kind: CallKind, endpoint: str, usage: Usage) -> None:
        key = (kind, endpoint)
        self._pending[key] = self._pending.get(key, Usage()) + usage

    def pending(self) -> tuple[UsageLine, ...]:
        return merged(UsageLine(k, e, u) for (k, e), u in self._pending.items())

    def take(self) -> tuple[UsageLine, ...]:
        """Everything counted so far, and a clean slate."""
        lines = self.pending()
        self._pending.clear()
        return lines

    def give_back(self, lines: Sequence[UsageLine]) -> None:
        """Lines ``take`` returned that could not be stored: counted again with what came since."""
        for line in lines:
            self.add(line.kind, line.endpoint, line.usage)


class MeteredModel:
    """A ``ChatModel`` that counts each call it makes in ``meter`` under ``endpoint``, and marks the
    ``Completion`` with the endpoint (so a durable replay of it can be counted, see ``replayed``)."""

    def __init__(self, inner: ChatModel, meter: UsageMeter, endpoint: str) -> None:
        self.inner = inner
        self.meter = meter
        self.endpoint = endpoint
        self.name = inner.name
        self.context_window = inner.context_window

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        json_schema: dict[str, Any] | None = None,
        temperature: float = 0.8,
        seed: int | None = None,
    ) -> Completion:
        done = await self.inner.complete(messages, max_tokens=max_tokens, json_schema=json_schema,
                                         temperature=temperature, seed=seed)  # fmt: skip
        self.meter.add(current_kind(), self.endpoint, Usage.of(done))
        return replace(done, endpoint=self.endpoint)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def truncate_to_tokens(self, text: str, max_tokens: int) -> str:
        return self.inner.truncate_to_tokens(text, max_tokens)

    async def aclose(self) -> None:
        """Nothing of its own: the model belongs to the pool that built it."""


@runtime_checkable
class CountingEmbedder(Protocol):
    """An embedder that reports the input tokens its backend counted (``usage.prompt_tokens``)."""

    async def embed_counted(self, texts: Sequence[str]) -> tuple[list[list[float]], int]: ...


@runtime_checkable
class TokenCounter(Protocol):
    """An embedder that counts tokens the way its model reads them (the embedded GGUF's vocabulary)."""

    def count_tokens(self, text: str) -> int: ...


async def embed_counted(embedder: Embedder, texts: Sequence[str]) -> tuple[list[list[float]], int]:
    """The vectors of ``texts`` and their input tokens: as the backend reported them, else counted by the
    embedder's own tokenizer, else estimated (``ESTIMATE_BYTES_PER_TOKEN``)."""
    if isinstance(embedder, CountingEmbedder):
        return await embedder.embed_counted(texts)
    vectors = await embedder.embed(texts)
    if isinstance(embedder, TokenCounter):
        return vectors, sum(embedder.count_tokens(t) for t in texts)
    return vectors, sum(math.ceil(len(t.encode("utf-8")) / ESTIMATE_BYTES_PER_TOKEN) for t in texts)


class MeteredEmbedder:
    """An ``Embedder`` that counts each call's input tokens in ``meter`` (kind ``EMBEDDING``) under ``endpoint``."""

    def __init__(self, inner: Embedder, meter: UsageMeter, endpoint: str) -> None:
        self.inner = inner
        self.meter = meter
        self.endpoint = endpoint
        self.name = inner.name

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors, tokens = await embed_counted(self.inner, texts)
        self.meter.add(CallKind.EMBEDDING, self.endpoint, Usage(calls=1, prompt_tokens=tokens))
        return vectors

    async def aclose(self) -> None:
        """Nothing of its own: the embedder belongs to the pool that built it."""
