"""The latency-modelled benchmark server: a real loopback HTTP server whose slots queue and whose latency follows
its model (checked as ratios and orderings, never absolute timings)."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bench.process import ServerProcess
from bench.server import BenchServer, LatencyModel
from spacetime.adapters.llm.openai_compat import OpenAICompatEmbedder, OpenAICompatModel
from spacetime.domain import FinishReason
from spacetime.ports import Message
from spacetime.rules.ballot import ballot_schema, parse_ballot


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    servers: list[BenchServer] = []

    async def make(**settings: Any) -> BenchServer:
        server = BenchServer(LatencyModel(**settings))
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


def chat(max_tokens: int = 1000, content: str = "Write.", **extra: Any) -> dict[str, Any]:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": content}]
    return {"model": "m", "messages": messages, "max_tokens": max_tokens, **extra}


async def timed_post(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    reply = await client.post(url, json=body)
    assert reply.status_code == 200, reply.text
    return time.perf_counter() - t0, reply.json()


async def test_requests_beyond_the_slots_queue(serve: Any) -> None:
    server = await serve(slots=2, ttft_s=0.15, per_token_s=0.0, output_tokens=5)
    url = f"{server.base_url}/chat/completions"
    async with httpx.AsyncClient(timeout=30) as client:
        await timed_post(client, url, chat())  # warm the connection
        t0 = time.perf_counter()
        two = await asyncio.gather(*(timed_post(client, url, chat()) for _ in range(2)))
        two_wall = time.perf_counter() - t0
        server.reset()
        t0 = time.perf_counter()
        six = await asyncio.gather(*(timed_post(client, url, chat()) for _ in range(6)))
        six_wall = time.perf_counter() - t0
    # two requests fit the two slots; six take three rounds
    assert 2.3 < six_wall / two_wall < 4.0, (six_wall, two_wall)
    assert max(t for t, _ in six) > 2 * max(t for t, _ in two)
    stats = server.snapshot()
    assert stats["completed"] == 6 and stats["max_queue"] >= 4
    assert stats["queue_wait_s"]["max"] > stats["service_s"]["median"]  # the last ones waited a whole round
    busy = sum(stats["busy_s"])
    assert 0.8 < busy / (6 * stats["service_s"]["median"]) < 1.25


async def test_latency_follows_ttft_plus_tokens(serve: Any) -> None:
    server = await serve(slots=4, ttft_s=0.05, per_token_s=0.002, output_tokens=200)
    url = f"{server.base_url}/chat/completions"
    async with httpx.AsyncClient(timeout=30) as client:
        await timed_post(client, url, chat(10))
        short = [(await timed_post(client, url, chat(10)))[0] for _ in range(3)]
        long = [(await timed_post(client, url, chat(1000)))[0] for _ in range(3)]
    expected = (0.05 + 0.002 * 200) / (0.05 + 0.002 * 10)
    ratio = min(long) / min(short)
    assert expected * 0.7 < ratio < expected * 1.3, (ratio, expected)


async def test_usage_finish_reason_and_ballots(serve: Any) -> None:
    server = await serve(ttft_s=0.0, per_token_s=0.0, output_tokens=50)
    url = f"{server.base_url}/chat/completions"
    aliases = ["Anonymous_Scribe_1", "Anonymous_Oracle_7", "Anonymous_Potter_3"]
    schema = ballot_schema(aliases)
    async with httpx.AsyncClient(timeout=30) as client:
        _, capped = await timed_post(client, url, chat(20))
        _, whole = await timed_post(client, url, chat(100))
        _, openai_style = await timed_post(client, url, chat(
            500, response_format={"type": "json_schema", "json_schema": {"name": "b", "schema": schema}}))
        _, llama_style = await timed_post(client, url, chat(
            500, response_format={"type": "json_object", "schema": schema}))
    assert capped["choices"][0]["finish_reason"] == "length" and capped["usage"]["completion_tokens"] == 20
    assert whole["choices"][0]["finish_reason"] == "stop" and whole["usage"]["completion_tokens"] == 50
    assert len(whole["choices"][0]["message"]["content"].split()) == 50
    assert whole["usage"]["prompt_tokens"] == 5  # two role markers and three words
    for reply in (openai_style, llama_style):
        text = reply["choices"][0]["message"]["content"]
        data = json.loads(text)
        assert list(data) == aliases
        assert all(isinstance(v["insight_score"], int) and 1 <= v["insight_score"] <= 10 and v["rationale"]
                   for v in data.values())  # fmt: skip
        assert parse_ballot(text, aliases).clean
        assert reply["usage"]["completion_tokens"] == len(text.split())
    assert server.snapshot()["ballots"] == 2


async def test_prefix_cache_counts_shared_prompt_tokens(serve: Any) -> None:
    server = await serve(ttft_s=0.0, per_token_s=0.0, block_tokens=16)
    url = f"{server.base_url}/chat/completions"
    shared = " ".join(f"w{i}" for i in range(100))
    async with httpx.AsyncClient(timeout=30) as client:
        _, first = await timed_post(client, url, chat(content=shared + " first voter"))
        after_first = server.snapshot()["shared_prompt_tokens"]
        _, second = await timed_post(client, url, chat(content=shared + " second voter"))
        after_second = server.snapshot()["shared_prompt_tokens"]
        await timed_post(client, url, chat(content="other " + shared))
        after_third = server.snapshot()["shared_prompt_tokens"]
    assert after_first == 0
    prefix = 4 + 100  # role markers, "Be brief.", the shared words
    assert after_second == prefix // 16 * 16  # whole blocks only, like vLLM
    assert after_third - after_second == 0  # a different first block shares nothing after it
    assert first["usage"]["prompt_tokens"] == second["usage"]["prompt_tokens"] == prefix + 2
    # the prefix found in the cache is reported as vLLM reports it (what the book's usage counts as cached)
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert second["usage"]["prompt_tokens_details"]["cached_tokens"] == after_second - after_first


async def test_prefill_of_uncached_tokens_costs_time(serve: Any) -> None:
    server = await serve(ttft_s=0.0, per_token_s=0.0, prefill_per_token_s=0.0005, output_tokens=1, slots=1)
    url = f"{server.base_url}/chat/completions"
    prompt = " ".join(f"w{i}" for i in range(400))
    async with httpx.AsyncClient(timeout=30) as client:
        cold, _ = await timed_post(client, url, chat(content=prompt))
        warm, _ = await timed_post(client, url, chat(content=prompt + " again"))
    assert warm < cold / 3


async def test_the_engine_backend_talks_to_it() -> None:
    """The separate-process server as the benchmarks use it, through OpenAICompatModel and the embedder."""
    with ServerProcess(LatencyModel(ttft_s=0.0, per_token_s=0.0, output_tokens=80, embed_dim=32)) as server:
        model = OpenAICompatModel(name="bench", model="bench-model", base_url=server.base_url, concurrency=4)
        embedder = OpenAICompatEmbedder(endpoint="bench", model="bench-model", base_url=server.base_url)
        try:
            draft = await model.complete([Message("user", "Write.")], max_tokens=30)
            aliases = ["Anonymous_Scribe_1", "Anonymous_Oracle_2"]
            schema = ballot_schema(aliases)
            ballot = await model.complete([Message("user", "Judge.")], max_tokens=300, json_schema=schema)
            vectors = await embedder.embed(["a b c", "a b c", "d e f"])
        finally:
            await model.aclose()
            await embedder.aclose()
        stats = server.stats()
    assert draft.finish_reason is FinishReason.LENGTH and draft.completion_tokens == 30
    assert parse_ballot(ballot.text, aliases).clean
    assert vectors[0] == vectors[1] != vectors[2] and all(math.isclose(sum(x * x for x in v), 1.0) for v in vectors)
    assert stats["requests"] == 2 and stats["embedded_texts"] == 3


async def test_embeddings_base64_and_floats_agree(serve: Any) -> None:
    server = await serve(embed_dim=8)
    async with httpx.AsyncClient(timeout=30) as client:
        floats = (await client.post(f"{server.base_url}/embeddings", json={"model": "m", "input": ["x y"]})).json()
        packed = (await client.post(f"{server.base_url}/embeddings",
                                    json={"model": "m", "input": "x y", "encoding_format": "base64"})).json()
    raw = base64.b64decode(packed["data"][0]["embedding"])
    unpacked = struct.unpack("<8f", raw)
    assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(unpacked, floats["data"][0]["embedding"], strict=True))


async def test_config_and_bad_requests(serve: Any) -> None:
    server = await serve(slots=1)
    async with httpx.AsyncClient(timeout=30) as client:
        ok = await client.post(f"{server.root}/config", json={"slots": 3, "ttft_s": 0.0})
        bad = await client.post(f"{server.root}/config", json={"nope": 1})
        missing = await client.get(f"{server.root}/v2/whatever")
        models = await client.get(f"{server.base_url}/models")
    assert ok.status_code == 200 and server.model.slots == 3 and len(server.snapshot()["busy_s"]) == 3
    assert bad.status_code == 400 and missing.status_code == 404
    assert models.json()["data"][0]["id"]
