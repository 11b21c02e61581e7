"""Parsing, in-process: help on every command (listing its options), ``--version``, usage errors (exit 2, no
traceback) and global options anywhere on the line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.testing import Result

from spacetime import __version__
from spacetime.cli import app
from spacetime.cli.app import hoist_global_options
from tests.cli.conftest import Invoke

COMMANDS = ["status", "run", "submit", "worker", "pause", "resume", "cancel", "export", "deck", "swap", "personas",
            "lineage", "bench", "db"]
"""``spacetime --help`` lists the commands in this order."""


Command = TyperGroup | TyperCommand


def _commands(group: TyperGroup, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Command]]:
    yield path, group
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


ROOT = typer.main.get_command(app)
assert isinstance(ROOT, TyperGroup)
EVERY = dict(_commands(ROOT))


def test_every_noun_is_there() -> None:
    assert sorted(" ".join(path) for path in EVERY) == sorted(
        ["", "status", "run", "submit", "worker", "pause", "resume", "cancel", "export", "deck", "swap", "personas",
         "lineage", "bench", "db", "db migrate", "db url", "db stop", "db grant-deck-role"]
    )  # fmt: skip


@pytest.mark.parametrize("path", sorted(EVERY), ids=lambda p: " ".join(p) or "spacetime")
def test_help_lists_every_option(invoke: Invoke, path: tuple[str, ...]) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert result.stdout.lstrip().startswith(f"Usage: spacetime {' '.join(path)}".rstrip())
    for param in EVERY[path].params:
        if isinstance(param, TyperOption):
            for opt in (*param.opts, *param.secondary_opts):
                assert opt in result.stdout, (path, opt)
    assert "-h" in result.stdout and "--help" in result.stdout


def test_root_help_lists_the_commands_in_order(invoke: Invoke) -> None:
    out = invoke("-h").stdout
    positions = [out.index(f"│ {name} ") for name in COMMANDS]
    assert positions == sorted(positions), out


def test_version(invoke: Invoke) -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"spacetime {__version__}\n"


def test_no_arguments_shows_help(invoke: Invoke) -> None:
    result = invoke()
    assert result.exit_code == 2 and "Usage: spacetime" in result.stdout and "Traceback" not in result.output


def _usage_error(result: Result, needle: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if needle in line]
    assert len(lines) == 1, result.stderr  # the one line that says what is wrong (in click's usage box)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["status", "--no-such-flag"], "No such option: --no-such-flag"),
        (["--no-such-flag"], "No such option: --no-such-flag"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
        (["db", "nosuch"], "No such command 'nosuch'"),
        (["run", "--epochs", "abc"], "Invalid value for '--epochs'"),
        (["run", "--epochs", "0"], "Invalid value for '--epochs'"),
        (["run", "--books", "1001"], "Invalid value for '--books'"),
        (["run", "--max-tokens", "8"], "Invalid value for '--max-tokens'"),
        (["deck", "--port", "0"], "Invalid value for '--port'"),
        (["deck", "--port", "http"], "Invalid value for '--port'"),
        (["bench", "--repeats", "0"], "Invalid value for '--repeats'"),
        (["swap", "--book", "b", "--in", "Historian"], "Missing option '--out'"),
        (["lineage"], "Missing option '--book'"),
        (["personas", "--book"], "Option '--book' requires an argument"),
    ],
)
def test_usage_errors_exit_2_without_a_traceback(invoke: Invoke, args: list[str], needle: str) -> None:
    _usage_error(invoke(*args), needle)


def test_help_needs_no_database(invoke: Invoke) -> None:
    result = invoke("lineage", "--help", "--database-url", "postgresql://nobody@127.0.0.1:1/x")
    assert result.exit_code == 0 and "--book" in result.stdout


def test_global_options_anywhere_on_the_line(invoke: Invoke) -> None:
    for args in (["status", "--database-url", "mysql://x/y"], ["status", "--database-url=mysql://x/y"],
                 ["--database-url", "mysql://x/y", "status"]):  # fmt: skip
        result = invoke(*args)
        assert result.exit_code == 2, args
        assert result.stderr.startswith("spacetime: error: malformed database URL 'mysql://x/y'"), result.stderr


def test_hoisting_moves_only_global_options_and_stops_at_double_dash() -> None:
    assert hoist_global_options(["status", "--database-url", "U", "--json"]) == ["--database-url", "U", "status",
                                                                                  "--json"]  # fmt: skip
    assert hoist_global_options(["db", "stop", "--data-dir=D"]) == ["--data-dir=D", "db", "stop"]
    assert hoist_global_options(["run", "--", "--data-dir", "D"]) == ["run", "--", "--data-dir", "D"]
    assert hoist_global_options(["status", "--data-dir"]) == ["status", "--data-dir"]  # no value: click says so
    assert hoist_global_options([]) == []
