"""A book's settings: the optional TOML book file, validated into typed values (defaults need no file at all).

```toml
name = "time-book"                 # default book name (``--book`` wins)
topic = "What is time?"
outline = "1. Clocks  2. Entropy  3. Memory"
roster = ["Physicist", "Financier", "Politician", "Mathematician", "Technologist"]
reserve = ["Cyberneticist", "Philosopher"]
reserve_order = "queue"            # queue | random | diverse
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
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from spacetime.adapters.llm.registry import EndpointSpec
from spacetime.domain import NAME_MAX, Persona, PersonaOrigin
from spacetime.errors import ConfigError
from spacetime.personas import builtin_personas, make_persona

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
    max_tokens: int = 2048
    temperature: float = 0.8
    seed: int | None = None
    model: str = DEFAULT_ENDPOINT
    embedder: str | None = DEFAULT_ENDPOINT
    agent_models: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, EndpointSpec] = field(default_factory=dict)

    def endpoint_for(self, agent_name: str) -> str:
        return self.agent_models.get(agent_name, self.model)

    def to_json(self) -> dict[str, Any]:
        """What is stored in ``books.config``: ``parse_book`` reads it back (no secrets: only env var names)."""
        builtin = {p.name for p in builtin_personas()}
        custom = [p for p in self.roster + self.reserve if p.name not in builtin]
        return {
            "topic": self.topic,
            "outline": self.outline,
            "personas": [{"name": p.name, "discipline": p.discipline, "voice": p.voice} for p in custom],
            "roster": [p.name for p in self.roster],
            "reserve": [p.name for p in self.reserve],
            "reserve_order": self.reserve_order,
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
    "name", "topic", "outline", "roster", "reserve", "reserve_order", "max_tokens", "temperature", "seed", "model",
    "embedder", "personas", "agent_models", "endpoints",
}  # fmt: skip


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
    for name, raw in _expect(data.get("endpoints", {}), dict, "endpoints", where).items():
        _expect(raw, dict, f"endpoints.{name}", where)
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

    order = data.get("reserve_order", "queue")
    if order not in get_args(ReserveOrder):
        raise ConfigError(f"{where}: reserve_order must be queue, random or diverse, not {order!r}")
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
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        model=model,
        embedder=None if embedder == "none" else embedder,
        agent_models=agent_models,
        endpoints=endpoints,
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
