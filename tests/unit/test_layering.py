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
          "llama_cpp", "streamlit", "spacetime.engine", "spacetime.adapters", "spacetime.cli", "spacetime.ui",
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
    assert users <= {"spacetime.__main__", "spacetime.cli"}, sorted(users)
