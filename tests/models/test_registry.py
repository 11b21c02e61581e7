"""Endpoint specs are validated at the edge and build the right model without holding secrets."""

from __future__ import annotations

import dataclasses

import pytest

from spacetime.adapters.llm.registry import build_embedder, build_model
from spacetime.book import EndpointSpec
from spacetime.errors import ConfigError
from spacetime.ports import ChatModel, Embedder


def test_defaults_are_the_embedded_model() -> None:
    spec = EndpointSpec(name="embedded")
    assert spec.kind == "embedded" and spec.context_window == 8192
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "needs a name"),
        ({"name": "x", "kind": "grpc"}, "kind must be"),
        ({"name": "x", "kind": "openai"}, "needs 'model'"),
        ({"name": "x", "structured_output": "xml"}, "structured_output must be one of"),
        ({"name": "x", "concurrency": 0}, "concurrency"),
        ({"name": "x", "context_window": 10}, "context_window"),
        ({"name": "x", "timeout_s": 0}, "timeout_s"),
        ({"name": "x", "max_retries": -1}, "max_retries"),
    ],
)
def test_invalid_specs_raise_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EndpointSpec(**kwargs)


def test_api_key_is_read_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = EndpointSpec(name="cloud", kind="openai", model="gpt-x", api_key_env="SPACETIME_TEST_KEY")
    monkeypatch.delenv("SPACETIME_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="SPACETIME_TEST_KEY"):
        spec.api_key()
    monkeypatch.setenv("SPACETIME_TEST_KEY", "sk-123")
    assert spec.api_key() == "sk-123"
    assert "sk-123" not in repr(spec)
    assert EndpointSpec(name="local", kind="openai", model="m").api_key() is None


async def test_build_openai_model_and_embedder() -> None:
    spec = EndpointSpec(
        name="vllm-a",
        kind="openai",
        model="my-model",
        base_url="http://127.0.0.1:9/v1",
        concurrency=3,
        structured_output="json_object_schema",
        context_window=4096,
    )
    model = build_model(spec)
    try:
        assert isinstance(model, ChatModel)
        assert model.name == "vllm-a" and model.context_window == 4096
        assert model.concurrency == 3  # type: ignore[attr-defined]
        assert model.structured_output == "json_object_schema"  # type: ignore[attr-defined]
    finally:
        await model.aclose()
    embedder = build_embedder(spec)
    try:
        assert isinstance(embedder, Embedder) and embedder.name == "my-model"
    finally:
        await embedder.aclose()


def test_build_embedded_model_is_lazy(gguf_path) -> None:
    from spacetime.adapters.llm.embedded import EmbeddedEmbedder, EmbeddedModel

    model = build_model(EndpointSpec(name="embedded", context_window=2048))
    assert isinstance(model, EmbeddedModel) and model.path == gguf_path and model.context_window == 2048
    assert model._loaded is False  # nothing loaded yet
    embedder = build_embedder(EndpointSpec(name="embedded"))
    assert isinstance(embedder, EmbeddedEmbedder) and embedder.name == "smollm2-135m-q4_1-mean"


def test_embedded_spec_with_missing_gguf(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        build_model(EndpointSpec(name="embedded", model=str(tmp_path / "nope.gguf")))
