"""``spacetime run``: open the store, find or create the book, seat the roster, play epochs with live progress."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from spacetime.book import BookConfig, load_book, parse_book, validate_book_name
from spacetime.config import Settings
from spacetime.engine.director import Director, EpochOutcome
from spacetime.engine.events import Listener
from spacetime.engine.models import ModelPool
from spacetime.store.connect import prepare
from spacetime.store.store import Book, Store, open_store

DEFAULT_BOOK = "spacetime"


def with_overrides(config: BookConfig, *, max_tokens: int | None, seed: int | None) -> BookConfig:
    changes: dict[str, object] = {}
    if max_tokens is not None:
        changes["max_tokens"] = max_tokens
    if seed is not None:
        changes["seed"] = seed
    return dataclasses.replace(config, **changes) if changes else config


async def open_book(
    store: Store, book_file: Path | None, *, book_name: str | None, max_tokens: int | None, seed: int | None
) -> tuple[Book, BookConfig]:
    """Find the book (resume) or create it. A resumed book keeps its stored settings unless a file is given."""
    file_config = load_book(book_file) if book_file is not None else None
    name = validate_book_name(book_name or (file_config.name if file_config else None) or DEFAULT_BOOK)
    book = await store.get_book(name)
    if book is None:
        config = with_overrides(file_config or load_book(None), max_tokens=max_tokens, seed=seed)
        book = await store.create_book(name, config.topic, config.outline, config.to_json())
    else:
        stored = parse_book(book.config, where=f"stored settings of book {name!r}")
        config = with_overrides(file_config or stored, max_tokens=max_tokens, seed=seed)
        config = dataclasses.replace(config, topic=book.topic, outline=book.outline)
    await store.upsert_personas(config.roster + config.reserve)
    return book, config


async def play_book(
    settings: Settings,
    book_file: Path | None,
    *,
    book_name: str | None,
    epochs: int,
    max_tokens: int | None,
    seed: int | None,
    emit: Listener | None = None,
) -> tuple[str, list[EpochOutcome]]:
    url = prepare(settings)
    progress = None
    if emit is None:
        from spacetime.ui import EpochProgress

        progress = EpochProgress()
        emit = progress
    async with open_store(url) as store:
        book, config = await open_book(store, book_file, book_name=book_name, max_tokens=max_tokens, seed=seed)
        async with store.book_lock(book):
            models = ModelPool(config)
            director = Director(store=store, book=book, config=config, models=models, emit=emit)
            try:
                await director.setup()
                outcomes = await director.play(epochs)
            finally:
                if progress is not None:
                    progress.close()
                await director.close()
                await models.aclose()
    return book.name, outcomes
