"""``spacetime db``: migrate, url, stop."""

from __future__ import annotations

from typing import Annotated

import typer

from spacetime.cli.common import settings_of
from spacetime.config import redact_url
from spacetime.errors import ConfigError

app = typer.Typer(help="Manage the database (embedded PostgreSQL + pgvector by default).", no_args_is_help=True)


@app.command("migrate")
def db_migrate(ctx: typer.Context) -> None:
    """Create or upgrade the schema (idempotent; safe to run from two processes at once)."""
    from spacetime.adapters.pg.connect import connect_sync, database_url
    from spacetime.adapters.pg.migrations import migrate

    settings = settings_of(ctx)
    url = database_url(settings)
    with connect_sync(url) as conn:
        applied = migrate(conn)
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
