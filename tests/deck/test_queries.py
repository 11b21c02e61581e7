"""The deck's read path: read-only connections (a write fails), the live fingerprint, search, the risk rule."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import psycopg
import pytest

from spacetime.adapters.llm.fake import HashEmbedder
from spacetime.adapters.pg.deck import DeckReader, connect_read_only, read_only_kwargs
from spacetime.deck import data
from spacetime.deck.figures import danger_band, matrix_figure, standings
from spacetime.domain import EpochRecord
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
    band = 75.0
    roster = [{"name": "A", "rating": 1600.0}, {"name": "B", "rating": 1500.0},
              {"name": "C", "rating": 1500.0 + band}, {"name": "D", "rating": 1500.0 + band + 0.5}]
    out = {s.name: s for s in standings(roster, band)}
    assert out["B"].risk == "next out" and out["B"].gap == 0
    assert out["C"].risk == "can fall" and out["D"].risk == "safe" and out["A"].risk == "safe"
    assert [s.name for s in standings(roster, band)] == ["A", "D", "C", "B"]
    even = [{"name": "X", "rating": 1500.0}, {"name": "Y", "rating": 1500.0}]
    tie = [(s.name, s.risk) for s in standings(even, band)]
    assert tie == [("Y", "can fall"), ("X", "next out")]  # the one next out is last, also among equal ratings
    assert standings([], band) == []
    unknown = {s.name: s.risk for s in standings(roster, None)}  # no move seen yet: nobody is called safe
    assert unknown == {"A": "can fall", "B": "next out", "C": "can fall", "D": "can fall"}


def test_the_danger_band_is_twice_the_largest_move_and_unknown_before_any() -> None:
    assert danger_band(37.5) == 75.0
    assert danger_band(None) is None and danger_band(0.0) is None


def test_largest_move_is_the_books_own_history(migrated_url: str) -> None:
    def moved(by: float, epoch_no: int) -> Callable[[EpochRecord], EpochRecord]:
        def edit(record: EpochRecord) -> EpochRecord:
            if record.epoch_no != epoch_no:
                return record
            first, *rest = record.ratings
            return dataclasses.replace(record, ratings=(dataclasses.replace(first, after=first.before + by), *rest))
        return edit

    asyncio.run(play_more(migrated_url, "unplayed", 0))
    asyncio.run(play_more(migrated_url, "fell", 3, edit=moved(-150.25, 2)))
    asyncio.run(play_more(migrated_url, "other", 1, edit=moved(400.0, 1)))  # another book's moves never count
    reader = DeckReader(migrated_url)
    try:
        books = {b["name"]: b["book_id"] for b in reader.books()}
        assert reader.largest_move(books["unplayed"]) is None and danger_band(None) is None
        assert reader.largest_move(books["fell"]) == pytest.approx(150.25)  # the fixture's Elo moves are <= 32
        assert reader.largest_move(books["other"]) == pytest.approx(400.0)
    finally:
        reader.close()


def test_largest_move_agrees_with_the_trajectories(deck_db: DeckDB) -> None:
    reader = DeckReader(deck_db.url)
    try:
        book_id = next(b["book_id"] for b in reader.books() if b["name"] == deck_db.big)
        moves = [abs(after - before) for _, _, before, after in reader.trajectories(book_id)]
        assert reader.largest_move(book_id) == pytest.approx(max(moves)) and max(moves) > 0
    finally:
        reader.close()


def test_matrix_hover_shows_the_g_eval_reading_when_there_is_one() -> None:
    drafts = [{"author": "A", "alias": "Scribe_1"}, {"author": "B<i>", "alias": "<b>Scribe_2</b>"}]
    votes = [
        {"voter": "A", "target": "B<i>", "alias": "<b>Scribe_2</b>", "insight_score": 5, "expected_score": 6.44,
         "rationale": "deep <script>"},
        {"voter": "B<i>", "target": "A", "alias": "Scribe_1", "insight_score": 7, "expected_score": None,
         "rationale": "clear"},
    ]
    heat = matrix_figure(votes, drafts).data[0]
    z, text, hover = heat.z, heat.text, heat.hovertext
    assert (z[0][1], text[0][1]) == (5, "5")  # the cell shows the integer as written, never the reading
    assert "insight <b>5</b>/10 · G-Eval 6.4" in hover[0][1]
    assert (z[1][0], text[1][0]) == (7, "7")
    assert "insight <b>7</b>/10" in hover[1][0] and "G-Eval" not in hover[1][0]
    assert "&lt;script&gt;" in hover[0][1] and "&lt;b&gt;Scribe_2&lt;/b&gt;" in hover[0][1]
    assert "B&lt;i&gt;" in hover[0][1] and "<i>" not in hover[0][1]
