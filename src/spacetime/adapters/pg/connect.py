"""From settings to a usable, migrated database: embedded start, URL check, clear one-line errors."""

from __future__ import annotations

import psycopg

from spacetime.adapters.pg import embedded
from spacetime.adapters.pg.migrations import migrate
from spacetime.config import Settings, redact_url
from spacetime.errors import StoreConfigError, StoreError

APPLICATION_NAME = "spacetime"


def database_url(settings: Settings) -> str:
    """The URL to connect to: the external one, or the embedded server's (started if needed)."""
    if settings.database_url is not None:
        return settings.database_url
    return embedded.start(settings.data_dir)


def connect_error(url: str, exc: psycopg.Error) -> StoreConfigError:
    """One line for a failed connection: what and how to fix it."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
    first = lines[0].rsplit("failed: ", 1)[-1].strip()
    return StoreConfigError(
        f"cannot connect to the database at {redact_url(url)} ({first}): check SPACETIME_DATABASE_URL or "
        "--database-url, or unset it to use the embedded PostgreSQL"
    )


def connect_sync(url: str, *, autocommit: bool = True, timeout_s: int = 10) -> psycopg.Connection:
    try:
        return psycopg.connect(
            url, autocommit=autocommit, connect_timeout=timeout_s, application_name=APPLICATION_NAME
        )
    except psycopg.Error as exc:
        raise connect_error(url, exc) from None


def other_spacetime_connections(url: str) -> int:
    """How many other ``spacetime`` connections (runs, decks) the server at ``url`` has now."""
    with connect_sync(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
            (APPLICATION_NAME,),
        ).fetchone()
    return int(row[0]) if row else 0


def check_server(conn: psycopg.Connection, url: str) -> None:
    version = conn.info.server_version
    if version < 150000:
        raise StoreConfigError(
            f"the database at {redact_url(url)} runs PostgreSQL {version // 10000}: Space Time needs 15 or newer"
        )


def prepare(settings: Settings) -> str:
    """Resolve the URL, check the server and apply migrations. Returns the URL."""
    url = database_url(settings)
    with connect_sync(url) as conn:
        check_server(conn, url)
        try:
            migrate(conn)
        except psycopg.OperationalError as exc:
            raise StoreError(f"lost the database while migrating ({exc}); run `spacetime db migrate` again") from None
    return url
