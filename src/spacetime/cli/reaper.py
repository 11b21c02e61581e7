"""The Reaper from the command line: ``spacetime swap``, ``personas`` and ``lineage``."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer

from spacetime.cli.common import find_book, run_async, settings_of

if TYPE_CHECKING:
    from spacetime.adapters.pg.reports import CatalogEntry, LineageEntry
    from spacetime.adapters.pg.swaps import SwapRequest


def swap(
    ctx: typer.Context,
    book: Annotated[str, typer.Option("--book", "-b", help="Book name.")],
    out: Annotated[str, typer.Option("--out", help="The living agent to take out.")],
    in_persona: Annotated[str, typer.Option("--in", help="The persona to bring in (see `spacetime personas`).")],
) -> None:
    """Swap a living agent for a persona at the book's next epoch boundary (a running book applies it live)."""
    from spacetime.adapters.pg.connect import prepare
    from spacetime.adapters.pg.store import open_store
    from spacetime.personas import builtin_personas

    url = prepare(settings_of(ctx))

    async def go() -> SwapRequest:
        async with open_store(url, max_size=2) as store:
            found = await find_book(store, book)
            await store.upsert_personas(builtin_personas())
            return await store.swaps.enqueue(found, out, in_persona)

    request = run_async(go())
    typer.echo(f"queued: {request.out_name} → {request.persona.name} in {book!r}, applied at the next epoch boundary")


def personas(
    ctx: typer.Context,
    book: Annotated[
        str | None, typer.Option("--book", "-b", help="Also show each persona's state in this book.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Built-in, custom and bred personas (with their parents); with --book, who is alive, dead or in reserve."""
    from spacetime.adapters.pg import reports
    from spacetime.adapters.pg.connect import prepare
    from spacetime.adapters.pg.store import open_store
    from spacetime.book import parse_book
    from spacetime.cli.render import persona_json, print_personas
    from spacetime.personas import builtin_personas

    url = prepare(settings_of(ctx))

    async def collect() -> list[CatalogEntry]:
        async with open_store(url, max_size=2) as store:
            found = await find_book(store, book) if book is not None else None
            entries = await reports.persona_catalog(store, found.book_id if found else None)
            reserve: set[str] = set()
            if found is not None:
                reserve = {p.name for p in parse_book(found.config, where=f"book {book!r}").reserve}
        known = {e.persona.name for e in entries}
        entries += [reports.CatalogEntry(p, bred_in=None, state=None, died_epoch=None)
                    for p in builtin_personas() if p.name not in known]  # fmt: skip
        return [replace(e, state=reports.PersonaState.RESERVE) if e.state is None and e.persona.name in reserve else e
                for e in entries]  # fmt: skip

    entries = run_async(collect())
    if as_json:
        typer.echo(json.dumps([persona_json(e) for e in entries], indent=2, default=str))
        return
    print_personas(entries, book)


def lineage(
    ctx: typer.Context,
    book: Annotated[str, typer.Option("--book", "-b", help="Book name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Who replaced whom at which epoch, and which personas bred personas descend from, as a tree."""
    from spacetime.adapters.pg import reports
    from spacetime.adapters.pg.connect import prepare
    from spacetime.adapters.pg.store import open_store
    from spacetime.cli.render import lineage_json, print_lineage

    url = prepare(settings_of(ctx))

    async def collect() -> list[LineageEntry]:
        async with open_store(url, max_size=2) as store:
            return await reports.lineage(store, (await find_book(store, book)).book_id)

    entries = run_async(collect())
    if as_json:
        typer.echo(json.dumps([lineage_json(e) for e in entries], indent=2, default=str))
        return
    print_lineage(entries, book)
