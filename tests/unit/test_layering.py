"""The layering of ``src/spacetime``, read from the import graph (every import, function-local ones included):
the tournament's rules stay pure, AutoGen and llama.cpp stay behind their one adapter each, nothing imports the CLI.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import spacetime

SRC = Path(spacetime.__file__).resolve().parent

PURE = ("spacetime.rules", "spacetime.domain", "spacetime.errors", "spacetime.adapters.llm.cpu")
"""The rules: pure functions over typed values. Randomness and time are passed in."""

IMPURE = ("asyncio", "threading", "subprocess", "socket", "multiprocessing", "time", "datetime", "psycopg",
          "psycopg_pool", "pgvector", "openai", "httpx", "autogen_core", "autogen_agentchat", "autogen_ext",
          "llama_cpp", "streamlit", "spacetime.engine", "spacetime.adapters", "spacetime.cli",
          "spacetime.deck")  # fmt: skip
"""What a pure module may not import (``spacetime.adapters.llm.cpu`` is pure although its package is not, see
``_allowed``)."""

ONLY_IN = {
    "autogen_core": {"spacetime.adapters.llm.autogen"},
    "autogen_agentchat": {"spacetime.adapters.llm.autogen"},
    "autogen_ext": set(),
    "llama_cpp": {"spacetime.adapters.llm.embedded", "spacetime.adapters.llm.host_main"},
}
"""Third-party packages and the one adapter module allowed to import each."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, at any depth of the file (relative imports resolved)."""
    package = _module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def _graph() -> dict[str, set[str]]:
    return {_module_name(path): set(_imports(path)) for path in sorted(SRC.rglob("*.py"))}


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _allowed(importer: str, imported: str) -> bool:
    return any(_under(imported, pure) for pure in PURE) and not _under(imported, importer)


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert "spacetime.rules.ballot" in graph and "spacetime.adapters.llm.host" in graph
    assert "json_repair" in graph["spacetime.rules.ballot"]
    assert "spacetime.adapters.llm.host" in graph["spacetime.adapters.llm.embedded"]  # a module-level import
    assert "llama_cpp" in graph["spacetime.adapters.llm.host_main"]  # a function-local import


@pytest.mark.parametrize("module", sorted(m for m in _graph() if any(_under(m, p) for p in PURE)))
def test_rules_are_pure(module: str) -> None:
    bad = sorted(
        name for name in _graph()[module]
        if any(_under(name, impure) for impure in IMPURE) and not _allowed(module, name)
    )  # fmt: skip
    assert bad == [], f"{module} imports {bad}"


def test_autogen_and_llama_cpp_stay_behind_their_adapters() -> None:
    graph = _graph()
    for package, allowed in ONLY_IN.items():
        users = {module for module, names in graph.items() if any(_under(n, package) for n in names)}
        assert users <= allowed, f"{package} imported by {sorted(users - allowed)}"


def test_nothing_imports_the_cli() -> None:
    users = {m for m, names in _graph().items() if any(_under(n, "spacetime.cli") for n in names)}
    assert {m for m in users if not _under(m, "spacetime.cli")} <= {"spacetime.__main__"}, sorted(users)


STORAGE = ("spacetime.adapters.pg", "psycopg", "psycopg_pool", "pgvector")
"""What an epoch (``spacetime.engine.epoch``) may not reach: the store and its drivers."""


def _reach(graph: dict[str, set[str]], module: str) -> set[str]:
    """``module`` and every ``spacetime`` module it imports, directly or through others."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(name for name in graph.get(current, ()) if name in graph)
    return seen


def test_an_epoch_is_played_without_storage() -> None:
    graph = _graph()
    direct = sorted(n for n in graph["spacetime.engine.epoch"] if any(_under(n, p) for p in ("spacetime.adapters",
                                                                                              "psycopg")))  # fmt: skip
    assert direct == [], f"spacetime.engine.epoch imports {direct}"
    reached = _reach(graph, "spacetime.engine.epoch")
    storage = sorted(
        f"{module} → {name}" for module in reached for name in graph[module]
        if any(_under(name, s) for s in STORAGE)
    )  # fmt: skip
    assert storage == [], storage
    # through the burst and judgment it reaches the agents' model adapter (a Seat's runner), never the store
    adapters = {m for m in reached if _under(m, "spacetime.adapters")}
    assert all(_under(m, "spacetime.adapters.llm") for m in adapters), sorted(adapters)


def test_the_engine_never_imports_the_database_drivers() -> None:
    """The engine reaches PostgreSQL only through ``spacetime.adapters.pg`` (the Store and its repositories)."""
    drivers = ("psycopg", "psycopg_pool", "pgvector")
    bad = sorted(
        f"{module} → {name}" for module, names in _graph().items() if _under(module, "spacetime.engine")
        for name in names if any(_under(name, d) for d in drivers)
    )  # fmt: skip
    assert bad == [], bad


LAYERS = (
    ("core", ("spacetime.domain", "spacetime.errors", "spacetime.config", "spacetime.book", "spacetime.personas",
              "spacetime.redaction",
              "spacetime.prompts", "spacetime.ports")),
    ("rules", ("spacetime.rules",)),
    ("adapters", ("spacetime.adapters",)),
    ("engine", ("spacetime.engine",)),
    ("apps", ("spacetime.deck",)),
    ("cli", ("spacetime.cli", "spacetime.__main__")),
)  # fmt: skip
"""The packages of ``src/spacetime`` from the bottom up: a module may import its own layer and the layers below it,
never one above (``spacetime`` itself only holds the version). ``adapters.llm.cpu`` is pure and may be imported by
the rules' tests, but no rule needs it."""


def _layer(module: str) -> int | None:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(_under(module, p) for p in prefixes):
            return rank
    return None


def test_every_module_has_a_layer() -> None:
    assert [m for m in _graph() if m != "spacetime" and _layer(m) is None] == []


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = sorted(
        f"{importer} ({LAYERS[_layer(importer) or 0][0]}) → {name} ({LAYERS[_layer(name) or 0][0]})"
        for importer, names in _graph().items() if _layer(importer) is not None
        for name in names if name.startswith("spacetime.") and (_layer(name) or 0) > (_layer(importer) or 0)
    )  # fmt: skip
    assert upward == []


def test_the_layer_check_can_fail() -> None:
    assert (_layer("spacetime.engine.director") or 0) > (_layer("spacetime.adapters.pg.store") or 0)
    assert (_layer("spacetime.cli.run") or 0) > (_layer("spacetime.engine.play") or 0)
    assert _layer("spacetime.rules.scoring") == 1 and _layer("spacetime.ports") == 0


def test_adapters_do_not_import_each_other_across_backends() -> None:
    llm, pg = "spacetime.adapters.llm", "spacetime.adapters.pg"
    crossing = sorted(
        f"{importer} → {name}"
        for importer, names in _graph().items()
        for a, b in ((llm, pg), (pg, llm))
        if _under(importer, a) for name in names if _under(name, b)
    )  # fmt: skip
    assert crossing == []


DRIVERS_ONLY_UNDER = {
    "psycopg": "spacetime.adapters.pg", "psycopg_pool": "spacetime.adapters.pg", "pgvector": "spacetime.adapters.pg",
    "openai": "spacetime.adapters.llm", "llama_cpp": "spacetime.adapters.llm",
}  # fmt: skip
"""A driver and the one adapter package allowed to import it: one way to reach the database, one to reach a model."""


def test_drivers_stay_in_their_adapter_package() -> None:
    outside = sorted(
        f"{importer} → {name}"
        for importer, names in _graph().items()
        for name in names
        for driver, home in DRIVERS_ONLY_UNDER.items()
        if _under(name, driver) and not _under(importer, home)
    )  # fmt: skip
    assert outside == []

