"""Build chat models and embedders from endpoint specs.

An :class:`spacetime.book.EndpointSpec` says where a model lives (it is part of a book's configuration). Build ONE
``ChatModel`` per endpoint and share it between all agents that use the endpoint: the per-endpoint concurrency
limit lives in the model object (the embedded model additionally shares its weights and its one-at-a-time host).

Heavy dependencies (llama-cpp-python, AutoGen, openai) are imported only when a model of that kind is built.
"""

from __future__ import annotations

from spacetime.book import EndpointSpec
from spacetime.ports import ChatModel, Embedder

NO_KEY = "sk-no-key-required"
"""Placeholder api key sent to servers that need none (local llama.cpp / vLLM / Ollama)."""


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
            score_logprobs=spec.score_logprobs,
        )

    if len(spec.base_urls) > 1:
        from spacetime.adapters.llm.balanced import BalancedModel

        return BalancedModel(spec.name, [member(url) for url in spec.base_urls])
    return member(_single_url(spec))


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
    return member(_single_url(spec))


def _single_url(spec: EndpointSpec) -> str | None:
    """The one server of an endpoint without replicas (``None``: api.openai.com)."""
    return spec.base_urls[0] if spec.base_urls else spec.base_url
