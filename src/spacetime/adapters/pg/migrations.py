"""Versioned schema migrations: an ordered list of SQL files, each applied once, recorded in ``schema_migrations``.

Safe to run from several processes at once: the whole run holds a transaction-level advisory lock, so a second
process waits, then finds every version applied and does nothing.

Every run ends by granting the deck's read-only role (``roles.DECK_ROLE``, when it exists) SELECT on our tables, in
the same locked transaction: a table a later migration adds is readable by the deck as soon as it exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import errors as pg_errors

from spacetime.adapters.pg import roles
from spacetime.errors import StoreConfigError

_LOCK_KEY = 0x5_9ACE_7143  # arbitrary, constant: "spacetime migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_CREATE_TABLE = re.compile(r"\bCREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)\b",
                           re.IGNORECASE)


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


def our_tables() -> list[str]:
    """The tables our migrations create (what the deck's role may read; ``schema_migrations`` is not one)."""
    names = {m.group(1).lower() for migration in migrations() for m in _CREATE_TABLE.finditer(migration.sql)}
    return sorted(names)


def _lock(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))


def grant_deck_role(conn: psycopg.Connection, *, password: str | None = None) -> roles.Granted:
    """Create or update the deck's read-only role and its grants on our tables (one transaction, under the
    migrations' lock). Needs a user with CREATEROLE that owns the tables (or a superuser)."""
    with conn.transaction():
        _lock(conn)
        return roles.ensure_deck_role(conn, our_tables(), password=password)


def migrate(conn: psycopg.Connection, *, deck_role: bool = False) -> list[int]:
    """Apply every missing migration in one transaction; return the versions applied now (empty if none).

    Then the deck's role, if it exists, may read every table of ours; ``deck_role`` (the embedded server, where we
    are superuser) also creates or updates the role itself."""
    applied_now: list[int] = []
    with conn.transaction():
        _lock(conn)
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
        if deck_role:
            roles.ensure_deck_role(conn, our_tables())
        else:
            roles.grant_reads(conn, our_tables())
    return applied_now
