"""``spacetime deck``: the Epistemic Deck (a read-only Streamlit dashboard)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spacetime.cli.common import settings_of


def deck(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on (0.0.0.0: every one; then an access token).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8501,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Off loopback, serve without the access token (anyone can look).")
    ] = False,
    book_files: Annotated[
        list[Path] | None,
        typer.Option("--book-file", metavar="BOOK.toml",
                     help="Trust this book file's embedder for semantic search in its book (repeatable)."),
    ] = None,  # fmt: skip
) -> None:
    """Open the Epistemic Deck: a live, read-only dashboard of every book (Streamlit), until Ctrl-C."""
    from spacetime.adapters.pg.connect import deck_database_url
    from spacetime.deck import serve

    url = deck_database_url(settings_of(ctx))  # the read-only role's URL, never the engine's
    raise typer.Exit(serve(url, host=host, port=port, auth=not no_auth, book_files=book_files or ()))
