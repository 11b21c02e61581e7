"""``spacetime db``: migrate, url, grant-deck-role, stop."""

from __future__ import annotations

import os
import secrets
from typing import Annotated

import typer

from spacetime.cli.common import settings_of
from spacetime.errors import ConfigError
from spacetime.redaction import redact_url

app = typer.Typer(help="Manage the database (embedded PostgreSQL + pgvector by default).", no_args_is_help=True)


@app.command("migrate")
def db_migrate(ctx: typer.Context) -> None:
    """Create or upgrade the schema (idempotent; safe to run from two processes at once)."""
    from spacetime.adapters.pg.connect import connect_sync, database_url
    from spacetime.adapters.pg.migrations import migrate

    settings = settings_of(ctx)
    url = database_url(settings)
    with connect_sync(url) as conn:
        applied = migrate(conn, deck_role=settings.embedded)
    where = "embedded PostgreSQL" if settings.embedded else redact_url(url)
    if applied:
        typer.echo(f"applied migration(s) {', '.join(map(str, applied))} to {where}")
    else:
        typer.echo(f"schema is up to date on {where}")


@app.command("url")
def db_url(ctx: typer.Context) -> None:
    """Print a URL any PostgreSQL client (psql, DBeaver) can use; starts the embedded server if needed."""
    from spacetime.adapters.pg.connect import database_url

    typer.echo(database_url(settings_of(ctx)))


@app.command("grant-deck-role")
def db_grant_deck_role(
    ctx: typer.Context,
    password_env: Annotated[
        str | None,
        typer.Option(
            "--password-env",
            metavar="VAR",
            help="Take the role's password from this environment variable (default: generate one, shown once).",
        ),
    ] = None,
) -> None:
    """Create or update the deck's read-only role (spacetime_deck) and print the URL `spacetime deck` should use.

    Needs a user with CREATEROLE that owns the tables (or a superuser). Run it again after changing servers or
    passwords; later migrations grant their new tables to the role by themselves."""
    from spacetime.adapters.pg.connect import (
        ENV_DECK_DATABASE_URL,
        check_server,
        connect_sync,
        database_url,
        login_problem,
        prepare,
    )
    from spacetime.adapters.pg.migrations import grant_deck_role
    from spacetime.adapters.pg.roles import role_url

    settings = settings_of(ctx)
    password: str | None = None
    if password_env is not None:
        if settings.embedded:
            raise ConfigError(
                "the embedded PostgreSQL trusts every local connection and checks no password: drop --password-env"
            )
        password = os.environ.get(password_env) or None
        if password is None:
            raise ConfigError(f"the environment variable {password_env} is empty or not set: export the password "
                              "in it, or drop --password-env to have one generated")
    generated = password is None and not settings.embedded
    if generated:
        password = secrets.token_urlsafe(24)
    url = prepare(settings) if settings.embedded else database_url(settings)  # embedded: we own the schema too
    with connect_sync(url) as conn:
        check_server(conn, url)
        granted = grant_deck_role(conn, password=password)
    deck_url = role_url(url, granted.role, password)
    action = "created" if granted.created else "updated"
    reads = f"SELECT on {granted.tables} table(s)" if granted.tables else "no tables yet (migrations grant them)"
    typer.echo(f"{action} the read-only role {granted.role}: {reads}", err=True)
    for warning in granted.warnings:
        typer.echo(f"spacetime: warning: {warning}", err=True)
    problem = login_problem(deck_url)
    if problem is not None:
        typer.echo(f"spacetime: warning: logging in as {granted.role} failed just now ({problem}): check the "
                   "server's pg_hba.conf", err=True)
    if settings.embedded:
        typer.echo("`spacetime deck` connects as it by itself (the embedded server checks no password):", err=True)
    else:
        if generated:
            typer.echo("its password was generated and is shown only this once, in the URL below (keep it secret)",
                       err=True)
        typer.echo(f"set {ENV_DECK_DATABASE_URL} to this URL for `spacetime deck`:", err=True)
    typer.echo(deck_url)


@app.command("stop")
def db_stop(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Stop even while other spacetime processes use it.")] = False,
) -> None:
    """Stop the embedded PostgreSQL server cleanly (it keeps running between commands otherwise)."""
    from spacetime.adapters.pg import embedded
    from spacetime.adapters.pg.connect import other_spacetime_connections

    settings = settings_of(ctx)
    if not settings.embedded:
        raise ConfigError("db stop only stops the embedded server; SPACETIME_DATABASE_URL points at an external one")
    url = embedded.running_uri(settings.data_dir)
    if url is None:
        typer.echo(f"the embedded PostgreSQL in {settings.pgdata} is not running")
        return
    if not force:
        in_use = other_spacetime_connections(url)
        if in_use:
            raise ConfigError(
                f"the embedded PostgreSQL is in use by {in_use} spacetime connection(s): "
                "stop `spacetime run`/`spacetime deck` first, or pass --force"
            )
    embedded.stop(settings.data_dir)
    typer.echo(f"stopped the embedded PostgreSQL in {settings.pgdata}")
