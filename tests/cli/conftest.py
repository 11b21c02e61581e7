"""The CLI in-process (Typer's CliRunner): every invocation goes through the root command's error edge."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from spacetime.cli import app

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(tmp_path: Path) -> Invoke:
    """``invoke(*args, env=None)``: run ``spacetime ARGS`` in this process (no SPACETIME_* from outside, a wide
    terminal so help tables keep each option on its line)."""

    def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
        full: dict[str, str | None] = {"SPACETIME_DATABASE_URL": None, "SPACETIME_DATA_DIR": str(tmp_path / "data"),
                                       "COLUMNS": "200", "TERMINAL_WIDTH": "200"}  # fmt: skip
        full.update(env or {})
        return CliRunner().invoke(app, list(args), env=full)

    return run


def one_error_line(result: Result, code: int, *needles: str) -> str:
    """``result`` failed with ``code`` and said so on one stderr line, ``spacetime: error: …``, without a
    traceback; returns the line."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spacetime: error: "), lines[0]
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
