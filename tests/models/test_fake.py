"""The test doubles other suites rely on behave like a model endpoint."""

from __future__ import annotations

import asyncio
import math

import pytest

from spacetime.adapters.llm.fake import HashEmbedder, ScriptedModel
from spacetime.domain import Completion, FinishReason
from spacetime.errors import ModelError
from spacetime.ports import ChatModel, Embedder, Message

USER = [Message("system", "be brief"), Message("user", "hello there")]


def test_fakes_implement_the_protocols() -> None:
    assert isinstance(ScriptedModel(), ChatModel)
    assert isinstance(HashEmbedder(), Embedder)


async def test_scripted_replies_in_order_and_records_calls() -> None:
    model = ScriptedModel(["one", "two"])
    first = await model.complete(USER, max_tokens=10, seed=3, temperature=0.1)
    second = await model.complete(USER, max_tokens=10, json_schema={"type": "object"})
    assert (first.text, second.text) == ("one", "two")
    assert first.finish_reason is FinishReason.STOP
    assert first.prompt_tokens == 4 and first.completion_tokens == 1
    assert model.calls[0].seed == 3 and model.calls[0].temperature == 0.1
    assert model.calls[1].json_schema == {"type": "object"}
    assert model.calls[0].system == "be brief" and model.calls[0].prompt == "hello there"
    with pytest.raises(ModelError, match="script exhausted"):
        await model.complete(USER, max_tokens=10)


async def test_cap_cuts_reply_and_reports_length() -> None:
    model = ScriptedModel(["a b c d e f"], cycle=True)
    cut = await model.complete(USER, max_tokens=3)
    assert cut.text == "a b c" and cut.finish_reason is FinishReason.LENGTH and cut.completion_tokens == 3
    whole = await model.complete(USER, max_tokens=6)
    assert whole.finish_reason is FinishReason.STOP


async def test_completion_exception_and_callable_replies() -> None:
    scripted = Completion("x", FinishReason.OTHER, 1, 1, 99.0)
    model = ScriptedModel([scripted, ModelError("boom")])
    got = await model.complete(USER, max_tokens=5)
    assert got.finish_reason is FinishReason.OTHER and got.latency_s < 1.0
    with pytest.raises(ModelError, match="boom"):
        await model.complete(USER, max_tokens=5)

    async def echo(call):  # async responders work too
        return call.prompt.upper()

    assert (await ScriptedModel(echo).complete(USER, max_tokens=5)).text == "HELLO THERE"


async def test_concurrency_bound_and_delay() -> None:
    model = ScriptedModel(lambda call: "ok", delay_s=0.02, concurrency=2)
    results = await asyncio.gather(*(model.complete(USER, max_tokens=5) for _ in range(6)))
    assert all(r.text == "ok" for r in results)
    assert model.max_in_flight == 2
    assert all(r.latency_s >= 0.015 for r in results)


def test_token_helpers() -> None:
    model = ScriptedModel()
    assert model.count_tokens("  a  b\nc ") == 3
    assert model.truncate_to_tokens("  a  b\nc ", 2) == "  a  b"
    assert model.truncate_to_tokens("a b", 5) == "a b"
    assert model.truncate_to_tokens("a b", 0) == ""


async def test_closed_model_refuses() -> None:
    model = ScriptedModel(["x"])
    await model.aclose()
    with pytest.raises(ModelError, match="closed"):
        await model.complete(USER, max_tokens=5)


async def test_hash_embedder_is_deterministic_normalised_and_ranks() -> None:
    embedder = HashEmbedder(dim=64)
    a, b, c, empty = await embedder.embed(["the cat sat", "The cat sat", "quantum gluon field", ""])
    assert a == b and len(a) == 64
    for vector in (a, c, empty):
        assert math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-9)
    near = (await embedder.embed(["the cat sat on the mat"]))[0]
    dot = lambda u, v: sum(x * y for x, y in zip(u, v, strict=True))  # noqa: E731
    assert dot(a, near) > dot(c, near)
    assert embedder.name == "hash-bow-64"
