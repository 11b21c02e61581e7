"""``spacetime run``: open the store, find or create the book(s), seat the rosters, play epochs with live progress.

One book (``play_book``) is played with a live table. Several books (``play_books``: several book files, or
``--books N`` copies of one) are played at once by one process: each book is its own task with its own Director,
every book shares one :class:`~spacetime.engine.models.SharedModels` (so an endpoint's concurrency bound holds
across all books), one connection pool and one connection for the books' advisory locks (the Reapers share one
swap listener, ``spacetime.adapters.pg.notify.SwapHub``). A book that fails is reported and the others play on.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from spacetime.adapters.pg.connect import prepare
from spacetime.adapters.pg.store import Store, open_store
from spacetime.book import BookConfig, load_book, parse_book, validate_book_name
from spacetime.config import Settings
from spacetime.domain import Book, EpochOutcome
from spacetime.engine.director import Director
from spacetime.engine.durable import Durable, default_executor_id
from spacetime.engine.events import Listener
from spacetime.engine.hosting import Host
from spacetime.engine.models import ModelPool, SharedModels
from spacetime.engine.trust import EndpointTrust
from spacetime.errors import ConfigError
from spacetime.ports import BookRepository, ChatModel, Embedder

DEFAULT_BOOK = "spacetime"
MAX_POOL = 20
"""Database connections of a process playing many books (one holds every book's lock)."""


def with_overrides(config: BookConfig, *, max_tokens: int | None, seed: int | None) -> BookConfig:
    if max_tokens is not None:
        config = dataclasses.replace(config, max_tokens=max_tokens)
    if seed is not None:
        config = dataclasses.replace(config, seed=seed)
    return config


async def _find_or_create(
    store: BookRepository,
    name: str,
    given: BookConfig | None,
    *,
    max_tokens: int | None,
    seed: int | None,
    seed_offset: int = 0,
    trust: EndpointTrust | None = None,
) -> tuple[Book, BookConfig]:
    """The book named ``name`` and the settings to play it with: ``given`` (a book file), else the stored ones, whose
    endpoints must pass ``trust`` (``ConfigError`` before anything is built or called), else the defaults."""
    book = await store.get_book(name)
    if book is None:
        config = _offset_seed(with_overrides(given or load_book(None), max_tokens=max_tokens, seed=seed), seed_offset)
        book = await store.create_book(name, config.topic, config.outline, config.to_json())
    else:
        stored = parse_book(book.config, where=f"stored settings of book {name!r}")
        if given is None:
            stored = (trust or EndpointTrust()).book(stored, where=f"book {name!r}")
        config = with_overrides(given or stored, max_tokens=max_tokens, seed=seed)
        if given is not None or seed is not None:  # a stored seed already carries its offset
            config = _offset_seed(config, seed_offset)
        config = dataclasses.replace(config, topic=book.topic, outline=book.outline)
    await store.upsert_personas(config.roster + config.reserve)
    return book, config


@asynccontextmanager
async def _seated(
    store: BookRepository, book: Book, config: BookConfig, models: ModelPool, emit: Listener
) -> AsyncIterator[Director]:
    """A Director with the book's roster seated on ``models``; all of it (the models too) released on the way out."""
    try:
        async with Director(store=store, book=book, config=config, models=models, emit=emit) as director:
            yield director
    finally:
        await models.aclose()


def _offset_seed(config: BookConfig, offset: int) -> BookConfig:
    if not offset or config.seed is None:
        return config
    return dataclasses.replace(config, seed=config.seed + offset)


async def play_book(
    settings: Settings,
    book_file: Path | None,
    *,
    book_name: str | None,
    epochs: int,
    max_tokens: int | None,
    seed: int | None,
    emit: Listener,
    durable: bool = True,
    trust_stored: bool = False,
) -> tuple[str, list[EpochOutcome]]:
    """Play ``epochs`` epochs of one book. A bad book file fails before the database is touched; a resumed book's
    stored endpoints are built only when ``trust_stored`` (``--trust-stored-endpoints``) or given again."""
    file_config = load_book(book_file) if book_file is not None else None  # before anything is written
    trust = EndpointTrust(stored=trust_stored, local=file_config.endpoints if file_config else {})
    name = validate_book_name(book_name or (file_config.name if file_config else None) or DEFAULT_BOOK)
    url = prepare(settings)
    async with open_store(url) as store:
        book, config = await _find_or_create(store, name, file_config, max_tokens=max_tokens, seed=seed, trust=trust)
        shared = SharedModels()
        try:
            async with store.book_lock(book), _seated(store, book, config, ModelPool(config), emit) as director:
                async with _durably(url, store, shared, {book.book_id: director}, durable, trust):
                    outcomes = await director.play(epochs)
        finally:
            await shared.aclose()
    return book.name, outcomes


@asynccontextmanager
async def _durably(
    url: str, store: BookRepository, shared: SharedModels, directors: dict[UUID, Director], on: bool,
    trust: EndpointTrust,
) -> AsyncIterator[Host | None]:
    """DBOS launched for this run with the Directors in ``directors`` (filled as books are seated) playing each
    epoch as a durable workflow; nothing when ``on`` is false or the repository is not PostgreSQL (tests)."""
    if not on or not isinstance(store, Store):
        yield None
        return
    host = Host(store, shared, directors, trust=trust)
    async with Durable(url, host, executor_id=default_executor_id("run")) as engine:
        host.engine = engine
        for director in directors.values():
            director.durable = engine
        yield host


# --------------------------------------------------------------------------- many books at once
@dataclass(frozen=True)
class BookPlan:
    """One book of a multi-book run: its name and where its settings come from."""

    name: str
    config: BookConfig | None = None
    """Settings from a book file (or built in code); ``None``: the stored settings, else the defaults."""
    seed_offset: int = 0
    """Added to the seed of copy ``i`` of a template (``i - 1``), so copies do not replay each other."""
    error: Exception | None = None
    """Set when the plan could not be made (an unreadable book file): the book fails without playing."""


@dataclass
class BookRun:
    """What became of one book of a multi-book run."""

    name: str
    outcomes: list[EpochOutcome] = field(default_factory=list)
    error: Exception | None = None
    stopped: str | None = None
    """The line saying the book stopped early because it reached its budget (``[budget]``)."""


def plan_books(
    book_files: Sequence[Path], *, book_name: str | None = None, copies: int | None = None
) -> list[BookPlan]:
    """The books ``spacetime run FILE… [--book NAME] [--books N]`` plays.

    * ``--books N``: ``N`` copies of each file (of the default book without a file), named ``<name>-1`` … ``<name>-N``
      where ``<name>`` is ``--book``, else the file's ``name``, else ``spacetime``;
    * several files: one book each, named by the file's ``name``, else the file's stem (``--book`` is refused).

    A file that cannot be read becomes a plan carrying its ``ConfigError`` (that book fails, the others play).
    Raises ``ConfigError`` for two books with the same name.
    """
    if book_name is not None and len(book_files) > 1:
        raise ConfigError("--book names one book: with several book files, each book takes its file's name")
    sources: list[tuple[Path | None, BookConfig | None, Exception | None]] = []
    if not book_files:
        sources.append((None, None, None))
    for path in book_files:
        try:
            sources.append((path, load_book(path), None))
        except ConfigError as exc:
            sources.append((path, None, exc))
    plans: list[BookPlan] = []
    for source, config, error in sources:
        base = book_name or (config.name if config is not None else None)
        if base is None:
            base = source.stem if source is not None and len(sources) > 1 else DEFAULT_BOOK
        if copies is None:
            plans.append(BookPlan(base, config, 0, error))
        else:
            plans.extend(BookPlan(f"{base}-{i}", config, i - 1, error) for i in range(1, copies + 1))
    for plan in plans:
        if plan.error is None:
            validate_book_name(plan.name)
    names = [p.name for p in plans]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        named = ", ".join(map(repr, twice))
        raise ConfigError(f"two books would be named {named}: give each book file a distinct name")
    return plans


async def play_books(
    settings: Settings,
    plans: Sequence[BookPlan],
    *,
    epochs: int,
    max_tokens: int | None = None,
    seed: int | None = None,
    emit_for: Callable[[str], Listener] | None = None,
    on_done: Callable[[BookRun], None] | None = None,
    prebuilt: dict[str, ChatModel] | None = None,
    prebuilt_embedder: Embedder | None = None,
    durable: bool = True,
    trust_stored: bool = False,
) -> list[BookRun]:
    """Play ``epochs`` epochs of every planned book at once (fewer for a book that reaches its ``[budget]``: its
    run's ``stopped`` says so); return one :class:`BookRun` per plan, in order.

    A book's failure (bad file, locked by another process, too few drafts, a lost database …) ends that book only:
    it is recorded in its run (and passed to ``on_done``); the others play on. ``emit_for(name)`` gives each book's
    listener. Cancelling the call stops every book (an epoch in flight is not written). A book played from its
    stored settings builds its stored endpoints only when ``trust_stored``; otherwise that book fails with one line.
    """
    trust = EndpointTrust(stored=trust_stored)
    emit_for = emit_for or (lambda _name: _ignore)
    runs = [BookRun(plan.name) for plan in plans]
    if plans and all(plan.error is not None for plan in plans):  # nothing to play: the database is not touched
        for plan, run in zip(plans, runs, strict=True):
            run.error = plan.error
            if on_done is not None:
                on_done(run)
        return runs
    url = prepare(settings)
    shared = SharedModels()
    pool_size = min(MAX_POOL, 2 + 2 * len(plans))
    try:
        directors: dict[UUID, Director] = {}
        async with (
            open_store(url, max_size=pool_size) as store,
            store.book_locks() as locks,
            _durably(url, store, shared, directors, durable, trust) as host,
        ):

            async def play_one(plan: BookPlan, run: BookRun) -> None:
                try:
                    if plan.error is not None:
                        raise plan.error
                    book, config = await _find_or_create(
                        store, plan.name, plan.config, max_tokens=max_tokens, seed=seed, seed_offset=plan.seed_offset,
                        trust=trust,
                    )
                    async with locks.hold(book):
                        models = ModelPool(
                            config, prebuilt=dict(prebuilt or {}), prebuilt_embedder=prebuilt_embedder, shared=shared
                        )
                        async with _seated(store, book, config, models, emit_for(plan.name)) as director:
                            if host is not None:
                                host.register(director)
                            try:
                                for _ in range(epochs):
                                    run.stopped = await director.budget_reached()
                                    if run.stopped is not None:
                                        break
                                    run.outcomes.append(await director.play_epoch_with_retries())
                            finally:
                                directors.pop(book.book_id, None)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # one book's failure never stops the others
                    run.error = exc
                if on_done is not None:
                    on_done(run)

            await asyncio.gather(*(play_one(plan, run) for plan, run in zip(plans, runs, strict=True)))
    finally:
        await shared.aclose()
    return runs


def _ignore(_event: object) -> None:
    return None
