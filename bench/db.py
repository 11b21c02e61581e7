"""A throwaway database for a benchmark: the embedded PostgreSQL on a temporary data dir (or a given server), one
fresh migrated database per scenario."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from spacetime.adapters.pg import embedded
from spacetime.adapters.pg.connect import prepare
from spacetime.config import Settings


def _with_db(url: str, dbname: str) -> str:
    head, _, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{dbname}" + (f"?{query}" if query else "")


class BenchDatabase:
    """``server_url`` is an admin URL; ``fresh()`` yields the URL of a new migrated database, dropped after."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url

    @contextlib.contextmanager
    def fresh(self) -> Iterator[str]:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield prepare(Settings(data_dir=Path("/nonexistent"), database_url=_with_db(self.server_url, name)))
        finally:
            with psycopg.connect(self.server_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def bench_database(server_url: str | None = None) -> Iterator[BenchDatabase]:
    """The given PostgreSQL server, or an embedded one on a temporary data dir (stopped and removed after)."""
    if server_url is not None:
        yield BenchDatabase(server_url)
        return
    tmp = Path(tempfile.mkdtemp(prefix="spacetime-bench-"))
    data_dir = tmp / "data"
    try:
        url = embedded.start(data_dir)
        yield BenchDatabase(url)
    finally:
        with contextlib.suppress(Exception):
            embedded.stop(data_dir)
        shutil.rmtree(tmp, ignore_errors=True)
