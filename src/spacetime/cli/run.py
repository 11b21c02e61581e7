"""``spacetime run``: play epochs of one book (a live table) or of several at once (one line per event)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spacetime.cli.common import TrustStored, run_async, settings_of
from spacetime.config import Settings
from spacetime.errors import SpacetimeError
from spacetime.redaction import redact


def run(
    ctx: typer.Context,
    book_files: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="[BOOK.toml]...",
            help="Book file(s) (topic, roster, models). Optional. Several files: several books at once.",
        ),
    ] = None,
    book: Annotated[
        str | None, typer.Option("--book", "-b", help="Book name (default: the file's name, else 'spacetime').")
    ] = None,
    books: Annotated[
        int | None,
        typer.Option("--books", min=1, max=1000,
                     help="Play N copies of the book at once, named <book>-1 … <book>-N (sharing the endpoints)."),
    ] = None,  # fmt: skip
    epochs: Annotated[int, typer.Option("--epochs", "-n", min=1, help="Epochs to play now.")] = 3,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", min=16, max=32768, help="Hard cap per draft (default 2048).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed for aliases, orders, tie-breaks and sampling.")
    ] = None,
    trust_stored: TrustStored = False,
) -> None:
    """Play epochs of a book on real models; resumes a book that already has epochs.

    Several book files, or --books N, play several books at once in this process: every endpoint keeps ONE
    concurrency bound shared by all books, and a failing book does not stop the others (the exit code is non-zero
    when any book failed).

    A book resumed without its file is played on its stored settings, but the endpoints stored with it (server URLs,
    key variable names) are called only with --trust-stored-endpoints: give the book file again otherwise.
    """
    from spacetime.cli.progress import EpochProgress
    from spacetime.engine.play import play_book

    settings = settings_of(ctx)
    files = list(book_files or [])
    if len(files) <= 1 and books is None:
        progress = EpochProgress()
        try:
            name, outcomes = run_async(
                play_book(settings, files[0] if files else None, book_name=book, epochs=epochs,
                          max_tokens=max_tokens, seed=seed, emit=progress, trust_stored=trust_stored)  # fmt: skip
            )
        finally:
            progress.close()
        typer.echo(f"played {len(outcomes)} epoch(s) of {name!r}: `spacetime export --book {name}` prints the book")
        return
    _run_many(settings, files, book=book, books=books, epochs=epochs, max_tokens=max_tokens, seed=seed,
              trust_stored=trust_stored)  # fmt: skip


def _run_many(
    settings: Settings, files: list[Path], *, book: str | None, books: int | None, epochs: int,
    max_tokens: int | None, seed: int | None, trust_stored: bool,
) -> None:  # fmt: skip
    from spacetime.cli.progress import BooksProgress
    from spacetime.engine.play import plan_books, play_books

    plans = plan_books(files, book_name=book, copies=books)
    if all(plan.error is not None for plan in plans):  # no book file could be read: one line, nothing touched
        raise next(plan.error for plan in plans if plan.error is not None)
    progress = BooksProgress()
    runs = run_async(
        play_books(settings, plans, epochs=epochs, max_tokens=max_tokens, seed=seed, emit_for=progress.listener,
                   on_done=progress.done, trust_stored=trust_stored)  # fmt: skip
    )
    failed = [r for r in runs if r.error is not None]
    played = sum(len(r.outcomes) for r in runs)
    typer.echo(f"played {played} epoch(s) of {len(runs)} book(s), {len(failed)} failed: "
               "`spacetime status` lists them")  # fmt: skip
    for r in failed:
        typer.echo(redact(f"spacetime: error: book {r.name!r}: {r.error}"), err=True)
    if failed:
        codes = {r.error.exit_code if isinstance(r.error, SpacetimeError) else 1 for r in failed}
        raise typer.Exit(2 if codes == {2} else 1)  # 2 only when every failure was usage or configuration
