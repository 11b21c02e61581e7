"""One model object per endpoint, shared by every agent that uses it; the book's embedder.

Several books played by one process share one :class:`SharedModels`: books that define an endpoint the same way
get the same model object, hence one concurrency bound per endpoint across all books (and one copy of the embedded
weights).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from spacetime.adapters.llm.registry import build_embedder, build_model
from spacetime.book import BookConfig, EndpointSpec
from spacetime.engine.metering import MeteredEmbedder, MeteredModel, UsageMeter
from spacetime.errors import ConfigError
from spacetime.ports import ChatModel, Embedder


@dataclass
class SharedModels:
    """Models shared by every book of a process, one per distinct endpoint definition (an ``EndpointSpec`` value:
    same name and settings). Closed by its owner (``aclose``), not by the books' pools."""

    wrap: Callable[[EndpointSpec, ChatModel], ChatModel] | None = None
    """Applied to each model the books get (a fleet worker routes HTTP endpoints' calls through its queue);
    ``raw`` gives the model itself."""
    _chat: dict[EndpointSpec, ChatModel] = field(default_factory=dict)
    _wrapped: dict[EndpointSpec, ChatModel] = field(default_factory=dict)
    _embedders: dict[EndpointSpec, Embedder] = field(default_factory=dict)

    def chat(self, spec: EndpointSpec) -> ChatModel:
        if self.wrap is None:
            return self.raw(spec)
        model = self._wrapped.get(spec)
        if model is None:
            model = self._wrapped[spec] = self.wrap(spec, self.raw(spec))
        return model

    def raw(self, spec: EndpointSpec) -> ChatModel:
        model = self._chat.get(spec)
        if model is None:
            model = self._chat[spec] = build_model(spec)
        return model

    def embedder(self, spec: EndpointSpec) -> Embedder:
        embedder = self._embedders.get(spec)
        if embedder is None:
            embedder = self._embedders[spec] = build_embedder(spec)
        return embedder

    async def aclose(self) -> None:
        for model in self._chat.values():
            await model.aclose()
        for embedder in self._embedders.values():
            await embedder.aclose()
        self._chat.clear()
        self._wrapped.clear()
        self._embedders.clear()


@dataclass
class ModelPool:
    """Builds each endpoint's model once, on first use. ``prebuilt`` models (tests, benchmarks) are used as given
    and are not closed by ``aclose`` (their owner closes them); neither are the models of a ``shared`` pool."""

    config: BookConfig
    prebuilt: dict[str, ChatModel] = field(default_factory=dict)
    prebuilt_embedder: Embedder | None = None
    shared: SharedModels | None = None
    meter: UsageMeter = field(default_factory=UsageMeter)
    """The book's usage: every call made through ``metered`` / ``metered_embedder`` is counted here."""
    _chat: dict[str, ChatModel] = field(default_factory=dict)
    _embedder: Embedder | None = None
    _metered: dict[str, MeteredModel] = field(default_factory=dict)
    _metered_embedder: MeteredEmbedder | None = None

    def chat(self, endpoint: str) -> ChatModel:
        if endpoint in self.prebuilt:
            return self.prebuilt[endpoint]
        if endpoint not in self._chat:
            spec = self.config.endpoints.get(endpoint)
            if spec is None:
                raise ConfigError(f"no model endpoint named {endpoint!r} (defined: {', '.join(self.config.endpoints)})")
            self._chat[endpoint] = self.shared.chat(spec) if self.shared is not None else build_model(spec)
        return self._chat[endpoint]

    def metered(self, endpoint: str) -> ChatModel:
        """``chat(endpoint)`` counting its calls in the book's ``meter`` (what seats and the breeder use)."""
        model = self._metered.get(endpoint)
        if model is None:
            model = self._metered[endpoint] = MeteredModel(self.chat(endpoint), self.meter, endpoint)
        return model

    def metered_embedder(self) -> Embedder | None:
        """``embedder()`` counting its input tokens in the book's ``meter``."""
        embedder = self.embedder()
        if embedder is None:
            return None
        if self._metered_embedder is None or self._metered_embedder.inner is not embedder:
            self._metered_embedder = MeteredEmbedder(embedder, self.meter, self.config.embedder or embedder.name)
        return self._metered_embedder

    def embedder(self) -> Embedder | None:
        if self.prebuilt_embedder is not None:
            return self.prebuilt_embedder
        if self.config.embedder is None:
            return None
        if self._embedder is None:
            spec = self.config.endpoints[self.config.embedder]
            self._embedder = self.shared.embedder(spec) if self.shared is not None else build_embedder(spec)
        return self._embedder

    @property
    def embedder_name(self) -> str | None:
        embedder = self.embedder()
        return None if embedder is None else embedder.name

    async def aclose(self) -> None:
        if self.shared is None:
            for model in self._chat.values():
                await model.aclose()
            if self._embedder is not None:
                await self._embedder.aclose()
        self._chat.clear()
        self._embedder = None
        self._metered.clear()
        self._metered_embedder = None
