"""``spacetime submit`` / ``worker`` / ``pause`` / ``resume`` / ``cancel``: books played by a fleet of workers
(``spacetime.engine.fleet``; docs/scale-out.md)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from spacetime.cli.common import TrustStored, run_async, settings_of

if TYPE_CHECKING:
    from spacetime.engine.events import Listener


def submit(
    ctx: typer.Context,
    book_files: Annotated[
        list[Path] | None,
        typer.Argument(metavar="[BOOK.toml]...", help="Book file(s). Several files: several books."),
    ] = None,
    book: Annotated[str | None, typer.Option("--book", "-b", help="Book name (default: the file's name).")] = None,
    books: Annotated[
        int | None, typer.Option("--books", min=1, max=1000, help="Submit N copies, named <book>-1 … <book>-N.")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", "-n", min=1, help="Epochs to add to each book.")] = 3,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", min=16, max=32768, help="Hard cap per draft (default 2048).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the book (copies get seed + i - 1).")] = None,
) -> None:
    """Hand books to the fleet: `spacetime worker`s on any machine sharing this database play them."""
    from spacetime.engine.fleet import submit as submit_books
    from spacetime.engine.play import plan_books

    plans = plan_books(list(book_files or []), book_name=book, copies=books)
    done = run_async(submit_books(settings_of(ctx), plans, epochs=epochs, max_tokens=max_tokens, seed=seed))
    for s in done:
        typer.echo(f"submitted {s.name!r}: epochs {s.first_epoch}–{s.target_epoch}")
    typer.echo("`spacetime worker` plays them; `spacetime status` follows them")


def worker(
    ctx: typer.Context,
    executor_id: Annotated[
        str | None,
        typer.Option(
            "--executor-id",
            envvar="SPACETIME_EXECUTOR_ID",
            show_envvar=True,
            help="This worker's stable, unique name. Restarted under the same name, it resumes the "
            "epochs it was playing. Default: worker-<host>-<pid>-<random>.",
        ),
    ] = None,  # fmt: skip
    books_at_once: Annotated[int, typer.Option("--books-at-once", min=1, max=256, help="Books per worker.")] = 4,
    adopt: Annotated[
        list[str] | None,
        typer.Option("--adopt", help="Executor id of a dead worker whose epochs this fleet should take over."),
    ] = None,
    endpoints: Annotated[
        Path | None,
        typer.Option("--endpoints", metavar="FILE.toml",
                     help="A book file whose [endpoints.NAME] tables this worker uses (by name) instead of the stored "
                          "ones."),
    ] = None,  # fmt: skip
    trust_stored: TrustStored = False,
) -> None:
    """Play fleet books until stopped (Ctrl-C or SIGTERM): one line per epoch committed.

    The database is not trusted to choose endpoints or keys: a book on a model server needs --endpoints FILE (the
    book file, or any file defining those endpoints) or --trust-stored-endpoints."""
    from spacetime.book import load_book
    from spacetime.engine.durable import default_executor_id
    from spacetime.engine.fleet import committed_line, work
    from spacetime.engine.trust import EndpointTrust
    from spacetime.redaction import printable

    name = executor_id or default_executor_id("worker")
    trust = EndpointTrust(stored=trust_stored, local=load_book(endpoints).endpoints if endpoints else {})

    def emit_for(book: str) -> Listener:
        def emit(event: object) -> None:
            line = committed_line(book, event)
            if line is not None:
                print(printable(line), flush=True)

        return emit

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"worker {name} ready", file=sys.stderr, flush=True)
        await work(settings_of(ctx), executor_id=name, books_at_once=books_at_once, adopt=adopt or (),
                   emit_for=emit_for, stop=stop, trust=trust)  # fmt: skip

    run_async(main())
    typer.echo(f"worker {name} stopped: the epochs it was playing resume under the same --executor-id", err=True)


def _control(ctx: typer.Context, book: str, action: str) -> None:
    from spacetime.adapters.pg.jobs import JobState
    from spacetime.engine.fleet import control

    typer.echo(run_async(control(settings_of(ctx), book, JobState(action))))


def pause(ctx: typer.Context, book: Annotated[str, typer.Argument(help="Book name.")]) -> None:
    """Stop a fleet book after the epoch in flight."""
    _control(ctx, book, "paused")


def resume(ctx: typer.Context, book: Annotated[str, typer.Argument(help="Book name.")]) -> None:
    """Let a paused fleet book go on."""
    _control(ctx, book, "queued")


def cancel(ctx: typer.Context, book: Annotated[str, typer.Argument(help="Book name.")]) -> None:
    """Stop a fleet book for good (its epoch in flight stops at its next model call; chapters stay)."""
    _control(ctx, book, "cancelled")
