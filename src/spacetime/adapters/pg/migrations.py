"""Versioned schema migrations: an ordered list of SQL files, each applied once, recorded in ``schema_migrations``.

Safe to run from several processes at once: the whole run holds a transaction-level advisory lock, so a second
process waits, then finds every version applied and does nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import errors as pg_errors

from spacetime.errors import StoreConfigError

_LOCK_KEY = 0x5_9ACE_7143  # arbitrary, constant: "spacetime migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """All migrations shipped with the package, in version order."""
    found: list[Migration] = []
    for entry in resources.files("spacetime.adapters.pg").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions) or versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migration versions must be 1..n without gaps, found {versions}")
    return found


def migrate(conn: psycopg.Connection) -> list[int]:
    """Apply every missing migration in one transaction; return the versions applied now (empty if none)."""
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for migration in migrations():
            if migration.version in done:
                continue
            try:
                conn.execute(migration.sql.encode())
            except (pg_errors.FeatureNotSupported, pg_errors.UndefinedFile) as exc:
                if "vector" in str(exc):
                    raise StoreConfigError(
                        "the database has no pgvector extension: install pgvector on that server "
                        "(https://github.com/pgvector/pgvector), or unset SPACETIME_DATABASE_URL to use the "
                        "embedded PostgreSQL"
                    ) from None
                raise
            except pg_errors.InsufficientPrivilege as exc:
                raise StoreConfigError(
                    f"not allowed to create the schema ({str(exc).splitlines()[0]}): have an administrator run "
                    "`CREATE EXTENSION vector;` in that database, or connect as its owner"
                ) from None
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (migration.version, migration.name)
            )
            applied_now.append(migration.version)
    return applied_now
