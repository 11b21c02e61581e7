"""The deck's cached view of the store: one read-only pool per process, small ttl'd caches, the book's embedder.

Memory stays flat however long the deck runs: every cache has a ``ttl`` and ``max_entries``. Views that change as
a book grows take the book's :class:`~spacetime.adapters.pg.deck.Version` as part of their key, so a new epoch
shows at once (new key) while old entries age out; one epoch's votes and drafts never change once committed and are
cached by epoch number.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any
from uuid import UUID

import streamlit as st

from spacetime.adapters.llm.registry import build_embedder
from spacetime.adapters.pg.deck import DeckReader, EpochSummary, Overview, Version
from spacetime.adapters.pg.reports import BookUsage, Judging
from spacetime.book import EndpointSpec
from spacetime.deck import ENV_EMBEDDERS, ENV_URL
from spacetime.domain import Book
from spacetime.errors import ConfigError

VersionKey = tuple[int, ...]


def database_url() -> str:
    """The URL given by ``spacetime deck``; otherwise (``streamlit run app.py``) resolved like every command."""
    url = os.environ.get(ENV_URL)
    if url:
        return url
    from spacetime.adapters.pg.connect import database_url as resolve
    from spacetime.config import load_settings

    return resolve(load_settings())


def _close_reader(reader: DeckReader) -> None:
    reader.close()


@st.cache_resource(max_entries=4, show_spinner=False, on_release=_close_reader)
def reader(url: str) -> DeckReader:
    """The process's read-only pool for ``url`` (shared by every browser session)."""
    return DeckReader(url)


def key_of(version: Version) -> VersionKey:
    return (version.books, version.latest_epoch, version.epochs, version.agents, version.alive)


# ---------------------------------------------------------------------------------------------- cached views
@st.cache_data(ttl=60, max_entries=16, show_spinner=False)
def books(url: str, n_books: int) -> list[dict[str, Any]]:
    return reader(url).books()


@st.cache_data(ttl=120, max_entries=16, show_spinner=False)
def overview(url: str, book_id: UUID, version: VersionKey) -> Overview:
    return reader(url).overview(book_id)


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def epoch(url: str, book_id: UUID, epoch_no: int) -> EpochSummary | None:
    return reader(url).epoch(book_id, epoch_no)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def votes(url: str, book_id: UUID, epoch_no: int) -> list[dict[str, Any]]:
    return reader(url).votes(book_id, epoch_no)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def drafts(url: str, book_id: UUID, epoch_no: int) -> list[dict[str, Any]]:
    return reader(url).drafts(book_id, epoch_no)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def ballots(url: str, book_id: UUID, epoch_no: int) -> list[dict[str, Any]]:
    return reader(url).ballots(book_id, epoch_no)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def forfeits(url: str, book_id: UUID, epoch_no: int) -> list[dict[str, Any]]:
    return reader(url).forfeits(book_id, epoch_no)


@st.cache_data(ttl=120, max_entries=16, show_spinner=False)
def roster(url: str, book_id: UUID, version: VersionKey) -> list[dict[str, Any]]:
    return reader(url).roster(book_id)


@st.cache_data(ttl=120, max_entries=16, show_spinner=False)
def recent_deaths(url: str, book_id: UUID, version: VersionKey) -> list[dict[str, Any]]:
    return reader(url).recent_deaths(book_id)


@st.cache_data(ttl=120, max_entries=8, show_spinner=False)
def agents(url: str, book_id: UUID, version: VersionKey) -> list[dict[str, Any]]:
    return reader(url).agents(book_id)


@st.cache_data(ttl=120, max_entries=8, show_spinner=False)
def judging(url: str, book: Book, version: VersionKey) -> Judging:
    return reader(url).judging(book)


@st.cache_data(ttl=120, max_entries=8, show_spinner=False)
def usage(url: str, book: Book, version: VersionKey) -> BookUsage:
    return reader(url).usage(book)


@st.cache_data(ttl=120, max_entries=16, show_spinner=False)
def largest_move(url: str, book_id: UUID, version: VersionKey) -> float | None:
    return reader(url).largest_move(book_id)


@st.cache_data(ttl=120, max_entries=8, show_spinner=False)
def trajectories(url: str, book_id: UUID, version: VersionKey) -> list[tuple[str, int, float, float]]:
    return reader(url).trajectories(book_id)


@st.cache_data(ttl=120, max_entries=8, show_spinner=False)
def chapter_index(url: str, book_id: UUID, version: VersionKey) -> list[dict[str, Any]]:
    return reader(url).chapter_index(book_id)


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def chapter_texts(url: str, book_id: UUID, first: int, last: int) -> list[dict[str, Any]]:
    return reader(url).chapter_texts(book_id, first, last)


@st.cache_data(ttl=300, max_entries=16, show_spinner=False)
def embedding_models(url: str, book_id: UUID, version: VersionKey) -> list[str]:
    return reader(url).embedding_models(book_id)


# ---------------------------------------------------------------------------------------------- search
SpecKey = tuple[str, tuple[tuple[str, Any], ...]]
"""``(endpoint name, spec fields)``: a hashable :class:`EndpointSpec` (a cache key)."""
LOCAL_HINT = "pass its book file to `spacetime deck --book-file BOOK.toml` to use it"


def spec_key(spec: EndpointSpec) -> SpecKey:
    return spec.name, tuple((f.name, getattr(spec, f.name)) for f in fields(spec) if f.name != "name")


@dataclass(frozen=True, slots=True)
class EmbedderChoice:
    """The embedder the deck may use for one book, or why none."""

    spec: SpecKey | None
    note: str | None = None
    """Why there is no embedder to use (shown with the text search)."""


def local_embedders() -> dict[str, EmbedderChoice]:
    """The embedders given on this machine (``spacetime deck --book-file``, in ``SPACETIME_DECK_EMBEDDERS``)."""
    raw = os.environ.get(ENV_EMBEDDERS)
    if not raw:
        return {}
    try:
        given = json.loads(raw)
        out: dict[str, EmbedderChoice] = {}
        for book, entry in given.items():
            if entry["spec"] is None:
                out[book] = EmbedderChoice(None, 'its book file (--book-file) sets embedder = "none"')
            else:
                out[book] = EmbedderChoice(spec_key(EndpointSpec(name=entry["embedder"], **entry["spec"])))
    except (ValueError, TypeError, KeyError, AttributeError, ConfigError) as exc:
        raise ConfigError(f"{ENV_EMBEDDERS} is not what `spacetime deck --book-file` writes ({exc}): unset it"
                          ) from None  # fmt: skip
    return out


def embedder_choice(book_name: str, config: dict[str, Any]) -> EmbedderChoice:
    """The embedder for this book's search. The database never chooses an endpoint, a key or a file: a book file
    given locally (``--book-file``) is trusted for its book; otherwise only the packaged embedded model (an
    ``embedded`` endpoint without a model path) is used, and anything else the stored config names is not called."""
    local = local_embedders().get(book_name)
    if local is not None:
        return local
    name = config.get("embedder", "embedded") if isinstance(config, dict) else None
    if not name or name == "none" or not isinstance(name, str):
        return EmbedderChoice(None, 'this book has no embedder (embedder = "none")')
    endpoints = config.get("endpoints")
    raw = endpoints.get(name) if isinstance(endpoints, dict) else None
    raw = raw if isinstance(raw, dict) else {}
    kind, model = raw.get("kind", "embedded"), raw.get("model")
    if kind == "embedded" and model is None:
        return EmbedderChoice(spec_key(EndpointSpec(name=name, kind="embedded")))  # the packaged model, nothing else
    what = "a model file path" if kind == "embedded" else f"an endpoint of kind {kind!r}"
    return EmbedderChoice(None, f"the book's embedder {name!r} is {what} stored in the database, which the deck does "
                                f"not call on the database's word — {LOCAL_HINT}")  # fmt: skip


class EmbedderHandle:
    """An embedder with its own event loop thread: the deck's script threads call it synchronously, and an
    HTTP embedder's client stays on the one loop it was created on."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self.name: str = embedder.name
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="deck-embedder", daemon=True)
        self.thread.start()

    def embed(self, text: str, *, timeout_s: float = 120.0) -> list[float]:
        future = asyncio.run_coroutine_threadsafe(self.embedder.embed([text]), self.loop)
        return list(future.result(timeout_s)[0])

    def close(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.embedder.aclose(), self.loop).result(10)
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)


def _release_embedder(loaded: tuple[EmbedderHandle | None, str | None]) -> None:
    if loaded[0] is not None:
        loaded[0].close()


@st.cache_resource(max_entries=2, ttl=3600, show_spinner=False, on_release=_release_embedder)
def embedder(name: str, spec_fields: tuple[tuple[str, Any], ...]) -> tuple[EmbedderHandle | None, str | None]:
    """The loaded embedder, or ``(None, why not)``; a failure is remembered for an hour like a success."""
    try:
        built = build_embedder(EndpointSpec(name=name, **dict(spec_fields)))
        handle = EmbedderHandle(built)
    except Exception as exc:  # noqa: BLE001 - any failure means: fall back to text search, and say why
        return None, _reason(exc)
    try:
        handle.embed("warm-up")  # weights load lazily: surface a load failure here, once
    except Exception as exc:  # noqa: BLE001
        handle.close()
        return None, _reason(exc)
    return handle, None


def _reason(exc: BaseException) -> str:
    line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return line[:200]


@st.cache_data(ttl=3600, max_entries=64, show_spinner=False)
def query_vector(name: str, spec_fields: tuple[tuple[str, Any], ...], text: str) -> list[float]:
    handle, why = embedder(name, spec_fields)
    if handle is None:
        raise RuntimeError(why)
    return handle.embed(text)


@dataclass(frozen=True, slots=True)
class SearchResult:
    mode: str
    """``semantic`` (pgvector) or ``text`` (ILIKE)."""
    hits: Sequence[dict[str, Any]]
    note: str | None = None
    """Why the search fell back to plain text, if it did."""
    model: str | None = None


@st.cache_data(ttl=300, max_entries=32, show_spinner=False)
def search(url: str, book_id: UUID, book_name: str, config: dict[str, Any], text: str, version: VersionKey,
           limit: int = 10) -> SearchResult:
    """Semantic search with the book's embedder (:func:`embedder_choice`) when the book has vectors from it, else
    plain text search with a note saying why."""
    choice = embedder_choice(book_name, config)
    spec = choice.spec
    models = embedding_models(url, book_id, version)
    note: str | None
    if spec is None:
        note = choice.note
    elif not models:
        note = "nothing in this book has been embedded"
    else:
        handle, why = embedder(*spec)
        if handle is None:
            note = f"the book's embedder {spec[0]!r} could not be loaded ({why})"
        elif handle.name not in models:
            note = (f"the embedder {spec[0]!r} ({handle.name}) is not the one this book's vectors come from "
                    f"({', '.join(models)})")
        else:
            try:
                vector = query_vector(*spec, text)
            except Exception as exc:  # noqa: BLE001
                note = f"the embedder failed on the query ({_reason(exc)})"
            else:
                hits = reader(url).search_vectors(book_id, handle.name, vector, limit=limit)
                return SearchResult("semantic", hits, model=handle.name)
    return SearchResult("text", reader(url).search_text(book_id, text, limit=limit), note=note)
