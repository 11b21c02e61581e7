"""What every command shares: the global options, the settings they make, running a coroutine, finding a book."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from spacetime.config import Settings, load_settings
from spacetime.errors import ConfigError

if TYPE_CHECKING:
    from spacetime.adapters.pg.store import Store
    from spacetime.domain import Book

T = TypeVar("T")

DEFAULT_BOOK = "spacetime"  # the same default as spacetime.engine.play.DEFAULT_BOOK

TrustStored = Annotated[
    bool,
    typer.Option("--trust-stored-endpoints",
                 help="Call the endpoints stored with the books (server URLs, key variable names) without their "
                      "book file. Only when nobody untrusted can write to this database."),
]  # fmt: skip
"""``--trust-stored-endpoints`` (``spacetime run`` and ``worker``; docs/book.md "What is trusted")."""


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    """``--database-url`` and ``--data-dir`` (or their environment variables), as the root command got them."""

    database_url: str | None = None
    data_dir: Path | None = None


def settings_of(ctx: typer.Context) -> Settings:
    options = ctx.find_root().obj
    if not isinstance(options, GlobalOptions):
        options = GlobalOptions()
    return load_settings(database_url=options.database_url, data_dir=options.data_dir)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def find_book(store: Store, name: str) -> Book:
    """The book named ``name``; ``ConfigError`` (listing the books there are) when there is none."""
    found = await store.get_book(name)
    if found is None:
        names = ", ".join(b.name for b in await store.list_books()) or "none yet"
        raise ConfigError(f"no book named {name!r} (books: {names})")
    return found
