"""``spacetime status`` and ``spacetime export``: what the books hold."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from spacetime.cli.common import DEFAULT_BOOK, find_book, run_async, settings_of
from spacetime.errors import ConfigError

if TYPE_CHECKING:
    from spacetime.adapters.pg.reports import BookStatus


def status(
    ctx: typer.Context,
    book: Annotated[str | None, typer.Option("--book", "-b", help="Only this book.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Books, epochs, chapters and the roster with ratings."""
    from spacetime.adapters.pg import reports
    from spacetime.adapters.pg.connect import prepare
    from spacetime.adapters.pg.store import open_store
    from spacetime.cli.render import print_status, status_json

    url = prepare(settings_of(ctx))

    async def collect() -> list[BookStatus]:
        from spacetime.engine.fleet import fleet_states

        async with open_store(url, max_size=2) as store:
            books = [await find_book(store, book)] if book is not None else await store.list_books()
            found = [await reports.book_status(store, b) for b in books]
            states = await fleet_states(store, url)
            return [dataclasses.replace(s, fleet=states.get(s.book.book_id)) for s in found]

    found = run_async(collect())
    if as_json:
        shaped = [status_json(s) for s in found]
        typer.echo(json.dumps({"books": shaped} if book is None else shaped[0], indent=2, default=str))
        return
    print_status(found)


def export(
    ctx: typer.Context,
    book: Annotated[str, typer.Option("--book", "-b", help="Book name.")] = DEFAULT_BOOK,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Write the canon (the committed chapters, in order) as Markdown."""
    from spacetime.adapters.pg.connect import prepare
    from spacetime.adapters.pg.store import open_store
    from spacetime.rules.canon import render_markdown

    url = prepare(settings_of(ctx))

    async def collect() -> str:
        async with open_store(url, max_size=2) as store:
            found = await find_book(store, book)
            chapters = await store.chapters(found.book_id)
            return render_markdown(found.name, found.topic,
                                   [(c.position, c.title, c.text, c.agent_name, c.epoch_no) for c in chapters])

    text = run_async(collect())
    if output is None:
        typer.echo(text, nl=False)
        return
    tmp = output.with_name(output.name + ".part")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {output}: {exc.strerror}") from None
    typer.echo(f"wrote {output}", err=True)
