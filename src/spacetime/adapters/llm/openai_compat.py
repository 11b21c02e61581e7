"""Any OpenAI-compatible chat server (vLLM, llama.cpp ``llama-server``, ``python -m llama_cpp.server``, Ollama,
OpenAI) behind the ``ChatModel`` interface, on openai's ``AsyncOpenAI`` directly.

AutoGen is not on this path: each living agent is an AutoGen agent (``spacetime.adapters.llm.autogen``, the one module
that imports AutoGen), whose model client forwards to this ``ChatModel``; a second AutoGen client underneath would
only convert messages back and forth (its per-call cost is measured in ``spacetime bench --only layers``).

* ``AsyncOpenAI`` retries twice by itself (openai's default ``max_retries=2``); we set it to 0 and retry with
  tenacity so the attempt count, backoff and error message are ours (one retry layer). A 429/5xx carrying
  ``Retry-After`` (or OpenAI's ``retry-after-ms``) waits at least that long, up to ``RETRY_AFTER_MAX_S``.
* ``response_format`` goes in ``extra_body`` (the same JSON on the wire): as a typed argument openai's request
  transform walks the whole ballot schema on every call.
* Ballots (calls with a JSON schema) ask for ``top_logprobs`` so scores can be read as G-Eval expectations
  (``spacetime.rules.geval``); a server that refuses them is asked again without, once, and never again.
* Messages carry no ``name`` field (some servers reject it or fold it into the prompt).
* ``finish_reason`` ``stop``/``length`` map to ours, anything else (``tool_calls``, ``content_filter``, a server's
  own word) is ``OTHER``; usage comes from the response (0 when the server sends none), the prompt tokens served
  from the server's prefix cache from ``usage.prompt_tokens_details.cached_tokens`` (vLLM, OpenAI; else 0).
* Embeddings report the input tokens the server counted (``embed_counted``; estimated when it sends no usage).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

from spacetime.adapters.llm.loops import PerLoop
from spacetime.adapters.llm.registry import NO_KEY
from spacetime.book import StructuredOutput
from spacetime.domain import Completion, FinishReason, TokenChoice
from spacetime.errors import ConfigError, ModelError
from spacetime.ports import Message
from spacetime.rules.geval import number_value

if TYPE_CHECKING:
    from openai import AsyncOpenAI

CHARS_PER_TOKEN = 3.0
"""Token estimate over HTTP: one token per 3 UTF-8 bytes. Real tokenizers average ~4 characters per token on
English prose, so this overestimates prompt size (safe for budgeting); counting bytes rather than characters keeps
it safe for non-Latin scripts too (a CJK character is 3 bytes and usually 1–2 tokens)."""

_T = TypeVar("_T")
log = logging.getLogger(__name__)
TOP_LOGPROBS = 20
"""Alternatives asked for per generated token on ballots (OpenAI's maximum; vLLM's default ``max_logprobs``)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries after the first attempt on timeouts, refused/broken connections, HTTP 429 and 5xx."""

    max_retries: int = 3
    initial_s: float = 0.5
    """First backoff window; each retry doubles it (full jitter: a uniform wait in the window)."""
    max_s: float = 8.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.initial_s < 0 or self.max_s < 0:
            raise ConfigError("retry settings must not be negative")


def _describe_url(base_url: str | None) -> str:
    if not base_url:
        return "api.openai.com"
    parts = urlsplit(base_url)
    host = parts.hostname or base_url
    return f"{host}:{parts.port}" if parts.port else host


def _is_transient(err: BaseException) -> bool:
    import openai

    if isinstance(err, openai.APIConnectionError):  # includes APITimeoutError and refused connections
        return True
    if isinstance(err, openai.APIStatusError):
        if "logprob" in str(err.message).lower():
            return False  # a server that cannot give log-probabilities: asked again without them, see complete()
        if err.status_code == 500 and "validation error" in str(err.message).lower():
            # llama_cpp.server answers a request it cannot validate with HTTP 500 (its route handler wraps every
            # exception as internal_server_error): retrying cannot help.
            return False
        return err.status_code == 429 or err.status_code >= 500
    return isinstance(err, TimeoutError)


def _reason(err: BaseException) -> str:
    import openai

    if isinstance(err, openai.APITimeoutError) or isinstance(err, TimeoutError):
        return "timed out"
    if isinstance(err, openai.APIConnectionError):
        cause = err.__cause__
        detail = f" ({type(cause).__name__})" if cause is not None else ""
        return f"connection failed{detail}"
    if isinstance(err, openai.APIStatusError):
        message = ""
        body = err.body
        if isinstance(body, dict):
            inner = body.get("error", body)
            message = str(inner.get("message", "") if isinstance(inner, dict) else inner)
        message = message or err.message
        hint = ""
        if "response_format" in message and "json_schema" in message:
            hint = " (this server rejects structured_output 'json_schema'; try 'json_object_schema')"
        message = " ".join(message.split())[:200]
        return (f"HTTP {err.status_code}: {message}" if message else f"HTTP {err.status_code}") + hint
    return f"{type(err).__name__}: {err}"


def _refuses_logprobs(err: BaseException | None) -> bool:
    """The server refused the request over its log-probabilities (an HTTP error whose message names them)."""
    import openai

    return isinstance(err, openai.APIStatusError) and "logprob" in _reason(err).lower()


def _token_choices(choice: Any) -> tuple[TokenChoice, ...]:
    """The generated tokens with the number tokens among their ``top_logprobs`` (nothing when none came back)."""
    content = getattr(getattr(choice, "logprobs", None), "content", None) or ()
    out = []
    for item in content:
        top = getattr(item, "top_logprobs", None) or ()
        numbers = tuple(
            (str(t.token), float(t.logprob))
            for t in top
            if t.logprob is not None and number_value(str(t.token)) is not None
        )
        out.append(TokenChoice(str(item.token), numbers))
    return tuple(out)


RETRY_AFTER_MAX_S = 120.0
"""A server's ``Retry-After`` is honoured up to this many seconds (a longer one is capped: the next attempt then
most likely fails again, and the call fails for good after its retries)."""


def retry_after_s(headers: Mapping[str, str], now: datetime) -> float | None:
    """The wait a 429/503 response asks for: ``retry-after-ms`` (OpenAI), else ``Retry-After`` in seconds or as an
    HTTP date (RFC 9110); ``None`` when absent or unreadable. Never negative."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for key, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = (lowered.get(key) or "").strip()
        if not value:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            if scale != 1.0:
                continue
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - now).total_seconds()
        if math.isfinite(seconds):
            return max(0.0, seconds)
    return None


class _HonourRetryAfter:
    """tenacity wait: the backoff, or the server's ``Retry-After`` when it asks for longer (capped)."""

    def __init__(self, backoff: Callable[[Any], float]) -> None:
        self.backoff = backoff

    def __call__(self, state: Any) -> float:
        import openai

        wait = float(self.backoff(state))
        err = state.outcome.exception() if state.outcome is not None else None
        if isinstance(err, openai.APIStatusError):
            asked = retry_after_s(err.response.headers, datetime.now(UTC))
            if asked is not None:
                wait = max(wait, min(asked, RETRY_AFTER_MAX_S))
        return wait


class _Endpoint:
    """Concurrency slots and retries for one endpoint."""

    def __init__(self, label: str, concurrency: int, retry: RetryPolicy, secret: str | None) -> None:
        if concurrency < 1:
            raise ConfigError(f"{label}: concurrency must be at least 1")
        self.label = label
        self.concurrency = concurrency
        self.retry = retry
        self._secret = secret if secret and secret != NO_KEY else None
        self._slots = PerLoop(lambda: asyncio.Semaphore(concurrency))

    @classmethod
    def open(
        cls, label: str, base_url: str | None, api_key: str | None, concurrency: int, retry: RetryPolicy,
        timeout_s: float,
    ) -> tuple[_Endpoint, AsyncOpenAI]:  # fmt: skip
        """The endpoint's slots and retries, and its ``AsyncOpenAI`` client (no retries of its own: ours run)."""
        from openai import AsyncOpenAI

        endpoint = cls(f"{label} ({_describe_url(base_url)})", concurrency, retry, api_key)
        return endpoint, AsyncOpenAI(base_url=base_url, api_key=api_key or NO_KEY, timeout=timeout_s, max_retries=0)

    def slots(self) -> asyncio.Semaphore:
        """The semaphore of the running loop (asyncio primitives belong to one loop)."""
        return self._slots.get()

    async def call(self, attempt: Callable[[], Awaitable[_T]]) -> tuple[_T, float]:
        """Run ``attempt`` in a slot, retrying transient failures; return its result and the service time of the
        successful attempt. Raises ``ModelError`` (one line, never the api key) when it fails for good."""
        from tenacity import AsyncRetrying, RetryError, retry_if_exception, stop_after_attempt
        from tenacity.wait import wait_random_exponential

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.max_retries + 1),
            wait=_HonourRetryAfter(wait_random_exponential(multiplier=self.retry.initial_s, max=self.retry.max_s)),
            retry=retry_if_exception(_is_transient),
            reraise=True,
        )
        attempts = 0
        try:
            async for trial in retrying:
                with trial:
                    attempts += 1
                    async with self.slots():
                        started = time.perf_counter()
                        result = await attempt()
                        return result, time.perf_counter() - started
        except RetryError as err:  # pragma: no cover - reraise=True re-raises the last exception instead
            raise self._error(err, attempts) from err
        except Exception as err:
            import openai

            if isinstance(err, openai.OpenAIError | TimeoutError):
                raise self._error(err, attempts) from err
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, err: BaseException, attempts: int) -> ModelError:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        line = f"{self.label}: {_reason(err)}{tries}"
        if self._secret:
            line = line.replace(self._secret, "***")
        return ModelError(line)


_NAME_RE = re.compile(r"[^A-Za-z0-9_-]+")


def response_format_for(
    mode: StructuredOutput, schema: dict[str, Any], *, strict: bool = True
) -> dict[str, Any] | None:
    """The ``response_format`` body field asking ``mode``'s dialect for JSON matching ``schema`` (``None`` for
    ``"none"``)."""
    if mode == "json_schema":
        name = _NAME_RE.sub("_", str(schema.get("title") or "response"))[:64] or "response"
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}}
    if mode == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if mode == "json_object":
        return {"type": "json_object"}
    return None


class OpenAICompatModel:
    """``ChatModel`` for one OpenAI-compatible endpoint, on openai's ``AsyncOpenAI``.

    ``concurrency`` bounds requests in flight (``llama_cpp.server`` serves one at a time: use 1; vLLM many);
    ``latency_s`` is measured inside the slot. ``structured_output`` picks how ``json_schema`` is requested (see
    ``spacetime.book.StructuredOutput``); ``strict_schema`` is sent with ``json_schema`` mode (OpenAI then requires
    ``additionalProperties: false`` and every property in ``required``). ``max_tokens_param`` is
    ``"max_completion_tokens"`` for OpenAI reasoning models, which reject ``max_tokens``.
    """

    def __init__(
        self,
        *,
        name: str,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        context_window: int = 8192,
        concurrency: int = 4,
        structured_output: StructuredOutput = "json_schema",
        timeout_s: float = 300.0,
        max_retries: int = 3,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 8.0,
        strict_schema: bool = True,
        max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens",
        score_logprobs: bool = True,
    ) -> None:
        self.name = name
        self.model = model
        self.base_url = base_url
        self.context_window = context_window
        self.structured_output: StructuredOutput = structured_output
        self.strict_schema = strict_schema
        self.max_tokens_param = max_tokens_param
        self.score_logprobs = score_logprobs
        """Ask for ``top_logprobs`` on ballots (G-Eval scores); switched off for good after the server refuses it."""
        self._endpoint, self._client = _Endpoint.open(
            f"model endpoint {name!r}", base_url, api_key, concurrency,
            RetryPolicy(max_retries, retry_initial_s, retry_max_s), timeout_s,
        )  # fmt: skip

    @property
    def concurrency(self) -> int:
        return self._endpoint.concurrency

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
        # The messages and the response format go through ``extra_body`` (merged into the JSON body as is): as
        # typed arguments, openai's request transform walks them recursively on every call (the messages ~0.23 ms
        # a call; the schema ~0.3 ms per ballot with 6 drafts, growing with the drafts judged) for a body that ends
        # up byte-identical. ``messages=[]`` only satisfies the signature: the body's ``messages`` is ours.
        body: dict[str, Any] = {"messages": [{"role": m.role, "content": m.content} for m in messages]}
        args: dict[str, Any] = {
            "model": self.model,
            "messages": [],
            self.max_tokens_param: max_tokens,
            "temperature": temperature,
            "extra_body": body,
        }
        if seed is not None:
            args["seed"] = seed
        if json_schema is not None:
            response_format = response_format_for(self.structured_output, json_schema, strict=self.strict_schema)
            if response_format is not None:
                body["response_format"] = response_format
        asked = json_schema is not None and self.score_logprobs
        if asked:
            args |= {"logprobs": True, "top_logprobs": TOP_LOGPROBS}

        try:
            result, latency = await self._endpoint.call(lambda: self._client.chat.completions.create(**args))
        except ModelError as err:
            if not asked or not _refuses_logprobs(err.__cause__):
                raise
            # Some servers refuse log-probabilities (llama_cpp.server without logits_all: HTTP 500 "logprobs is not
            # supported…"): ask again without; if that works, this endpoint's ballots go without them from now on.
            del args["logprobs"], args["top_logprobs"]
            try:
                result, latency = await self._endpoint.call(lambda: self._client.chat.completions.create(**args))
            except ModelError:
                raise err from None
            self.score_logprobs = False
            log.warning("%s: the server refused log-probabilities (%s); ballots go on without G-Eval scores",
                        self._endpoint.label, err)  # fmt: skip
        choice = result.choices[0] if result.choices else None
        usage = result.usage
        return Completion(
            text=(choice.message.content or "") if choice is not None else "",
            finish_reason=FinishReason.from_openai(choice.finish_reason if choice is not None else None),
            prompt_tokens=int(usage.prompt_tokens or 0) if usage else 0,
            completion_tokens=int(usage.completion_tokens or 0) if usage else 0,
            latency_s=latency,
            tokens=_token_choices(choice) if asked and choice is not None else (),
            cached_tokens=_cached_tokens(usage),
        )

    def count_tokens(self, text: str) -> int:
        """Estimate: ``ceil(utf8_bytes / 3)`` (see :data:`CHARS_PER_TOKEN`), an overestimate for real tokenizers."""
        return math.ceil(len(text.encode("utf-8")) / CHARS_PER_TOKEN)

    def truncate_to_tokens(self, text: str, max_tokens: int) -> str:
        if max_tokens <= 0:
            return ""
        budget = int(max_tokens * CHARS_PER_TOKEN)
        raw = text.encode("utf-8")
        if len(raw) <= budget:
            return text
        return raw[:budget].decode("utf-8", errors="ignore")

    async def aclose(self) -> None:
        await self._client.close()


class OpenAICompatEmbedder:
    """``Embedder`` on an OpenAI-compatible ``/embeddings`` endpoint (openai's ``AsyncOpenAI``), L2-normalised.

    ``name`` (the vector space) is the model id; ``endpoint`` names the endpoint in errors.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 4,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 8.0,
        batch_size: int = 64,
        name: str | None = None,
    ) -> None:
        self.name = name or model
        self.model = model
        self.batch_size = max(1, batch_size)
        self._endpoint, self._client = _Endpoint.open(
            f"embedding endpoint {endpoint!r}", base_url, api_key, concurrency,
            RetryPolicy(max_retries, retry_initial_s, retry_max_s), timeout_s,
        )  # fmt: skip

    @property
    def concurrency(self) -> int:
        return self._endpoint.concurrency

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return (await self.embed_counted(texts))[0]

    async def embed_counted(self, texts: Sequence[str]) -> tuple[list[list[float]], int]:
        """The vectors and the input tokens the server counted (``usage.prompt_tokens``; a batch whose response
        has no usage is estimated like ``OpenAICompatModel.count_tokens``)."""
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), self.batch_size):
            batch = [t or " " for t in texts[start : start + self.batch_size]]
            response, _ = await self._endpoint.call(
                lambda batch=batch: self._client.embeddings.create(model=self.model, input=batch)  # type: ignore[misc]
            )
            rows = sorted(response.data, key=lambda row: row.index)
            if len(rows) != len(batch):
                raise ModelError(f"{self._endpoint.label}: sent {len(batch)} texts, got {len(rows)} vectors")
            for row in rows:
                vectors.append(_l2_normalise([float(x) for x in row.embedding], self._endpoint.label))
            usage = getattr(response, "usage", None)
            counted = getattr(usage, "prompt_tokens", None) if usage is not None else None
            tokens += int(counted) if isinstance(counted, int) else sum(
                math.ceil(len(t.encode("utf-8")) / CHARS_PER_TOKEN) for t in batch)  # fmt: skip
        return vectors, tokens

    async def aclose(self) -> None:
        await self._client.close()


def _cached_tokens(usage: Any) -> int:
    """``usage.prompt_tokens_details.cached_tokens`` (OpenAI, vLLM with prefix caching), 0 when absent."""
    details = getattr(usage, "prompt_tokens_details", None) if usage is not None else None
    if isinstance(details, dict):
        cached = details.get("cached_tokens")
    else:
        cached = getattr(details, "cached_tokens", None)
    return max(0, int(cached)) if isinstance(cached, int | float) else 0


def _l2_normalise(vector: list[float], label: str) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0 or not math.isfinite(norm):
        raise ModelError(f"{label}: returned a zero or non-finite vector")
    return [x / norm for x in vector]
