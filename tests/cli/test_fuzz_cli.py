"""Bad input, fuzzed at the CLI (issue #14 item 6), in-process: option values, book names, book files and paths,
``SPACETIME_DATABASE_URL`` and ``SPACETIME_DATA_DIR``.

Typer's own argument errors keep click's usage format (exit 2, the one line saying what is wrong inside the usage
box, nothing on stdout); everything Space Time refuses is exactly one ``spacetime: error: …`` line and exit 2. No
input ever shows a traceback. A bad book file is refused before the database is prepared (nothing is written).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from typer.testing import Result

from spacetime.adapters.pg import connect
from spacetime.book import load_book
from spacetime.engine import play
from spacetime.errors import ConfigError, StoreError
from tests.cli.conftest import Invoke, one_error_line
from tests.engine.memory_repo import MemoryRepository
from tests.fuzzing import CONTROL, FEW, HARD_CONTROL, dump_toml, is_one_line, junk

TOUCHED = "stub: the database was prepared"


@pytest.fixture
def database_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """``prepare`` (migrating the database) records its call and fails with ``TOUCHED`` (exit 1)."""
    calls: list[str] = []

    def refuse(settings: object) -> str:
        calls.append("prepare")
        raise StoreError(TOUCHED)

    monkeypatch.setattr(play, "prepare", refuse)
    monkeypatch.setattr(connect, "prepare", refuse)
    yield calls


@pytest.fixture
def memory_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """``spacetime run`` plays against an in-memory repository (no PostgreSQL)."""

    @asynccontextmanager
    async def opened(url: str, **kwargs: Any) -> AsyncIterator[MemoryRepository]:
        yield MemoryRepository()

    monkeypatch.setattr(play, "prepare", lambda settings: "memory://")
    monkeypatch.setattr(play, "open_store", opened)


@pytest.fixture
def played(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """``play_book`` / ``play_books`` replaced by stubs recording their arguments (a valid command plays nothing)."""
    calls: list[dict[str, Any]] = []

    async def play_book(settings: object, book_file: Path | None, **kwargs: Any) -> tuple[str, list[object]]:
        calls.append(kwargs)
        return "stub", []

    async def play_books(settings: object, plans: list[object], **kwargs: Any) -> list[object]:
        calls.append(kwargs)
        return []

    monkeypatch.setattr(play, "play_book", play_book)
    monkeypatch.setattr(play, "play_books", play_books)
    return calls


def usage_error(result: Result, option: str) -> None:
    """Click's usage error for ``option``: exit 2, nothing on stdout, one line naming it, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if f"Invalid value for '{option}'" in line]
    assert len(lines) == 1, result.stderr


# --------------------------------------------------------------------------- (d) option values
RANGES: dict[str, tuple[int | None, int | None]] = {
    "--epochs": (1, None),
    "--max-tokens": (16, 32768),
    "--seed": (None, None),
    "--books": (1, 1000),
}
int_like = st.one_of(
    st.integers(-(10**25), 10**25).map(str),
    st.integers(-5, 40_000).map(str),
    st.sampled_from(["", " ", "1.0", "1e3", "0x10", "+5", "-0", " 7 ", "1_000", "٣", "NaN", "inf", "--", "3 4"]),
    st.text(max_size=12),
    st.text(max_size=4).map(lambda s: s + "\x00"),
)


def _accepts(value: str, least: int | None, most: int | None) -> int | None | bool:
    """What the option parser must make of ``value`` for an integer option in ``least``..``most``: the number for a
    plain decimal in range, ``None`` (refused) for anything else that is plainly not one; ``True`` where parsers
    differ (``" 7 "``, ``"1_000"``, ``"1.0"``, ``"٣"``: click takes what ``int()`` takes, Typer's pydantic parsing
    less) — then either answer will do, as long as it is clean."""
    if re.fullmatch(r"[+-]?[0-9]+", value):
        number = int(value)
        if (least is not None and number < least) or (most is not None and number > most):
            return None
        return number
    try:
        float(value.replace("_", ""))
    except ValueError:
        try:
            int(value)
        except ValueError:
            return None
    return True


@FEW
@given(st.sampled_from(sorted(RANGES)), int_like)
def test_run_number_options_are_checked_by_click(invoke: Invoke, played: list[dict[str, Any]], option: str,
                                                 value: str) -> None:  # fmt: skip
    played.clear()
    result = invoke("run", f"{option}={value}")
    expected = _accepts(value, *RANGES[option])
    if expected is True and result.exit_code == 2:
        expected = None  # a parser that refuses what int() would take
    if expected is None:
        usage_error(result, option)
        assert played == []
    else:
        assert result.exit_code == 0, (result.output, result.exception)
        key = {"--epochs": "epochs", "--max-tokens": "max_tokens", "--seed": "seed", "--books": None}[option]
        assert len(played) == 1
        if key is not None and expected is not True:
            assert played[0][key] == expected


@FEW
@given(st.integers().filter(lambda p: not 1 <= p <= 65535).map(str) | st.text(max_size=8).filter(
    lambda s: _accepts(s, 1, 65535) is None))  # fmt: skip
def test_deck_port_out_of_range_or_not_a_number_is_a_usage_error(invoke: Invoke, port: str) -> None:
    usage_error(invoke("deck", f"--port={port}"), "--port")


bad_book_names = st.one_of(  # (an empty --book means the default name)
    st.just("x" * 101),
    st.text(st.characters(categories=("L", "N")), min_size=1, max_size=5).map(lambda s: f" {s}"),
    st.text(st.characters(categories=("L", "N")), min_size=1, max_size=5).map(lambda s: f"{s} "),
    st.builds(lambda a, c, b: a + c + b, st.text(st.characters(categories=("L",)), max_size=5),
              st.characters(exclude_categories=("L", "N")).filter(lambda c: c not in "-_. "),
              st.text(max_size=5)),  # fmt: skip
)


@FEW
@given(bad_book_names)
def test_run_with_a_bad_book_name_is_one_line(invoke: Invoke, memory_store: None, name: str) -> None:
    line = one_error_line(invoke("run", f"--book={name}"), 2, "invalid book name")
    assert is_one_line(line)


# --------------------------------------------------------------------------- (d) book files and their paths
BAD_BOOKS = st.one_of(
    st.fixed_dictionaries({"max_tokens": junk().filter(lambda v: not isinstance(v, int) or isinstance(v, bool))}),
    st.fixed_dictionaries({"topic": st.builds(lambda c: f"a{c}b", HARD_CONTROL)}),
    st.fixed_dictionaries({"endpoints": st.fixed_dictionaries({"vllm": st.fixed_dictionaries({
        "kind": st.just("openai"), "model": st.just("m"),
        "concurrency": junk().filter(lambda v: not isinstance(v, int) or isinstance(v, bool))})})}),
    st.fixed_dictionaries({"personas": st.lists(st.dictionaries(st.sampled_from(["name", "discipline", "voice"]),
                                                                junk()), min_size=1, max_size=2)}),
    st.dictionaries(st.text(max_size=8), junk(), min_size=1, max_size=3),
)  # fmt: skip


@FEW
@given(BAD_BOOKS.map(dump_toml).map(str.encode) | st.binary(max_size=200))
def test_run_with_a_bad_book_file_is_one_line_before_the_database(
    invoke: Invoke, database_calls: list[str], tmp_path_factory: pytest.TempPathFactory, raw: bytes
) -> None:
    database_calls.clear()
    path = tmp_path_factory.mktemp("run") / "bad.toml"
    path.write_bytes(raw)
    try:
        load_book(path)
    except ConfigError as exc:
        expected = f"spacetime: error: {exc}"
    else:
        assume(False)  # a valid book (an empty file, say) would be played
    result = invoke("run", str(path))
    assert one_error_line(result, 2) == expected
    assert database_calls == [], "the database was prepared before the book file was read"


@FEW
@given(st.text(st.characters(codec="utf-8", exclude_characters="/\x00") | CONTROL.filter(lambda c: c != "\x00"),
               min_size=1, max_size=30))  # fmt: skip
def test_run_with_a_missing_book_file_of_any_name_is_one_line(
    invoke: Invoke, database_calls: list[str], tmp_path_factory: pytest.TempPathFactory, name: str
) -> None:
    assume(name not in (".", ".."))
    database_calls.clear()
    one_error_line(invoke("run", str(tmp_path_factory.mktemp("gone") / name)), 2, "does not exist")
    assert database_calls == []


def test_run_with_a_directory_an_unreadable_or_a_nul_path_is_one_error(
    invoke: Invoke, database_calls: list[str], tmp_path: Path
) -> None:
    one_error_line(invoke("run", str(tmp_path)), 2, "is a directory")
    usage_error(invoke("run", "bad\x00.toml"), "[BOOK.toml]...")  # click's Path refuses it (argv never holds one)
    one_error_line(invoke("run", str(tmp_path / "a\nb.toml")), 2, "does not exist")
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.toml"
        locked.write_text('topic = "x"\n')
        locked.chmod(0)
        one_error_line(invoke("run", str(locked)), 2, "cannot read book file", "Permission denied")
    assert database_calls == []


# --------------------------------------------------------------------------- (e) the environment
PASSWORD = "s3cretpw"
hosts = st.sampled_from(["localhost", "127.0.0.1", "db.example.org", "[::1]", "hôst.example", "h"])
bad_urls = st.one_of(
    # a scheme that is not PostgreSQL's
    st.builds(lambda scheme, host: f"{scheme}://u:{PASSWORD}@{host}/db",
              st.sampled_from(["mysql", "http", "postgresq", "pg", "postgresql+psycopg", "POSTGRES", ""]), hosts),
    st.builds(lambda host: f"u:{PASSWORD}@{host}/db", hosts),
    # a port that is not 1-65535
    st.builds(lambda host, port: f"postgresql://u:{PASSWORD}@{host}:{port}/db", hosts,
              st.sampled_from(["x", "0", "65536", "99999", "-1", "1.5", "８０", "5432x"])
              | st.integers(min_value=65536).map(str)),
    # a control character or line break anywhere
    st.builds(lambda host, c, at: (lambda u: u[:at] + c + u[at:])(f"postgresql://u:{PASSWORD}@{host}:5432/db"),
              hosts, HARD_CONTROL.filter(lambda c: c != "\x00"), st.integers(1, 30)),
    # junk
    st.text(max_size=30).filter(lambda s: not s.strip().lower().startswith(("postgresql://", "postgres://"))
                                and s.strip() and "\x00" not in s),
)  # fmt: skip


@FEW
@given(bad_urls)
def test_a_malformed_database_url_in_the_environment_is_one_line(invoke: Invoke, url: str) -> None:
    result = invoke("db", "url", env={"SPACETIME_DATABASE_URL": url})
    line = one_error_line(result, 2)
    assert "database URL" in line and PASSWORD not in line, line


@FEW
@given(bad_urls | st.builds(lambda c: f"postgresql://u@h/d{c}b", CONTROL))
def test_a_malformed_database_url_flag_is_one_line(invoke: Invoke, url: str) -> None:
    line = one_error_line(invoke("db", "url", f"--database-url={url}"), 2)
    assert "database URL" in line and PASSWORD not in line, line


@FEW
@given(st.builds(lambda user, host, port, db: f"postgresql://{user}@{host}{port}/{db}",
                 st.sampled_from(["u", "u:pw", "ü", "u%20x"]), hosts, st.sampled_from(["", ":1", ":5432", ":65535"]),
                 st.text(st.characters(codec="utf-8", exclude_characters="/?#",
                                       exclude_categories=("Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp", "Zs")),
                         min_size=1, max_size=10)))  # fmt: skip
def test_a_well_formed_database_url_is_printed_by_db_url(invoke: Invoke, url: str) -> None:
    assume(url.isprintable())
    result = invoke("db", "url", env={"SPACETIME_DATABASE_URL": url})
    assert result.exit_code == 0 and result.stdout == f"{url}\n", (result.output, result.exception)


def test_a_data_dir_that_is_a_file_under_a_file_or_holds_a_control_character_is_one_line(
    invoke: Invoke, tmp_path: Path
) -> None:
    file = tmp_path / "file"
    file.write_text("")
    one_error_line(invoke("db", "url", env={"SPACETIME_DATA_DIR": str(file)}), 2, "is not a directory")
    one_error_line(invoke("db", "url", env={"SPACETIME_DATA_DIR": str(file / "sub")}), 2, "under a file")
    usage_error(invoke("db", "url", f"--data-dir={tmp_path}/a\x00b"), "--data-dir")  # click's Path refuses it
    one_error_line(invoke("db", "url", env={"SPACETIME_DATA_DIR": f"{tmp_path}/a\nb"}), 2, "control character")
    one_error_line(invoke("db", "url", env={"SPACETIME_DATA_DIR": "/proc/spacetime-data"}), 2,
                   "data dir /proc/spacetime-data cannot be created")  # fmt: skip
    assert not (tmp_path / "a\nb").exists()


def test_an_unwritable_data_dir_is_one_line(invoke: Invoke, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root writes to any mode-0500 directory; nobody creates files in /proc/self
        locked = Path("/proc/self")
    one_error_line(invoke("db", "url", env={"SPACETIME_DATA_DIR": str(locked)}), 2, "is not writable")
