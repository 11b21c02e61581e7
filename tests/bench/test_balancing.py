"""Load balancing across replicas of one model (``base_urls``) and endpoint sharing across books."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.server import BenchServer, LatencyModel
from spacetime.adapters.llm.balanced import BalancedEmbedder, BalancedModel
from spacetime.adapters.llm.fake import ScriptedModel
from spacetime.adapters.llm.registry import build_embedder, build_model
from spacetime.book import EndpointSpec, load_book, parse_book
from spacetime.engine.models import ModelPool, SharedModels
from spacetime.errors import ConfigError, ModelError
from spacetime.ports import Message
from tests.models.conftest import free_port

PROMPT = [Message("user", "Write.")]


@pytest.fixture
async def replicas() -> AsyncIterator[list[BenchServer]]:
    servers = [BenchServer(LatencyModel(slots=1, ttft_s=0.05, per_token_s=0.0, output_tokens=5)) for _ in range(2)]
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        await server.stop()


def spec(urls: list[str], **extra: Any) -> EndpointSpec:
    return EndpointSpec(name="pool", kind="openai", model="bench-model", base_urls=tuple(urls), concurrency=1,
                        **extra)  # fmt: skip


async def _eight_calls(model: Any) -> tuple[float, list[Any]]:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    done = await asyncio.gather(*(model.complete(PROMPT, max_tokens=10) for _ in range(8)))
    return loop.time() - t0, done


async def test_calls_spread_over_two_endpoints(replicas: list[BenchServer]) -> None:
    model = build_model(spec([s.base_url for s in replicas]))
    alone = build_model(spec([replicas[0].base_url]))
    assert isinstance(model, BalancedModel) and model.concurrency == 2 and not isinstance(alone, BalancedModel)
    try:
        await asyncio.gather(*(model.complete(PROMPT, max_tokens=10) for _ in range(2)))  # connect both
        await alone.complete(PROMPT, max_tokens=10)
        one_wall, _ = await _eight_calls(alone)
        for server in replicas:
            server.reset()
        wall, done = await _eight_calls(model)
    finally:
        await model.aclose()
        await alone.aclose()
    assert all(d.completion_tokens == 5 for d in done)
    stats = [s.snapshot() for s in replicas]
    assert [s["completed"] for s in stats] == [4, 4]  # least busy first: an even split
    assert model.calls == [5, 5] and model.outstanding == [0, 0]
    # one slot per replica, never more than one request in a replica at once: nothing waited at the servers
    assert all(s["queue_wait_s"]["max"] < 0.025 for s in stats)
    assert wall / one_wall < 0.8  # side by side: two replicas take 4 rounds where one takes 8


async def test_a_dead_replica_is_skipped(replicas: list[BenchServer]) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    model = build_model(spec([dead, replicas[0].base_url], max_retries=0))
    try:
        done = await asyncio.gather(*(model.complete(PROMPT, max_tokens=10) for _ in range(4)))
    finally:
        await model.aclose()
    assert len(done) == 4 and replicas[0].snapshot()["completed"] == 4


async def test_every_replica_failing_is_one_model_error() -> None:
    urls = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]
    model = build_model(spec(urls, max_retries=0))
    try:
        with pytest.raises(ModelError, match="connection failed"):
            await model.complete(PROMPT, max_tokens=10)
    finally:
        await model.aclose()


async def test_embedder_is_balanced_too(replicas: list[BenchServer]) -> None:
    embedder = build_embedder(spec([s.base_url for s in replicas]))
    assert isinstance(embedder, BalancedEmbedder)
    try:
        await asyncio.gather(*(embedder.embed(["a b", "c"]) for _ in range(4)))
    finally:
        await embedder.aclose()
    assert embedder.calls == [2, 2]
    assert [s.snapshot()["embeddings"] for s in replicas] == [2, 2]


def test_book_file_endpoint_with_base_urls() -> None:
    raw = {"model": "pool", "endpoints": {"pool": {
        "kind": "openai", "model": "m", "base_urls": ["http://a:8000/v1", "http://b:8000/v1"], "concurrency": 8}}}
    config = parse_book(raw)  # fmt: skip
    assert config.endpoints["pool"].base_urls == ("http://a:8000/v1", "http://b:8000/v1")
    again = parse_book(config.to_json())  # the stored settings read back the same
    assert again.endpoints["pool"] == config.endpoints["pool"]
    model = ModelPool(config).chat("pool")
    assert isinstance(model, BalancedModel) and model.concurrency == 16
    bad = [
        ({"base_url": "http://a/v1", "base_urls": ["http://b/v1"]}, "not both"),
        ({"base_urls": "http://a/v1"}, "list of URLs"),
        ({"base_urls": ["http://a/v1", ""]}, "list of URLs"),
    ]
    for extra, message in bad:
        with pytest.raises(ConfigError, match=message):
            parse_book({"endpoints": {"x": {"kind": "openai", "model": "m", **extra}}})
    with pytest.raises(ConfigError, match="kind = 'openai'"):
        parse_book({"endpoints": {"x": {"base_urls": ["http://a/v1"]}}})


async def test_books_share_one_model_per_endpoint() -> None:
    vllm = {"kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", "concurrency": 3}
    a = parse_book({"model": "vllm", "endpoints": {"vllm": vllm}})
    b = dataclasses.replace(parse_book({"model": "vllm", "endpoints": {"vllm": vllm}}), topic="Another book")
    c = parse_book({"model": "vllm", "endpoints": {"vllm": {**vllm, "concurrency": 5}}})
    shared = SharedModels()
    pools = [ModelPool(config, shared=shared) for config in (a, b, c)]
    first, second, third = (pool.chat("vllm") for pool in pools)
    assert first is second  # the same definition: one model, one concurrency bound for both books
    assert third is not first  # a different definition is another endpoint
    closed: list[str] = []
    for model in (first, third):
        real = model.aclose

        async def close(real: Any = real) -> None:
            closed.append("x")
            await real()

        model.aclose = close  # type: ignore[method-assign]
    for pool in pools:
        await pool.aclose()  # a book's pool does not close shared models
    assert closed == []
    await shared.aclose()
    assert len(closed) == 2


async def test_least_busy_counts_capacity() -> None:
    slow = ScriptedModel(replies=["x"], cycle=True, delay_s=0.05, concurrency=1, name="slow")
    wide = ScriptedModel(replies=["x"], cycle=True, delay_s=0.05, concurrency=3, name="wide")
    model = BalancedModel("pool", [_WithCapacity(slow, 1), _WithCapacity(wide, 3)])
    await asyncio.gather(*(model.complete(PROMPT, max_tokens=5) for _ in range(8)))
    assert model.calls == [2, 6]  # in proportion to the slots


@dataclasses.dataclass
class _WithCapacity:
    inner: ScriptedModel
    concurrency: int

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def context_window(self) -> int:
        return self.inner.context_window

    async def complete(self, messages: Any, **kwargs: Any) -> Any:
        return await self.inner.complete(messages, **kwargs)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def truncate_to_tokens(self, text: str, max_tokens: int) -> str:
        return self.inner.truncate_to_tokens(text, max_tokens)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_load_book_default_is_unaffected() -> None:
    assert load_book(None).endpoints["embedded"].base_urls == ()
