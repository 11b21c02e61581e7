"""``spacetime bench`` finds the checkout's ``bench`` package by location, without touching ``sys.path`` (the suite
itself runs in tests/bench/test_bench_smoke.py)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import spacetime
from spacetime.cli.bench import _bench_suite
from tests.cli.conftest import Invoke, one_error_line

CHECKOUT = Path(spacetime.__file__).resolve().parents[2]


@pytest.fixture
def no_bench_loaded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ``bench`` module before the test; whatever it loads is dropped after it."""
    for name in [m for m in sys.modules if m == "bench" or m.startswith("bench.")]:
        monkeypatch.delitem(sys.modules, name)
    yield
    for name in [m for m in sys.modules if m == "bench" or m.startswith("bench.")]:
        del sys.modules[name]


def test_the_suite_is_imported_from_the_checkout_by_location(no_bench_loaded: None) -> None:
    path = list(sys.path)
    suite = _bench_suite()
    assert suite.__name__ == "bench.suite" and callable(suite.main)
    assert Path(suite.__file__ or "").resolve() == CHECKOUT / "bench" / "suite.py"
    assert sys.modules["bench"].SPACETIME_BENCH is True
    assert sys.path == path
    assert _bench_suite() is suite  # loaded once


def test_another_module_named_bench_is_one_line(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, no_bench_loaded: None
) -> None:
    monkeypatch.setitem(sys.modules, "bench", types.ModuleType("bench"))
    one_error_line(invoke("bench", "--quick"), 2, "another module named 'bench' is already imported")


def test_without_a_checkout_is_one_line(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_bench_loaded: None
) -> None:
    monkeypatch.setattr(spacetime, "__file__", str(tmp_path / "site-packages" / "spacetime" / "__init__.py"))
    monkeypatch.chdir(tmp_path)
    one_error_line(invoke("bench", "--quick"), 2, "spacetime bench needs a checkout of the Space Time repository")
