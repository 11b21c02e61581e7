"""``spacetime deck``: the Epistemic Deck (a read-only Streamlit dashboard)."""

from __future__ import annotations

from typing import Annotated

import typer

from spacetime.cli.common import settings_of


def deck(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on (0.0.0.0: every one; no login!).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8501,
) -> None:
    """Open the Epistemic Deck: a live, read-only dashboard of every book (Streamlit), until Ctrl-C."""
    from spacetime.adapters.pg.connect import prepare
    from spacetime.deck import serve

    url = prepare(settings_of(ctx))
    typer.echo(f"The Epistemic Deck (read-only): http://{host}:{port}  (Ctrl-C stops it)", err=True)
    raise typer.Exit(serve(url, host=host, port=port))
