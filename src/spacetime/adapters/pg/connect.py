"""From settings to a usable, migrated database: embedded start, URL check, clear one-line errors."""

from __future__ import annotations

import os

import psycopg

from spacetime.adapters.pg import embedded, roles
from spacetime.adapters.pg.migrations import grant_deck_role, migrate, our_tables
from spacetime.config import Settings, validate_database_url
from spacetime.errors import StoreConfigError, StoreError
from spacetime.redaction import redact_url

APPLICATION_NAME = "spacetime"
ENV_DECK_DATABASE_URL = "SPACETIME_DECK_DATABASE_URL"
"""The URL the deck connects with (as its read-only role). Deliberately the same variable that carries the URL to the
Streamlit process (``spacetime.deck.ENV_URL``): one name, one meaning, whoever sets it."""


def database_url(settings: Settings) -> str:
    """The URL to connect to: the external one, or the embedded server's (started if needed)."""
    if settings.database_url is not None:
        return settings.database_url
    return embedded.start(settings.data_dir)


def connect_error(url: str, exc: psycopg.Error) -> StoreConfigError:
    """One line for a failed connection: what and how to fix it."""
    first = _first_line(exc)
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
            migrate(conn, deck_role=settings.embedded)
        except psycopg.OperationalError as exc:
            raise StoreError(f"lost the database while migrating ({exc}); run `spacetime db migrate` again") from None
    return url


def _first_line(exc: psycopg.Error) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
    return lines[0].rsplit("failed: ", 1)[-1].strip()


def login_problem(url: str, *, timeout_s: int = 10) -> str | None:
    """Why a connection to ``url`` fails now (its first line), or ``None`` if it succeeds."""
    try:
        psycopg.connect(url, connect_timeout=timeout_s, application_name=APPLICATION_NAME).close()
    except psycopg.Error as exc:
        return _first_line(exc)
    return None


def deck_database_url(settings: Settings) -> str:
    """The URL ``spacetime deck`` connects with: always a role that can read our tables and write nothing.

    ``SPACETIME_DECK_DATABASE_URL`` if set (e.g. what ``spacetime db grant-deck-role`` printed; the database URL is
    then not needed). Otherwise the database is prepared as by every command and the deck connects to it as
    ``spacetime_deck`` without a password: on the embedded server (local connections are trusted) the role was just
    set up; on an external server it is set up first when the database user may (as ``grant-deck-role`` would,
    keeping any password), and a server that asks for a password fails with one line saying what to run. Never
    falls back to the database URL's own user; a URL whose role could write is refused."""
    from spacetime.adapters.pg.deck import read_only_kwargs  # deck imports this module

    given = os.environ.get(ENV_DECK_DATABASE_URL, "").strip()
    if given:
        url = validate_database_url(given)
        where = f"{ENV_DECK_DATABASE_URL} ({redact_url(url)})"
        fix = "set it to the URL `spacetime db grant-deck-role` prints"
    else:
        admin = prepare(settings)
        if not settings.embedded:
            with connect_sync(admin) as conn:
                try:
                    grant_deck_role(conn)
                except StoreConfigError:
                    pass  # not ours to set up: the connection or the check below says what to run
        url = roles.role_url(admin, roles.DECK_ROLE)
        where = f"the deck's role {roles.DECK_ROLE} at {redact_url(url)}"
        fix = (
            f"run `spacetime db grant-deck-role` and set {ENV_DECK_DATABASE_URL} to the URL it prints"
            if not settings.embedded
            else "run `spacetime db migrate`, or `spacetime db stop` and retry"
        )
    try:
        with psycopg.connect(url, connect_timeout=10, **read_only_kwargs(url)) as conn:
            problem = roles.deck_role_problem(conn, our_tables())
    except psycopg.Error as exc:
        raise StoreConfigError(f"the deck cannot connect with {where}: {_first_line(exc)}: {fix}") from None
    if problem is not None:
        raise StoreConfigError(f"the deck refuses {where}: {problem}: {fix}")
    return url
