"""Bad input, fuzzed (issue #14 item 6): book files, their ``[[personas]]`` and ``[endpoints.NAME]`` tables.

The properties: every valid generated book parses (and its stored settings read back the same); every invalid one
raises exactly ``ConfigError`` whose message is one line naming the offending key; junk anywhere raises nothing
else. ``SPACETIME_FUZZ_EXAMPLES`` sets the examples per property (``tests/fuzzing.py``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, note
from hypothesis import strategies as st

from spacetime.book import (
    BookConfig,
    EndpointSpec,
    load_book,
    parse_book,
    validate_book_name,
)
from spacetime.domain import NAME_MAX, Persona, PersonaOrigin
from spacetime.errors import ConfigError
from spacetime.personas import builtin_personas, make_persona
from tests.fuzzing import CONTROL, FUZZ, HARD_CONTROL, INT64_MAX, dump_toml, huge_ints, is_one_line, junk, scalars

BUILTIN = [p.name for p in builtin_personas()]
BUILTIN_ROSTER = [p.name for p in builtin_personas(split=True)[0]]
WHERE = "b.toml"
FIELDS = [f.name for f in dataclasses.fields(EndpointSpec) if f.name != "name"]


def config_error(data: Any, *needles: str) -> str:
    """``parse_book(data)`` raises ``ConfigError`` (nothing else), on one line, starting with where the book came
    from and holding every needle; returns the message."""
    with pytest.raises(ConfigError) as err:
        parse_book(data, where=WHERE)
    assert type(err.value) is ConfigError
    message = str(err.value)
    assert is_one_line(message), message
    assert message.startswith(f"{WHERE}: "), message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


def parses_or_one_line(data: Any) -> BookConfig | None:
    """``parse_book(data)`` returns a config or raises a one-line ``ConfigError``, never anything else."""
    try:
        return parse_book(data, where=WHERE)
    except ConfigError as exc:
        assert is_one_line(str(exc)), str(exc)
        return None


# --------------------------------------------------------------------------- valid books
line_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=60)
free_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")) | st.sampled_from("\n\t"),
                    max_size=200)  # fmt: skip
nonblank_line = line_text.filter(lambda s: s.strip())
nonblank_text = free_text.filter(lambda s: s.strip())
book_names = st.text(st.characters(categories=("L", "N")) | st.sampled_from("-_. "), min_size=1, max_size=100).filter(
    lambda s: s == s.strip() and bool(s)
)
persona_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1,
                        max_size=NAME_MAX).filter(lambda s: s.strip())  # fmt: skip
endpoint_names = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
env_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True)
urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["http", "https"]),
    st.sampled_from(["127.0.0.1", "localhost", "gpu-1.example.org", "[::1]"]),
    st.sampled_from(["", ":1", ":8000", ":65535"]),
    st.sampled_from(["", "/", "/v1", "/openai/v1"]),
)
dollars = st.floats(min_value=0, max_value=1e6, allow_nan=False) | st.integers(0, 10**6)


@st.composite
def endpoint_tables(draw: st.DrawFn) -> dict[str, Any]:
    """A valid ``[endpoints.NAME]`` table (without ``price``)."""
    kind = draw(st.sampled_from(["embedded", "openai"]))
    table: dict[str, Any] = {"kind": kind} if kind == "openai" or draw(st.booleans()) else {}
    if kind == "openai":
        table["model"] = draw(nonblank_line)
        where = draw(st.sampled_from(["none", "one", "many"]))
        if where == "one":
            table["base_url"] = draw(urls)
        elif where == "many":
            table["base_urls"] = draw(st.lists(urls, min_size=1, max_size=3))
    elif draw(st.booleans()):
        table["model"] = draw(nonblank_line)  # a GGUF path
    optional = {
        "api_key_env": env_names,
        "concurrency": st.integers(1, 4096),
        "context_window": st.integers(256, 1 << 24),
        "structured_output": st.sampled_from(["json_schema", "json_object_schema", "json_object", "none"]),
        "timeout_s": st.floats(min_value=0, max_value=86_400, exclude_min=True) | st.integers(1, 86_400),
        "max_retries": st.integers(0, 100),
        "score_logprobs": st.booleans(),
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            table[key] = draw(values)
    return table


@st.composite
def prices(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(["input", "cached_input", "output"]), min_size=1, max_size=3, unique=True))
    return {k: draw(dollars) for k in keys}


@st.composite
def books(draw: st.DrawFn) -> dict[str, Any]:
    """A valid book file's document, every key optional."""
    book: dict[str, Any] = {}
    customs = draw(st.lists(persona_names, max_size=3, unique_by=lambda n: n.strip().casefold()).filter(
        lambda names: not {n.strip().casefold() for n in names} & {b.casefold() for b in BUILTIN}))  # fmt: skip
    if customs or draw(st.booleans()):
        book["personas"] = [
            {"name": name, "discipline": draw(nonblank_line), "voice": draw(nonblank_text)}
            | ({"system_prompt": draw(free_text)} if draw(st.booleans()) else {})
            for name in customs
        ]
    everyone = BUILTIN + [n.strip() for n in customs]
    if draw(st.booleans()):
        order = draw(st.permutations(everyone))
        size = draw(st.integers(3, len(order)))
        book["roster"] = list(order[:size])
        if draw(st.booleans()):
            book["reserve"] = list(order[size:])
    elif draw(st.booleans()):
        book["reserve"] = draw(st.lists(st.sampled_from([n for n in everyone if n not in BUILTIN_ROSTER]),
                                        unique=True))  # fmt: skip
    endpoints = draw(st.dictionaries(endpoint_names, endpoint_tables(), max_size=3))
    priced = set()
    for name, table in endpoints.items():
        if draw(st.booleans()):
            table["price"] = draw(prices())
            priced.add(name)
    if endpoints or draw(st.booleans()):
        book["endpoints"] = endpoints
    defined = ["embedded", *endpoints]
    if draw(st.booleans()):
        book["model"] = draw(st.sampled_from(defined))
    if draw(st.booleans()):
        book["embedder"] = draw(st.sampled_from([*defined, "none"]))
    if draw(st.booleans()):
        roster = book.get("roster", BUILTIN_ROSTER)
        book["agent_models"] = draw(st.dictionaries(st.sampled_from(roster), st.sampled_from(defined), max_size=3))
    scalars_ok: dict[str, st.SearchStrategy[Any]] = {
        "name": book_names,
        "topic": free_text,
        "outline": free_text,
        "reserve_order": st.sampled_from(["queue", "random", "diverse"]),
        "ballot_layout": st.sampled_from(["shared", "shuffled"]),
        "max_tokens": st.integers(16, 32768),
        "temperature": st.floats(min_value=0, max_value=2) | st.integers(0, 2),
        "seed": st.integers() | huge_ints,  # --seed takes any int, and a stored book must read back
    }
    for key, values in scalars_ok.items():
        if draw(st.booleans()):
            book[key] = draw(values)
    if draw(st.booleans()):
        budget: dict[str, Any] = {}
        if draw(st.booleans()):
            budget["max_tokens_total"] = draw(st.integers(1, INT64_MAX))
        used = {book.get("model", "embedded"), *book.get("agent_models", {}).values()}
        if book.get("embedder", "embedded") != "none":
            used.add(book.get("embedder", "embedded"))
        if used & priced and draw(st.booleans()):
            budget["max_cost"] = draw(st.floats(min_value=0.01, max_value=1e9) | st.integers(1, 10**9))
        book["budget"] = budget
    return book


def _same(a: BookConfig, b: BookConfig) -> None:
    assert [p.name for p in a.roster] == [p.name for p in b.roster]
    assert [p.name for p in a.reserve] == [p.name for p in b.reserve]
    assert {p.name: p for p in a.roster + a.reserve} == {p.name: p for p in b.roster + b.reserve}
    for f in dataclasses.fields(BookConfig):
        if f.name not in ("roster", "reserve"):
            assert getattr(a, f.name) == getattr(b, f.name), f.name


@FUZZ
@given(books())
def test_every_valid_book_parses_and_reads_back_the_same(book: dict[str, Any]) -> None:
    config = parse_book(book, where=WHERE)
    assert len(config.roster) >= 3
    assert config.model in config.endpoints and set(config.agent_models.values()) <= set(config.endpoints)
    stored = json.loads(json.dumps(config.to_json(), allow_nan=False))  # what books.config holds (jsonb)
    _same(parse_book(stored, where="stored"), dataclasses.replace(config, name=None))


@FUZZ
@given(books())
def test_a_valid_book_file_loads_as_its_document(tmp_path_factory: pytest.TempPathFactory,
                                                 book: dict[str, Any]) -> None:  # fmt: skip
    path = tmp_path_factory.mktemp("book") / "b.toml"
    path.write_text(dump_toml(book), encoding="utf-8")
    _same(load_book(path), parse_book(book))


# --------------------------------------------------------------------------- one bad key in a valid book
JUNK = junk()


def not_str() -> st.SearchStrategy[Any]:
    return JUNK.filter(lambda v: not isinstance(v, str))


def not_int() -> st.SearchStrategy[Any]:
    return JUNK.filter(lambda v: not isinstance(v, int) or isinstance(v, bool))


def with_control(text: st.SearchStrategy[str], controls: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda a, c, b: a + c + b, text, controls, text)


def ints_outside(least: int, most: int) -> st.SearchStrategy[int]:
    return st.integers(max_value=least - 1) | st.integers(min_value=most + 1) | huge_ints


def numbers_outside(least: int, most: float, *, least_ok: bool = True) -> st.SearchStrategy[Any]:
    """Numbers a key taking ``least``..``most`` refuses (``least`` itself too unless ``least_ok``): below, above,
    NaN, and ints too large for a float."""
    below = st.floats(max_value=least, exclude_max=least_ok) | st.integers(max_value=least - (1 if least_ok else 0))
    out = below | st.just(float("nan")) | st.integers(max_value=-(1 << 1030)) | st.integers(min_value=1 << 1030)
    if math.isfinite(most):
        out |= st.floats(min_value=most, exclude_min=True) | st.integers(min_value=int(most) + 1)
    return out


BAD_TOP: dict[str, st.SearchStrategy[Any]] = {
    "name": not_str() | st.just("") | st.just(" ") | st.just("a" * 101)
    | with_control(st.text(st.characters(categories=("L",)), max_size=5), CONTROL)
    | st.sampled_from(["a/b", "a\\b", "x:y", " lead", "trail ", "💥", "<b>"]),
    "topic": not_str() | with_control(free_text, HARD_CONTROL) | st.just("x" * 10_001),
    "outline": not_str().filter(lambda v: v is not None) | with_control(free_text, HARD_CONTROL),
    "reserve_order": not_str() | st.text().filter(lambda s: s not in ("queue", "random", "diverse")),
    "ballot_layout": not_str() | st.text().filter(lambda s: s not in ("shared", "shuffled")),
    "max_tokens": not_int() | ints_outside(16, 32768) | st.booleans() | st.floats(16, 32768),
    "temperature": numbers_outside(0, 2) | st.booleans() | not_int().filter(lambda v: not isinstance(v, float))
    | st.floats(allow_nan=False).filter(lambda f: not 0 <= f <= 2) | st.just(float("inf")),
    "seed": not_int().filter(lambda v: v is not None) | st.booleans() | st.floats(),  # any int: --seed takes any
    "model": not_str() | st.text(max_size=10).map(lambda s: s + " ?"),  # never an endpoint name
    "embedder": not_str() | st.text(max_size=10).map(lambda s: s + " ?"),
    "roster": junk().filter(lambda v: not isinstance(v, list))
    | st.lists(st.sampled_from(BUILTIN), max_size=2, unique=True)
    | st.lists(not_str(), min_size=1, max_size=3).map(lambda bad: BUILTIN[:3] + bad)
    | (st.just("") | with_control(st.just("Wiz"), HARD_CONTROL)).map(lambda bad: BUILTIN[:3] + [bad])
    | st.sampled_from(BUILTIN[:3]).map(lambda twice: [*BUILTIN[:3], twice]),
    "reserve": junk().filter(lambda v: not isinstance(v, list))
    | st.lists(not_str(), min_size=1, max_size=3)
    | st.sampled_from(["", "x" * 51, "Wiz\x00"]).map(lambda bad: [bad]),  # never a persona's name
    "personas": junk().filter(lambda v: not isinstance(v, list))
    | st.lists(junk().filter(lambda v: not isinstance(v, dict)), min_size=1, max_size=3),
    "agent_models": junk().filter(lambda v: not isinstance(v, dict))
    | st.dictionaries(st.sampled_from(BUILTIN), not_str(), min_size=1, max_size=2)
    | st.dictionaries(st.sampled_from(BUILTIN), st.text(max_size=8).map(lambda s: s + " ?"), min_size=1,
                      max_size=2)
    | st.dictionaries(with_control(st.just("P"), CONTROL) | st.just("") | st.just("x" * 51), st.just("embedded"),
                      min_size=1, max_size=1),
    "endpoints": junk().filter(lambda v: not isinstance(v, dict))
    | st.dictionaries(endpoint_names, junk().filter(lambda v: not isinstance(v, dict)), min_size=1, max_size=2)
    | st.dictionaries(st.text(max_size=70).filter(lambda n: not (0 < len(n) <= 64 and all(
        c.isalnum() or c in "-_." for c in n))), st.just({}), min_size=1, max_size=1),  # fmt: skip
    "budget": junk().filter(lambda v: v is not None and not isinstance(v, dict))
    | st.fixed_dictionaries({"max_tokens_total": not_int().filter(lambda v: v is not None) | ints_outside(1, INT64_MAX)
                             | st.booleans()})
    | st.fixed_dictionaries({"max_cost": numbers_outside(0, float("inf"), least_ok=False) | st.booleans()
                             | not_int().filter(lambda v: v is not None and not isinstance(v, float))})
    | st.dictionaries(st.text(max_size=10).filter(lambda k: k not in ("max_tokens_total", "max_cost")), scalars,
                      min_size=1, max_size=2),
}  # fmt: skip


@FUZZ
@given(books(), st.sampled_from(sorted(BAD_TOP)), st.data())
def test_one_bad_top_level_value_is_one_line_naming_its_key(book: dict[str, Any], key: str,
                                                            data: st.DataObject) -> None:  # fmt: skip
    book[key] = data.draw(BAD_TOP[key], label=key)
    config_error(book, key)


@FUZZ
@given(books(), st.text(max_size=30).filter(lambda k: k not in {
    "name", "topic", "outline", "roster", "reserve", "reserve_order", "ballot_layout", "max_tokens", "temperature",
    "seed", "model", "embedder", "personas", "agent_models", "endpoints", "budget"}), junk())  # fmt: skip
def test_an_unknown_key_is_one_line_naming_it(book: dict[str, Any], key: str, value: Any) -> None:
    book[key] = value
    message = config_error(book, "unknown key")
    if key.isascii() and key.replace("_", "a").replace("-", "a").isalnum():
        assert key in message


# --------------------------------------------------------------------------- [[personas]]
BAD_PERSONA: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("name", not_str() | st.just("") | st.just("   ") | st.just("x" * (NAME_MAX + 1))
     | with_control(st.just("Po"), CONTROL)),
    ("discipline", not_str() | st.just("") | st.just(" \t") | with_control(st.just("Po"), CONTROL)
     | st.just("x" * 1001)),
    ("voice", not_str() | st.just("") | st.just("\n") | with_control(st.just("Po"), HARD_CONTROL)),
    ("system_prompt", not_str() | with_control(st.just("Po"), HARD_CONTROL) | st.just("x" * 100_001)),
]  # fmt: skip


@FUZZ
@given(books(), st.data())
def test_a_bad_persona_is_one_line_naming_personas(book: dict[str, Any], data: st.DataObject) -> None:
    entry: dict[str, Any] = {"name": "Poet", "discipline": "Poetry", "voice": "Compressed images."}
    existing = [p["name"].strip().casefold() for p in book.get("personas", [])]
    assume("poet" not in existing)
    how = data.draw(st.sampled_from(["field", "missing", "unknown key", "builtin", "twice"]))
    if how == "field":
        key, values = data.draw(st.sampled_from(BAD_PERSONA))
        entry[key] = data.draw(values, label=key)
    elif how == "missing":
        del entry[data.draw(st.sampled_from(["name", "discipline", "voice"]))]
    elif how == "unknown key":
        entry[data.draw(st.text(max_size=10).filter(lambda k: k not in entry and k != "system_prompt"))] = 1
    elif how == "builtin":
        name = data.draw(st.sampled_from(BUILTIN))
        entry["name"] = data.draw(st.sampled_from([name, name.upper(), name.lower(), f" {name} "]))
    book.setdefault("personas", []).append(entry)
    if how == "twice":
        book["personas"].append({**entry, "name": entry["name"].upper()})
    config_error(book, "personas")


@FUZZ
@given(st.dictionaries(st.sampled_from(["name", "discipline", "voice", "system_prompt"]), junk()))
def test_make_persona_takes_anything_and_raises_only_one_line(fields: dict[str, Any]) -> None:
    kwargs = {"name": None, "discipline": None, "voice": None} | fields
    try:
        persona = make_persona(**kwargs, origin=PersonaOrigin.CUSTOM)
    except ConfigError as exc:
        assert is_one_line(str(exc)), str(exc)
        return
    assert isinstance(persona, Persona) and 0 < len(persona.name) <= NAME_MAX and persona.system_prompt


# --------------------------------------------------------------------------- [endpoints.NAME]
BAD_FIELD: dict[str, st.SearchStrategy[Any]] = {
    "kind": not_str() | st.text(max_size=10).filter(lambda s: s not in ("embedded", "openai")),
    "base_url": not_str().filter(lambda v: v is not None) | st.just("") | st.just("localhost:8000/v1")
    | st.just("ftp://h/v1") | st.just("http://") | st.just("http://h:99999/v1") | st.just("http://h:0/")
    | st.just("http://[::1/v1") | with_control(st.just("http://h/"), CONTROL) | st.just("http://h /v1"),
    "base_urls": junk().filter(lambda v: not isinstance(v, list)) | st.lists(not_str(), min_size=1, max_size=2)
    | st.just(["http://h/v1", ""]) | st.just(["h:1"]),
    "model": not_str().filter(lambda v: v is not None) | st.just("") | with_control(st.just("m"), CONTROL)
    | st.just("m" * 1001),
    "api_key_env": not_str().filter(lambda v: v is not None) | st.just("") | st.just("sk-proj-abc123")
    | st.just("1ABC") | st.just("A B") | with_control(st.just("KEY"), CONTROL) | st.just("K" * 201),
    "concurrency": not_int() | st.booleans() | ints_outside(1, 4096) | st.just("4") | st.floats(1, 16),
    "context_window": not_int() | st.booleans() | ints_outside(256, 1 << 24) | st.just("8192") | st.just(8192.0),
    "structured_output": not_str() | st.text(max_size=12).filter(
        lambda s: s not in ("json_schema", "json_object_schema", "json_object", "none")),
    "timeout_s": numbers_outside(0, 86_400, least_ok=False) | st.booleans() | st.just("30")
    | not_int().filter(lambda v: not isinstance(v, float)),
    "max_retries": not_int() | st.booleans() | ints_outside(0, 100) | st.just(1.0),
    "score_logprobs": junk().filter(lambda v: not isinstance(v, bool)),
    "price": junk().filter(lambda v: not isinstance(v, dict)) | st.just({})
    | st.fixed_dictionaries({"input": numbers_outside(0, float("inf")) | st.booleans() | st.just("0.1")})
    | st.fixed_dictionaries({"output": st.integers(min_value=1 << 1030)})  # too large for a float
    | st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("input", "cached_input", "output")), scalars,
                      min_size=1, max_size=2),
}  # fmt: skip


@FUZZ
@given(books(), endpoint_names, endpoint_tables(), st.sampled_from(sorted(BAD_FIELD)), st.data())
def test_a_bad_endpoint_field_is_one_line_naming_endpoints_name_field(
    book: dict[str, Any], name: str, table: dict[str, Any], field: str, data: st.DataObject
) -> None:
    bad = data.draw(BAD_FIELD[field], label=field)
    table[field] = bad
    if field == "base_urls":
        table["kind"] = "openai"
        table.setdefault("model", "m")
        table.pop("base_url", None)
    if field == "base_url":
        table.pop("base_urls", None)
    book.setdefault("endpoints", {})[name] = table
    key = name if name.replace("_", "a").replace("-", "a").isalnum() and name.isascii() else repr(name)
    config_error(book, f"endpoints.{key}.{field}")


@FUZZ
@given(books(), endpoint_names, endpoint_tables(),
       st.text(max_size=12).filter(lambda k: k not in (*FIELDS, "price", "name")), junk())  # fmt: skip
def test_an_unknown_endpoint_key_is_one_line(book: dict[str, Any], name: str, table: dict[str, Any], key: str,
                                             value: Any) -> None:  # fmt: skip
    table[key] = value
    book.setdefault("endpoints", {})[name] = table
    config_error(book, "endpoints.", "unknown key")


@FUZZ
@given(st.dictionaries(st.sampled_from([*FIELDS, "name", "nonsense"]), junk()))
def test_endpoint_spec_takes_anything_and_raises_only_config_error(fields: dict[str, Any]) -> None:
    fields.setdefault("name", "x")
    try:
        spec = EndpointSpec(**fields)
    except TypeError:
        assert "nonsense" in fields  # the only unexpected keyword
        return
    except ConfigError as exc:
        assert is_one_line(str(exc)), str(exc)
        return
    assert hash(spec) is not None and isinstance(spec.base_urls, tuple)  # frozen, hashable: a valid spec


@FUZZ
@given(endpoint_names, endpoint_tables())
def test_every_valid_endpoint_table_builds_a_spec(name: str, table: dict[str, Any]) -> None:
    spec = EndpointSpec(name=name, **table)
    assert {f: getattr(spec, f) for f in table} == {f: tuple(v) if f == "base_urls" else v for f, v in table.items()}


# --------------------------------------------------------------------------- junk anywhere, and files
TOP_KEYS = ["name", "topic", "outline", "roster", "reserve", "reserve_order", "ballot_layout", "max_tokens",
            "temperature", "seed", "model", "embedder", "personas", "agent_models", "endpoints", "budget"]  # fmt: skip
surrogates = st.text(st.characters(categories=("Cs",)), min_size=1, max_size=2)


@FUZZ
@given(st.dictionaries(st.sampled_from(TOP_KEYS) | st.text(max_size=8),
                       junk(scalars | surrogates | st.none()), max_size=6))  # fmt: skip
def test_junk_anywhere_parses_or_is_one_config_error_line(data: dict[str, Any]) -> None:
    parses_or_one_line(data)  # stored settings come from JSON: None and lone surrogates too


@FUZZ
@given(books(), st.sampled_from(["personas", "endpoints", "agent_models", "budget"]), st.data())
def test_nested_junk_in_a_table_parses_or_is_one_line(book: dict[str, Any], key: str, data: st.DataObject) -> None:
    value = book.get(key)
    if key == "endpoints":
        value = {data.draw(endpoint_names): data.draw(st.dictionaries(st.sampled_from([*FIELDS, "price"]), junk()))}
    elif key == "personas":
        value = data.draw(st.lists(st.dictionaries(st.sampled_from(["name", "discipline", "voice", "system_prompt"]),
                                                   junk()), max_size=3))  # fmt: skip
    else:
        value = data.draw(junk())
    book[key] = value
    parses_or_one_line(book)


def _load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_book(path)
    assert type(err.value) is ConfigError
    assert is_one_line(str(err.value)), str(err.value)
    return str(err.value)


@FUZZ
@given(st.binary(max_size=400) | st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_any_bytes_in_a_book_file_load_or_are_one_config_error_line(tmp_path_factory: pytest.TempPathFactory,
                                                                    raw: bytes) -> None:  # fmt: skip
    path = tmp_path_factory.mktemp("book") / "b.toml"
    path.write_bytes(raw)
    try:
        load_book(path)
    except ConfigError as exc:
        assert is_one_line(str(exc)) and str(path) in str(exc), str(exc)


@FUZZ
@given(books(), st.binary(min_size=1, max_size=3).filter(lambda b: not _utf8(b)), st.integers(0, 10_000))
def test_a_book_file_that_is_not_utf8_is_one_line(tmp_path_factory: pytest.TempPathFactory, book: dict[str, Any],
                                                  junk_bytes: bytes, at: int) -> None:  # fmt: skip
    raw = dump_toml(book).encode("utf-8")
    at = min(at, len(raw))
    path = tmp_path_factory.mktemp("book") / "b.toml"
    path.write_bytes(raw[:at] + junk_bytes + raw[at:])
    assume(not _utf8(path.read_bytes()))
    assert "is not UTF-8 text" in _load_error(path)


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@FUZZ
@given(books(), st.sampled_from(sorted(BAD_TOP)), st.data())
def test_a_bad_book_file_says_what_parse_book_says(tmp_path_factory: pytest.TempPathFactory, book: dict[str, Any],
                                                   key: str, data: st.DataObject) -> None:  # fmt: skip
    book[key] = data.draw(BAD_TOP[key], label=key)
    try:
        text = dump_toml(book)
    except ValueError:
        assume(False)
    path = tmp_path_factory.mktemp("book") / "b.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as expected:
        parse_book(tomllib.loads(text), where=str(path))
    note(str(expected.value))
    assert _load_error(path) == str(expected.value)


@FUZZ
@given(st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=40))
def test_a_missing_book_file_with_any_name_is_one_line(tmp_path_factory: pytest.TempPathFactory, name: str) -> None:
    assume(name not in (".", ".."))
    path = tmp_path_factory.mktemp("none") / name
    assert "does not exist" in _load_error(path)


def test_a_book_path_that_is_a_directory_nul_or_huge_is_one_line(tmp_path: Path) -> None:
    assert "is a directory" in _load_error(tmp_path)
    assert "NUL" in _load_error(Path("b\x00.toml"))
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"# " + b"x" * (4 << 20) + b"\n")
    assert "larger than 4 MiB" in _load_error(huge)
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert "nest too deeply" in _load_error(deep)  # tomllib recurses: a RecursionError, caught


def test_book_file_errors_in_a_named_file_with_a_line_break_stay_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "two\nlines.toml"
    path.write_text("max_tokens = 1\n")
    assert "max_tokens" in _load_error(path)
    assert "does not exist" in _load_error(tmp_path / "gone\n.toml")


# --------------------------------------------------------------------------- book names (--book and name = …)
@FUZZ
@given(book_names)
def test_every_valid_book_name_is_accepted(name: str) -> None:
    assert validate_book_name(name) == name


@FUZZ
@given(st.text(max_size=120) | junk())
def test_a_book_name_is_valid_or_one_line(name: Any) -> None:
    try:
        validate_book_name(name)
    except ConfigError as exc:
        assert is_one_line(str(exc)) and "book name" in str(exc), str(exc)
    else:
        assert isinstance(name, str) and 0 < len(name) <= 100 and name == name.strip()


# --------------------------------------------------------------------------- the bugs the fuzzing found, pinned
@pytest.mark.parametrize(("data", "message"), [
    ({"endpoints": {"vllm": {"kind": "openai", "model": "m", "concurrency": "4"}}},
     "b.toml: endpoints.vllm.concurrency must be a whole number of requests in flight from 1 to 4096, not '4'"),
    ({"endpoints": {"vllm": {"kind": "openai", "model": 5}}},
     "b.toml: endpoints.vllm.model must be one line of text (a string), not 5"),
    ({"endpoints": {"vllm": {"kind": "openai", "model": "m", "base_url": 5}}},
     "b.toml: endpoints.vllm.base_url must be an http:// or https:// URL such as http://127.0.0.1:8000/v1, not 5"),
    ({"endpoints": {"vllm": {"kind": []}}}, "b.toml: endpoints.vllm.kind must be 'embedded' or 'openai', not []"),
    ({"endpoints": {"vllm": {"context_window": True}}},
     "b.toml: endpoints.vllm.context_window must be a whole number of tokens from 256 to 16777216, not True"),
    ({"endpoints": {"vllm": {"timeout_s": float("nan")}}},
     "b.toml: endpoints.vllm.timeout_s must be a number of seconds, more than 0 and at most 86400, not nan"),
    ({"endpoints": {"e": {"api_key_env": "sk-secret-123"}}}, "e.g. VLLM_API_KEY), not something else: never the key"),
    ({"endpoints": {"a\nb": {}}}, "b.toml: endpoints.'a\\nb': an endpoint name is 1-64 letters"),
    ({"temperature": float("nan")}, "b.toml: temperature must be a number from 0 to 2, not nan"),
    ({"temperature": 10**400}, "b.toml: temperature must be a number from 0 to 2, not 1000"),
    ({"seed": 1.5}, "b.toml: seed must be a whole number (or left out), not 1.5"),
    ({"budget": {"max_cost": 10**400}}, "b.toml: budget.max_cost must be a number of US dollars, more than 0, not 10"),
    ({"personas": [{"name": 5, "discipline": "d", "voice": "v"}]}, "b.toml: personas[0]: persona name 5 must be"),
    ({"personas": [{"name": "physicist", "discipline": "d", "voice": "v"}]},
     "b.toml: personas[0].name 'physicist' is taken by a built-in persona ('Physicist')"),
    ({"personas": [{"name": "P", "discipline": "d", "voice": "v", "system_prompt": 3}]},
     "b.toml: personas[0]: persona 'P': system_prompt must be text (a string), not 3"),
    ({"personas": [{"name": "P", "discipline": "d", "voice": "v", "sytem_prompt": "x"}]},
     "b.toml: personas[0] has unknown key(s) sytem_prompt"),
    ({"roster": [[], "Physicist", "Financier"]}, "b.toml: roster[0] names unknown persona []"),
    ({"topic": "a\x00b"}, "b.toml: topic holds the control character '\\x00'"),
    ({"name": "   "}, "b.toml: name must be a book name of 1-100 letters"),
    ({"agent_models": {"Physicist": 5}}, "b.toml: agent_models.Physicist must be the name of an endpoint"),
    ({"max_tokens": 16.0}, "b.toml: max_tokens must be a whole number of tokens between 16 and 32768, not 16.0"),
])  # fmt: skip
def test_found_by_fuzzing(data: dict[str, Any], message: str) -> None:
    assert message in config_error(data)


def test_a_custom_system_prompt_and_a_redefined_embedded_endpoint_are_stored() -> None:
    config = parse_book({"personas": [{"name": "Poet", "discipline": "Poetry", "voice": "Images.",
                                       "system_prompt": "You are a poet."}],
                         "roster": ["Poet", "Physicist", "Financier"],
                         "endpoints": {"embedded": {"context_window": 4096}}})  # fmt: skip
    again = parse_book(json.loads(json.dumps(config.to_json())))
    assert again.roster[0].system_prompt == "You are a poet."
    assert again.endpoints["embedded"].context_window == 4096
    assert "embedded" not in parse_book({}).to_json()["endpoints"]  # the default one is not stored


@FUZZ
@given(st.sampled_from(["discipline", "voice"]), HARD_CONTROL.filter(lambda c: not c.isspace())
       | st.characters(categories=("Cs",)), st.integers(0, 12))  # fmt: skip
def test_a_bred_answer_with_a_control_character_is_rejected_not_raised(field: str, bad: str, at: int) -> None:
    from spacetime.rules import breeding

    parents = tuple(p for p in builtin_personas() if p.name in ("Physicist", "Cyberneticist"))
    answer = {"name": "Systems Physicist", "discipline": "Physical Cybernetics",
              "voice": "Loops of matter, told plainly."}  # fmt: skip
    answer[field] = answer[field][:at] + bad + answer[field][at:]  # what parse_answer's whitespace collapse leaves
    why = breeding.validate(answer, breeding.Plan(breeding.PlanKind.CROSSOVER, parents), set(BUILTIN), set())
    assert why == "a control character"  # the Reaper tries again; make_persona never sees it
