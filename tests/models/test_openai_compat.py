"""OpenAI-compatible endpoints: the wire format we send, concurrency, retries and failures (fast, against a loopback
stub) and a real ``llama_cpp.server`` on the packaged GGUF (slow)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from spacetime.adapters.llm.openai_compat import (
    OpenAICompatEmbedder,
    OpenAICompatModel,
    response_format_for,
    retry_after_s,
)
from spacetime.domain import FinishReason
from spacetime.errors import ModelError
from spacetime.ports import ChatModel, Embedder, Message

PROMPT = [Message("system", "You are a critic."), Message("user", "Say something.")]
BALLOT_SCHEMA = {
    "title": "ballot",
    "type": "object",
    "properties": {
        "A_1": {
            "type": "object",
            "properties": {
                "score": {"type": "integer", "enum": list(range(1, 11))},
                "rationale": {"type": "string", "maxLength": 60},
            },
            "required": ["score", "rationale"],
            "additionalProperties": False,
        }
    },
    "required": ["A_1"],
    "additionalProperties": False,
}


def model_for(base_url: str, **kwargs) -> OpenAICompatModel:
    kwargs.setdefault("retry_initial_s", 0.01)
    kwargs.setdefault("retry_max_s", 0.05)
    return OpenAICompatModel(name=kwargs.pop("name", "stub"), model="stub-model", base_url=base_url, **kwargs)


async def test_plain_call_wire_format_and_result(stub, chat_response) -> None:
    server = await stub(lambda req: (200, chat_response("Hello.", "stop", 12, 2)))
    model = model_for(server.base_url)
    assert isinstance(model, ChatModel)
    try:
        completion = await model.complete(PROMPT, max_tokens=50, temperature=0.5, seed=42)
    finally:
        await model.aclose()
    assert completion.text == "Hello." and completion.finish_reason is FinishReason.STOP
    assert (completion.prompt_tokens, completion.completion_tokens) == (12, 2)
    assert completion.latency_s > 0
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    body = request.body
    assert body["model"] == "stub-model" and body["max_tokens"] == 50
    assert body["temperature"] == 0.5 and body["seed"] == 42
    assert "response_format" not in body
    assert body["messages"] == [
        {"role": "system", "content": "You are a critic."},
        {"role": "user", "content": "Say something."},  # no "name" field (include_name_in_message=False)
    ]
    assert request.headers["authorization"] == "Bearer sk-no-key-required"


async def test_length_and_unknown_finish_reasons(stub, chat_response) -> None:
    reasons = iter(["length", "content_filter"])
    server = await stub(lambda req: (200, chat_response("cut", next(reasons))))
    model = model_for(server.base_url)
    try:
        assert (await model.complete(PROMPT, max_tokens=5)).finish_reason is FinishReason.LENGTH
        assert (await model.complete(PROMPT, max_tokens=5)).finish_reason is FinishReason.OTHER
    finally:
        await model.aclose()


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (
            "json_schema",
            {"type": "json_schema", "json_schema": {"name": "ballot", "schema": BALLOT_SCHEMA, "strict": True}},
        ),
        ("json_object_schema", {"type": "json_object", "schema": BALLOT_SCHEMA}),
        ("json_object", {"type": "json_object"}),
        ("none", None),
    ],
)
async def test_structured_output_dialects_on_the_wire(stub, chat_response, mode, expected) -> None:
    server = await stub(lambda req: (200, chat_response('{"A_1": {"score": 5, "rationale": "ok"}}')))
    model = model_for(server.base_url, structured_output=mode)
    try:
        await model.complete(PROMPT, max_tokens=50, json_schema=BALLOT_SCHEMA)
        await model.complete(PROMPT, max_tokens=50)  # no schema: never a response_format
    finally:
        await model.aclose()
    assert server.requests[0].body.get("response_format") == expected
    assert "response_format" not in server.requests[1].body
    assert response_format_for(mode, BALLOT_SCHEMA) == expected  # type: ignore[arg-type]


async def test_concurrency_limit_is_respected(stub, chat_response) -> None:
    async def slow(req: Any):
        await asyncio.sleep(0.05)
        return 200, chat_response("ok")

    server = await stub(slow)
    model = model_for(server.base_url, concurrency=2)
    try:
        started = time.perf_counter()
        results = await asyncio.gather(*(model.complete(PROMPT, max_tokens=5) for _ in range(6)))
        wall = time.perf_counter() - started
    finally:
        await model.aclose()
    assert server.max_in_flight == 2 and len(server.requests) == 6
    assert wall >= 0.14  # three waves of 50 ms
    # latency is service time (inside the slot), not time spent queueing for one
    assert all(0.04 < r.latency_s < 0.12 for r in results)


async def test_transient_errors_are_retried(stub, chat_response) -> None:
    statuses = iter([503, 500, 200])

    def flaky(req: Any):
        status = next(statuses)
        return (status, chat_response("finally")) if status == 200 else (status, {"error": {"message": "busy"}})

    server = await stub(flaky)
    model = model_for(server.base_url, max_retries=3)
    try:
        assert (await model.complete(PROMPT, max_tokens=5)).text == "finally"
    finally:
        await model.aclose()
    assert len(server.requests) == 3


async def test_retries_exhausted_gives_one_line_model_error(stub, chat_response) -> None:
    server = await stub(lambda req: (502, {"error": {"message": "bad gateway\nupstream"}}))
    model = model_for(server.base_url, name="vllm-a", max_retries=2, api_key="sk-secret-123")
    try:
        with pytest.raises(ModelError) as caught:
            await model.complete(PROMPT, max_tokens=5)
    finally:
        await model.aclose()
    message = str(caught.value)
    assert len(server.requests) == 3
    assert message.startswith("model endpoint 'vllm-a' (127.0.0.1:")
    assert "HTTP 502: bad gateway upstream after 3 attempts" in message
    assert "\n" not in message and "sk-secret-123" not in message


async def test_client_errors_are_not_retried(stub, chat_response) -> None:
    server = await stub(lambda req: (400, {"error": {"message": "max_tokens too large"}}))
    model = model_for(server.base_url, max_retries=3)
    try:
        with pytest.raises(ModelError, match="HTTP 400: max_tokens too large$"):
            await model.complete(PROMPT, max_tokens=5)
    finally:
        await model.aclose()
    assert len(server.requests) == 1


async def test_llama_cpp_server_validation_500_is_not_retried_and_hints(stub, chat_response) -> None:
    # llama_cpp.server reports request validation errors as HTTP 500 (see openai_compat._is_transient)
    detail = "1 validation error: {'loc': ('body', 'response_format', 'type'), 'input': 'json_schema'}"
    server = await stub(lambda req: (500, {"error": {"message": detail, "type": "internal_server_error"}}))
    model = model_for(server.base_url, max_retries=3)
    try:
        with pytest.raises(ModelError, match="try 'json_object_schema'"):
            await model.complete(PROMPT, max_tokens=5, json_schema=BALLOT_SCHEMA)
    finally:
        await model.aclose()
    assert len(server.requests) == 1


def with_logprobs(response: dict, tokens: list[tuple[str, dict[str, float]]]) -> dict:
    """``response`` with OpenAI's ``choices[0].logprobs.content`` for ``tokens`` (text, {alternative: logprob})."""
    content = [
        {"token": text, "logprob": top.get(text, -0.1), "bytes": None,
         "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in top.items()]}
        for text, top in tokens
    ]  # fmt: skip
    response["choices"][0]["logprobs"] = {"content": content}
    return response


async def test_ballots_ask_for_top_logprobs_and_read_the_number_alternatives(stub, chat_response) -> None:
    text = '{"A_1": {"score": 7, "rationale": "x"}}'
    tokens = [('{"A_1": {"score": ', {'{"A_1": {"score": ': -0.01, "x": -5.0}),
              ("7", {"7": -0.5, "8": -1.2, "six": -3.0}), (', "rationale": "x"}}', {})]  # fmt: skip
    server = await stub(lambda req: (200, with_logprobs(chat_response(text), tokens)))
    model = model_for(server.base_url)
    try:
        ballot = await model.complete(PROMPT, max_tokens=50, json_schema=BALLOT_SCHEMA)
        draft = await model.complete(PROMPT, max_tokens=50)
    finally:
        await model.aclose()
    first, second = server.requests
    assert first.body["logprobs"] is True and first.body["top_logprobs"] == 20
    assert "logprobs" not in second.body and "top_logprobs" not in second.body  # drafts do not ask
    assert [t.text for t in ballot.tokens] == [t for t, _ in tokens]
    assert ballot.tokens[1].alternatives == (("7", -0.5), ("8", -1.2))  # numbers only
    assert ballot.tokens[0].alternatives == ballot.tokens[2].alternatives == ()
    assert draft.tokens == ()


async def test_a_server_refusing_logprobs_is_asked_again_without_and_never_again(stub, chat_response) -> None:
    refusal = {"error": {"message": "logprobs is not supported for models created with logits_all=False"}}

    def answer(req):
        return (500, refusal) if req.body.get("logprobs") else (200, chat_response('{"A_1": 1}'))

    server = await stub(answer)
    model = model_for(server.base_url, max_retries=3)
    try:
        first = await model.complete(PROMPT, max_tokens=50, json_schema=BALLOT_SCHEMA)
        second = await model.complete(PROMPT, max_tokens=50, json_schema=BALLOT_SCHEMA)
    finally:
        await model.aclose()
    assert first.text == second.text == '{"A_1": 1}' and first.tokens == second.tokens == ()
    assert [bool(r.body.get("logprobs")) for r in server.requests] == [True, False, False]  # no retries of the 500
    assert model.score_logprobs is False


async def test_other_errors_with_logprobs_asked_are_not_blamed_on_them(stub, chat_response) -> None:
    server = await stub(lambda req: (400, {"error": {"message": "max_tokens too large"}}))
    model = model_for(server.base_url)
    try:
        with pytest.raises(ModelError, match="max_tokens too large"):
            await model.complete(PROMPT, max_tokens=5, json_schema=BALLOT_SCHEMA)
    finally:
        await model.aclose()
    assert len(server.requests) == 1 and model.score_logprobs is True


def test_retry_after_in_every_form() -> None:
    now = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s({"Retry-After": "3"}, now) == 3.0
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}, now) == 0.25  # OpenAI's finer header first
    assert retry_after_s({"Retry-After": "Wed, 02 Dec 2026 12:00:07 GMT"}, now) == 7.0  # an HTTP date
    assert retry_after_s({"Retry-After": "Wed, 02 Dec 2026 11:00:00 GMT"}, now) == 0.0  # in the past: no wait
    assert retry_after_s({"Retry-After": "-5"}, now) == 0.0
    for bad in ({}, {"Retry-After": ""}, {"Retry-After": "soon"}, {"retry-after-ms": "x"}, {"Retry-After": "nan"}):
        assert retry_after_s(bad, now) is None, bad


async def test_a_server_asking_to_retry_after_a_second_is_given_it(stub, chat_response) -> None:
    seen: list[float] = []

    def answer(req):
        seen.append(time.monotonic())
        if len(seen) == 1:
            return 429, {"error": {"message": "rate limited"}}, {"Retry-After": "1"}
        return 200, chat_response("ok")

    server = await stub(answer)
    model = model_for(server.base_url, max_retries=2)  # its own backoff is 0.01-0.05 s
    try:
        assert (await model.complete(PROMPT, max_tokens=5)).text == "ok"
    finally:
        await model.aclose()
    assert len(server.requests) == 2 and seen[1] - seen[0] >= 0.95  # the server's second, not the backoff's 0.05


async def test_refused_connection_fails_fast_after_retries(unused_port: int) -> None:
    model = model_for(f"http://127.0.0.1:{unused_port}/v1", name="nowhere", max_retries=2, api_key="sk-top-secret")
    started = time.perf_counter()
    try:
        with pytest.raises(ModelError) as caught:
            await model.complete(PROMPT, max_tokens=5)
    finally:
        await model.aclose()
    assert time.perf_counter() - started < 5
    message = str(caught.value)
    assert message.startswith("model endpoint 'nowhere' (127.0.0.1:") and "connection failed" in message
    assert "after 3 attempts" in message and "sk-top-secret" not in message


async def test_timeouts_are_retried_then_fail(stub, chat_response) -> None:
    async def hang(req: Any):
        await asyncio.sleep(2)
        return 200, chat_response("late")

    server = await stub(hang)
    model = model_for(server.base_url, timeout_s=0.2, max_retries=1)
    try:
        with pytest.raises(ModelError, match="timed out after 2 attempts"):
            await model.complete(PROMPT, max_tokens=5)
    finally:
        await model.aclose()
    assert len(server.requests) == 2


def test_token_estimate_is_conservative_and_truncation_is_a_prefix() -> None:
    model = OpenAICompatModel(name="x", model="m", base_url="http://127.0.0.1:9/v1")
    assert model.count_tokens("") == 0
    assert model.count_tokens("abcdef") == 2 and model.count_tokens("abcdefg") == 3
    assert model.count_tokens("日本語") == 3  # 9 UTF-8 bytes
    text = "héllo wörld " * 50
    cut = model.truncate_to_tokens(text, 10)
    assert text.startswith(cut) and model.count_tokens(cut) <= 10 and len(cut) > 20
    assert model.truncate_to_tokens("short", 10) == "short"
    assert model.truncate_to_tokens("short", 0) == ""


async def test_embedder_batches_orders_and_normalises(stub, chat_response) -> None:
    def embeddings(req: Any):
        inputs = req.body["input"]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0, 0.0]} for i, t in enumerate(inputs)
        ]
        data.reverse()  # servers may answer out of order: we sort by index
        return 200, {
            "object": "list",
            "data": data,
            "model": req.body["model"],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }

    server = await stub(embeddings)
    embedder = OpenAICompatEmbedder(endpoint="emb", model="nomic-embed", base_url=server.base_url, batch_size=2)
    assert isinstance(embedder, Embedder) and embedder.name == "nomic-embed"
    try:
        vectors = await embedder.embed(["abc", "", "a"])
        assert await embedder.embed([]) == []
    finally:
        await embedder.aclose()
    assert len(server.requests) == 2 and server.requests[0].path == "/v1/embeddings"
    assert server.requests[0].body["input"] == ["abc", " "]
    assert [round(v[0] / v[1], 6) for v in vectors] == [3.0, 1.0, 1.0]
    assert all(math.isclose(sum(x * x for x in v), 1.0) for v in vectors)


async def test_cached_prompt_tokens_and_embedding_tokens_are_read_from_usage(stub, chat_response) -> None:
    """vLLM / OpenAI say how much of the prompt came from the prefix cache; a server that does not says nothing."""
    def reply(req: Any):
        if req.path.endswith("/embeddings"):
            n = len(req.body["input"])
            data = [{"object": "embedding", "index": i, "embedding": [1.0, 0.0]} for i in range(n)]
            body = {"object": "list", "model": "e", "data": data}
            if n == 2:
                body["usage"] = {"prompt_tokens": 17, "total_tokens": 17}
            return 200, body
        body = chat_response("Hi.", "stop", 120, 2)
        if "cached" in req.body["messages"][-1]["content"]:
            body["usage"]["prompt_tokens_details"] = {"cached_tokens": 96}
        return 200, body

    server = await stub(reply)
    model = model_for(server.base_url)
    embedder = OpenAICompatEmbedder(endpoint="emb", model="e", base_url=server.base_url, batch_size=2)
    try:
        cached = await model.complete([Message("user", "cached")], max_tokens=5)
        plain = await model.complete([Message("user", "plain")], max_tokens=5)
        vectors, tokens = await embedder.embed_counted(["one two", "three", "abcdefghi"])
    finally:
        await model.aclose()
        await embedder.aclose()
    assert (cached.prompt_tokens, cached.cached_tokens, plain.cached_tokens) == (120, 96, 0)
    assert len(vectors) == 3 and tokens == 17 + 3  # the server's count; a batch without usage: ceil(9 bytes / 3)


# ---------------------------------------------------------------- real llama_cpp.server on the packaged GGUF


def real_model(base_url: str, **kwargs) -> OpenAICompatModel:
    return OpenAICompatModel(
        name="llama-cpp-server",
        model="smollm2",
        base_url=base_url,
        concurrency=1,  # llama_cpp.server serves one request at a time
        structured_output="json_object_schema",
        timeout_s=120,
        **kwargs,
    )


@pytest.mark.slow
async def test_real_server_draft_capped_by_length(llama_server: str) -> None:
    model = real_model(llama_server)
    try:
        completion = await model.complete(
            [Message("system", "You are a novelist."), Message("user", "Write a long chapter about the sea.")],
            max_tokens=32,
            seed=1,
        )
    finally:
        await model.aclose()
    assert completion.finish_reason is FinishReason.LENGTH
    assert completion.completion_tokens == 32 and completion.prompt_tokens > 5
    assert completion.text.strip()


@pytest.mark.slow
async def test_real_server_structured_ballot(llama_server: str) -> None:
    model = real_model(llama_server)
    try:
        completion = await model.complete(
            [Message("user", "Score draft A_1 from 1 to 10 and explain briefly. Answer in JSON.")],
            max_tokens=200,
            json_schema=BALLOT_SCHEMA,
            temperature=0.2,
            seed=3,
        )
    finally:
        await model.aclose()
    assert completion.finish_reason is FinishReason.STOP
    ballot = json.loads(completion.text)
    assert set(ballot) == {"A_1"} and 1 <= ballot["A_1"]["score"] <= 10
    assert isinstance(ballot["A_1"]["rationale"], str)
    # llama_cpp.server gives top_logprobs: the tokens spell the answer, and the score's token carries the numbers
    assert model.score_logprobs is True
    assert "".join(t.text for t in completion.tokens) == completion.text
    score = str(ballot["A_1"]["score"])
    at = next(t for t in completion.tokens if t.text.strip() == score[0])
    assert any(text.strip() == score[0] for text, _ in at.alternatives) and len(at.alternatives) >= 2


@pytest.mark.slow
async def test_real_server_rejects_json_schema_dialect(llama_server: str) -> None:
    model = real_model(llama_server)
    model.structured_output = "json_schema"
    try:
        with pytest.raises(ModelError, match="json_object_schema"):
            await model.complete([Message("user", "JSON please")], max_tokens=20, json_schema=BALLOT_SCHEMA)
    finally:
        await model.aclose()


@pytest.mark.slow
async def test_real_server_concurrent_calls_all_succeed(llama_server: str) -> None:
    model = real_model(llama_server)
    try:
        results = await asyncio.gather(
            *(
                model.complete([Message("user", f"Say a word about {w}.")], max_tokens=8, seed=i)
                for i, w in enumerate(["sun", "moon", "sea"])
            )
        )
    finally:
        await model.aclose()
    assert all(r.completion_tokens > 0 for r in results)
