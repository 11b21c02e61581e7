"""The deck's read path: read-only connections (a write fails), the live fingerprint, search, the risk rule."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from spacetime.adapters.llm.fake import HashEmbedder
from spacetime.adapters.pg.deck import DeckReader, connect_read_only, read_only_kwargs
from spacetime.deck import data
from spacetime.deck.figures import DANGER_BAND, standings
from tests.deck.conftest import SEMANTIC_DIM, DeckDB
from tests.deck.fill import play_more

WRITES = [
    "INSERT INTO books (name, topic) VALUES ('sneaky', 'x')",
    "UPDATE agents SET rating = 0",
    "DELETE FROM peer_votes",
    "CREATE TABLE deck_was_here (x int)",
]


@pytest.mark.parametrize("sql", WRITES)
def test_a_write_through_the_decks_connection_fails(deck_db: DeckDB, sql: str) -> None:
    reader = data.reader(deck_db.url)  # the very pool the app uses
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        reader.rows(sql)
    with connect_read_only(deck_db.url) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute(sql)
    with psycopg.connect(deck_db.url) as conn:
        assert conn.execute("SELECT count(*) FROM books WHERE name = 'sneaky'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM agents WHERE rating = 0").fetchone() == (0,)


def test_deck_sessions_are_read_only_and_visible_to_db_stop(deck_db: DeckDB) -> None:
    reader = DeckReader(deck_db.url)
    try:
        row = reader.rows("SELECT current_setting('default_transaction_read_only') AS ro, "
                          "current_setting('application_name') AS app, current_setting('statement_timeout') AS st")[0]
    finally:
        reader.close()
    assert row == {"ro": "on", "app": "spacetime", "st": "15s"}


def test_options_already_in_the_url_are_kept() -> None:
    url = "postgresql://u@h/db?options=-c%20search_path%3Dbooks"
    options = read_only_kwargs(url)["options"]
    assert options.startswith("-c search_path=books ") and "default_transaction_read_only=on" in options


def test_version_moves_with_each_epoch_and_each_new_agent(migrated_url: str) -> None:
    reader = DeckReader(migrated_url)
    try:
        empty = reader.version(None)
        assert (empty.books, empty.latest_epoch) == (0, 0)
        asyncio.run(play_more(migrated_url, "v", 2))
        book_id = reader.books()[0]["book_id"]
        two = reader.version(book_id)
        assert (two.books, two.latest_epoch, two.epochs, two.agents, two.alive) == (1, 2, 2, 8, 6)
        asyncio.run(play_more(migrated_url, "v", 1))
        assert reader.version(book_id).latest_epoch == 3 and reader.version(book_id) != two
    finally:
        reader.close()


def test_semantic_search_is_exact_and_stays_in_its_book_and_vector_space(deck_db: DeckDB) -> None:
    reader = DeckReader(deck_db.url)
    try:
        books = {b["name"]: b["book_id"] for b in reader.books()}
        embedder = HashEmbedder(dim=SEMANTIC_DIM)
        (query,) = asyncio.run(embedder.embed(["memory and forgetting"]))
        hits = reader.search_vectors(books[deck_db.semantic], embedder.name, query, limit=50)
        assert hits and all(h["excerpt"].startswith("On ") for h in hits)  # never the other books' drafts
        distances = [h["distance"] for h in hits]
        assert distances == sorted(distances)
        assert hits[0]["excerpt"].startswith("On memory and forgetting")
        assert len(hits) == 6 + 6 * 5  # every chapter and every losing draft of the 6 epochs: exact, not approximate
        assert reader.search_vectors(books[deck_db.big], embedder.name, query) == []  # another vector space
    finally:
        reader.close()


def test_text_search_treats_wildcards_literally(deck_db: DeckDB) -> None:
    reader = DeckReader(deck_db.url)
    try:
        book_id = next(b["book_id"] for b in reader.books() if b["name"] == deck_db.plain)
        assert reader.search_text(book_id, "%") == []
        assert reader.search_text(book_id, "_") == []
        hits = reader.search_text(book_id, "EPOCH 3")
        assert {h["epoch_no"] for h in hits} == {3} and hits[0]["kind"] == "chapter"
    finally:
        reader.close()


def test_standings_flag_who_can_fall_next_epoch() -> None:
    roster = [{"name": "A", "rating": 1600.0}, {"name": "B", "rating": 1500.0},
              {"name": "C", "rating": 1500.0 + DANGER_BAND}, {"name": "D", "rating": 1500.0 + DANGER_BAND + 0.5}]
    out = {s.name: s for s in standings(roster)}
    assert out["B"].risk == "next out" and out["B"].gap == 0
    assert out["C"].risk == "can fall" and out["D"].risk == "safe" and out["A"].risk == "safe"
    assert [s.name for s in standings(roster)] == ["A", "D", "C", "B"]
    tie = {s.name: s.risk for s in standings([{"name": "X", "rating": 1500.0}, {"name": "Y", "rating": 1500.0}])}
    assert tie == {"X": "next out", "Y": "can fall"}
    assert standings([]) == []
