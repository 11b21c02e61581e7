"""``spacetime bench``: the repository's benchmark suite (from a checkout: ``bench/`` is not installed)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

from spacetime.errors import ConfigError

BENCH_SECTIONS = ("speedup", "scaling", "layers", "books", "commit", "embedded")


def _load_package(init: Path) -> ModuleType:
    """Import the ``bench`` package from its ``__init__.py`` by location (no ``sys.path`` change): its submodules
    are found through the package's own ``__path__``."""
    spec = importlib.util.spec_from_file_location("bench", init, submodule_search_locations=[str(init.parent)])
    if spec is None or spec.loader is None:  # pragma: no cover - a file path always has a loader
        raise ConfigError(f"cannot import the bench package from {init.parent}")
    package = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = package
    try:
        spec.loader.exec_module(package)
    except BaseException:
        del sys.modules["bench"]
        raise
    return package


def _bench_suite() -> ModuleType:
    """The repository's ``bench.suite`` (benchmarks are not part of the installed product: the wheel has no
    ``bench/``). Looked for next to the installed ``spacetime`` sources (an editable install of a checkout), then in
    the current directory and its parents."""
    import spacetime

    here = Path(spacetime.__file__).resolve()
    roots = [here.parents[2], Path.cwd(), *Path.cwd().parents]
    for root in roots:
        init = root / "bench" / "__init__.py"
        try:
            found = init.is_file() and "SPACETIME_BENCH" in init.read_text(encoding="utf-8")
        except OSError:
            found = False
        if not found:
            continue
        loaded = sys.modules.get("bench")
        if loaded is not None and not getattr(loaded, "SPACETIME_BENCH", False):
            raise ConfigError("another module named 'bench' is already imported; run `python -m bench` instead")
        if loaded is None:
            _load_package(init)
        return importlib.import_module("bench.suite")
    raise ConfigError(
        "spacetime bench needs a checkout of the Space Time repository (its bench/ package is not installed with "
        "spacetime): run it from the checkout, or `python -m bench` there"
    )


def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="CI smoke: small N, 2 repeats, no embedded model (~30 s).")
    ] = False,
    repeats: Annotated[int | None, typer.Option("--repeats", min=1, help="Repeats per figure (default 5).")] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help=f"Only these sections: {', '.join(BENCH_SECTIONS)}.")
    ] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="Skip these sections.")] = None,
    max_books: Annotated[int, typer.Option("--max-books", min=1, help="Most books played at once.")] = 100,
    slots: Annotated[int, typer.Option("--slots", min=1, help="Server slots in the many-books scenario.")] = 32,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write every figure to this JSON file.")] = None,
) -> None:
    """Benchmarks (medians over repeats) against a latency-modelled OpenAI-compatible server and a throwaway
    embedded PostgreSQL; prints Markdown tables. Same as `python -m bench`; see docs/benchmarks.md."""
    for section in [*(only or []), *(skip or [])]:
        if section not in BENCH_SECTIONS:
            raise ConfigError(f"unknown bench section {section!r} (sections: {', '.join(BENCH_SECTIONS)})")
    suite = _bench_suite()
    argv = ["--max-books", str(max_books), "--slots", str(slots)]
    argv += ["--quick"] if quick else []
    argv += ["--repeats", str(repeats)] if repeats else []
    argv += [arg for section in only or [] for arg in ("--only", section)]
    argv += [arg for section in skip or [] for arg in ("--skip", section)]
    argv += ["--json", str(json_path)] if json_path else []
    code: int = suite.main(argv)
    raise typer.Exit(code)
