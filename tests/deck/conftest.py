"""Deck fixtures: one shared, read-only 200-epoch database per session; clean Streamlit caches per test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from spacetime.adapters.llm.fake import HashEmbedder
from spacetime.adapters.pg.store import open_store
from spacetime.deck import APP_PATH, ENV_URL
from tests.deck.fill import drop_database, fill_book, new_database

BIG_EPOCHS = 200
SEMANTIC_DIM = 16


@dataclass(frozen=True)
class DeckDB:
    url: str
    big: str
    """The 200-epoch book (embedder "embedded", factory vectors of model ``test-hash``)."""
    semantic: str
    """A 6-epoch book whose drafts and chapters were embedded by ``HashEmbedder(16)``."""
    plain: str
    """A 3-epoch book with ``embedder = "none"``."""


@pytest.fixture(scope="session")
def deck_db(pg_server_url: str) -> Iterator[DeckDB]:
    name, url = new_database(pg_server_url)

    async def fill() -> None:
        async with open_store(url, max_size=2) as store:
            await fill_book(store, "plain-book", 3, config={"embedder": "none"}, topic="Plain")
            await fill_book(store, "semantic-book", 6, semantic=HashEmbedder(dim=SEMANTIC_DIM), topic="Semantic")
            await fill_book(store, "time-book", BIG_EPOCHS, topic="What is time?")

    asyncio.run(fill())
    yield DeckDB(url, "time-book", "semantic-book", "plain-book")
    drop_database(pg_server_url, name)


@pytest.fixture(autouse=True)
def _clean_streamlit_caches() -> Iterator[None]:
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


MakeApp = Callable[[str], AppTest]


@pytest.fixture
def deck_app(monkeypatch: pytest.MonkeyPatch) -> MakeApp:
    """``deck_app(url)`` → an AppTest of the deck on that database (not yet run)."""

    def make(url: str) -> AppTest:
        monkeypatch.setenv(ENV_URL, url)
        return AppTest.from_file(str(APP_PATH), default_timeout=60)

    return make
