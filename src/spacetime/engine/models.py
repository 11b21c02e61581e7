"""One model object per endpoint, shared by every agent that uses it; the book's embedder."""

from __future__ import annotations

from dataclasses import dataclass, field

from spacetime.book import BookConfig
from spacetime.errors import ConfigError
from spacetime.models.base import ChatModel, Embedder
from spacetime.models.registry import build_embedder, build_model


@dataclass
class ModelPool:
    """Builds each endpoint's model once, on first use. ``prebuilt`` models (tests, benchmarks) are used as given
    and are not closed by ``aclose`` (their owner closes them)."""

    config: BookConfig
    prebuilt: dict[str, ChatModel] = field(default_factory=dict)
    prebuilt_embedder: Embedder | None = None
    _chat: dict[str, ChatModel] = field(default_factory=dict)
    _embedder: Embedder | None = None

    def chat(self, endpoint: str) -> ChatModel:
        if endpoint in self.prebuilt:
            return self.prebuilt[endpoint]
        if endpoint not in self._chat:
            spec = self.config.endpoints.get(endpoint)
            if spec is None:
                raise ConfigError(f"no model endpoint named {endpoint!r} (defined: {', '.join(self.config.endpoints)})")
            self._chat[endpoint] = build_model(spec)
        return self._chat[endpoint]

    def embedder(self) -> Embedder | None:
        if self.prebuilt_embedder is not None:
            return self.prebuilt_embedder
        if self.config.embedder is None:
            return None
        if self._embedder is None:
            self._embedder = build_embedder(self.config.endpoints[self.config.embedder])
        return self._embedder

    @property
    def embedder_name(self) -> str | None:
        embedder = self.embedder()
        return None if embedder is None else embedder.name

    async def aclose(self) -> None:
        for model in self._chat.values():
            await model.aclose()
        self._chat.clear()
        if self._embedder is not None:
            await self._embedder.aclose()
            self._embedder = None
