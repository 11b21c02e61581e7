"""Load balancing: one endpoint served by several replicas of the same model.

An ``openai`` endpoint with ``base_urls = ["http://a:8000/v1", "http://b:8000/v1"]`` is built as a
:class:`BalancedModel` over one ``OpenAICompatModel`` per URL, each with the endpoint's ``concurrency`` slots (so the
endpoint as a whole has ``len(base_urls) × concurrency``). Every call goes to the *least busy* member: the one with
the fewest calls outstanding (queued for a slot or running) relative to its slots, ties broken round-robin. A member
that fails a call for good (after its own retries) is avoided for ``cooldown_s`` and the call is tried on the next
member; the call fails only when every member failed it.

The members must serve the same model: token counting and truncation use the first member, and the context window
is the smallest of the members'.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from spacetime.domain import Completion
from spacetime.errors import ModelError
from spacetime.ports import ChatModel, Embedder, Message

COOLDOWN_S = 30.0
"""How long a member that failed a call for good is passed over (while a healthy member is left)."""

_M = TypeVar("_M")
_T = TypeVar("_T")


class _Router(Generic[_M]):
    """Least-busy routing with failover over a fixed list of members."""

    def __init__(self, members: Sequence[_M], capacities: Sequence[int], cooldown_s: float) -> None:
        if not members:
            raise ValueError("a balanced endpoint needs at least one member")
        self.members = list(members)
        self.capacities = [max(1, c) for c in capacities]
        self.cooldown_s = cooldown_s
        self.outstanding = [0] * len(self.members)
        """Calls routed to each member and not finished yet (waiting for a slot or running)."""
        self.calls = [0] * len(self.members)
        """Calls routed to each member so far."""
        self._failed_at: list[float | None] = [None] * len(self.members)
        self._next = 0

    def order(self) -> list[int]:
        """Member indexes, best first: healthy before cooling down, then least outstanding per slot, then
        round-robin from the last pick."""
        now = time.monotonic()
        n = len(self.members)
        start = self._next

        def key(i: int) -> tuple[bool, float, int]:
            failed = self._failed_at[i]
            cooling = failed is not None and now - failed < self.cooldown_s
            return cooling, self.outstanding[i] / self.capacities[i], (i - start) % n

        ranked = sorted(range(n), key=key)
        self._next = (ranked[0] + 1) % n
        return ranked

    async def run(self, call: Callable[[_M], Awaitable[_T]]) -> _T:
        last: ModelError | None = None
        for i in self.order():
            self.outstanding[i] += 1
            self.calls[i] += 1
            try:
                result = await call(self.members[i])
            except ModelError as err:
                self._failed_at[i] = time.monotonic()
                last = err
                continue
            finally:
                self.outstanding[i] -= 1
            self._failed_at[i] = None
            return result
        assert last is not None
        raise last


class BalancedModel:
    """``ChatModel`` spreading calls over replicas of one model (see the module docs)."""

    def __init__(self, name: str, members: Sequence[ChatModel], *, cooldown_s: float = COOLDOWN_S) -> None:
        self.name = name
        self.members = list(members)
        self._router: _Router[ChatModel] = _Router(
            self.members, [int(getattr(m, "concurrency", 1) or 1) for m in self.members], cooldown_s
        )
        self.context_window = min(m.context_window for m in self.members)

    @property
    def concurrency(self) -> int:
        """Requests in flight at once over all members."""
        return sum(self._router.capacities)

    @property
    def calls(self) -> list[int]:
        """Calls routed to each member so far (in member order)."""
        return list(self._router.calls)

    @property
    def outstanding(self) -> list[int]:
        return list(self._router.outstanding)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        json_schema: dict[str, Any] | None = None,
        temperature: float = 0.8,
        seed: int | None = None,
    ) -> Completion:
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        return await self._router.run(
            lambda m: m.complete(
                messages, max_tokens=max_tokens, json_schema=json_schema, temperature=temperature, seed=seed
            )
        )

    def count_tokens(self, text: str) -> int:
        return self.members[0].count_tokens(text)

    def truncate_to_tokens(self, text: str, max_tokens: int) -> str:
        return self.members[0].truncate_to_tokens(text, max_tokens)

    async def aclose(self) -> None:
        for member in self.members:
            await member.aclose()


class BalancedEmbedder:
    """``Embedder`` spreading calls over replicas of one embedding model (same routing as :class:`BalancedModel`)."""

    def __init__(self, members: Sequence[Embedder], *, cooldown_s: float = COOLDOWN_S) -> None:
        self.members = list(members)
        self.name = self.members[0].name if self.members else ""
        self._router: _Router[Embedder] = _Router(
            self.members, [int(getattr(m, "concurrency", 1) or 1) for m in self.members], cooldown_s
        )

    @property
    def calls(self) -> list[int]:
        return list(self._router.calls)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return await self._router.run(lambda m: m.embed(texts))

    async def embed_counted(self, texts: Sequence[str]) -> tuple[list[list[float]], int]:
        """The vectors and the input tokens the replica that served them counted (``embed_counted`` of an
        OpenAI-compatible replica; 0 from one that counts nothing)."""
        if not texts:
            return [], 0

        async def one(member: Embedder) -> tuple[list[list[float]], int]:
            counted = getattr(member, "embed_counted", None)
            if counted is not None:
                result: tuple[list[list[float]], int] = await counted(texts)
                return result
            return await member.embed(texts), 0

        return await self._router.run(one)

    async def aclose(self) -> None:
        for member in self.members:
            await member.aclose()
