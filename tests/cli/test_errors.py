"""The error edge, in-process: a ``SpacetimeError`` out of any command is one ``spacetime: error: …`` line on
stderr and the error's exit code (2 usage/configuration, 1 runtime); the console script goes through the same edge.
"""

from __future__ import annotations

import logging
import sys

import pytest

from spacetime.adapters.pg import connect
from spacetime.cli import main
from spacetime.errors import (
    BookBusy,
    CapacityError,
    ConfigError,
    ModelError,
    ModelHostCrashed,
    RunError,
    SpacetimeError,
    StoreConfigError,
    StoreError,
)
from tests.cli.conftest import Invoke, one_error_line

URL = "postgresql://nobody@127.0.0.1:1/x"


@pytest.mark.parametrize(
    ("error", "code"),
    [(ConfigError, 2), (StoreConfigError, 2), (CapacityError, 2), (BookBusy, 2),
     (RunError, 1), (StoreError, 1), (ModelError, 1), (ModelHostCrashed, 1)],
)  # fmt: skip
@pytest.mark.parametrize("command", [["status"], ["export", "--book", "b"], ["personas", "--json"],
                                     ["lineage", "--book", "b"], ["swap", "--book", "b", "--out", "X", "--in", "Y"],
                                     ["deck"]])  # fmt: skip
def test_an_error_from_a_command_is_one_line_and_its_exit_code(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch, error: type[SpacetimeError], code: int, command: list[str]
) -> None:
    def fail(settings: object) -> str:
        raise error("it went wrong here: do this instead")

    monkeypatch.setattr(connect, "prepare", fail)
    result = invoke(*command, "--database-url", URL)
    assert one_error_line(result, code) == "spacetime: error: it went wrong here: do this instead"
    assert result.stdout == ""


def test_a_config_error_before_any_work(invoke: Invoke) -> None:
    result = invoke("bench", "--only", "speedup", "--skip", "nope")
    one_error_line(result, 2, "unknown bench section 'nope'", "speedup, scaling, layers, books, commit, embedded")


def test_bad_settings_are_one_line(invoke: Invoke) -> None:
    one_error_line(invoke("status", "--database-url", "mysql://root@localhost/db"), 2, "malformed database URL")
    line = one_error_line(invoke("db", "url", env={"SPACETIME_DATABASE_URL": "postgresql://u:s3cret@h:x/db"}), 2)
    assert "s3cret" not in line and "the port is not a number" in line


def test_db_stop_refuses_an_external_database(invoke: Invoke) -> None:
    one_error_line(invoke("db", "stop", "--database-url", URL), 2, "only stops the embedded server")


def test_an_unreachable_database_is_one_line(invoke: Invoke) -> None:
    one_error_line(invoke("status", "--database-url", URL), 2, "cannot connect to the database", "127.0.0.1:1")


def test_a_missing_book_is_one_line_listing_the_books(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    from spacetime.adapters.pg import store as store_module

    class NoBooks:
        async def get_book(self, name: str) -> None:
            return None

        async def list_books(self) -> list[object]:
            return []

    class Opened:
        async def __aenter__(self) -> NoBooks:
            return NoBooks()

        async def __aexit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(connect, "prepare", lambda settings: URL)
    monkeypatch.setattr(store_module, "open_store", lambda url, max_size: Opened())
    one_error_line(invoke("export", "--book", "nope"), 2, "no book named 'nope' (books: none yet)")


def test_the_console_script_goes_through_the_same_edge(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["spacetime", "bench", "--only", "nope"])
    logger = logging.getLogger("spacetime")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        "spacetime: error: unknown bench section 'nope' (sections: speedup, scaling, layers, books, commit, embedded)\n"
    )
