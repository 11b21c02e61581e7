"""The Epistemic Deck's read-only queries (the only SQL the Streamlit deck runs).

``spacetime deck`` connects as the read-only role ``spacetime_deck`` (``roles.py``: SELECT on our tables, nothing
else), so the deck cannot change a book, whatever its code does. Belt and braces, every connection is also opened
with ``default_transaction_read_only = on`` (libpq ``options``): a write fails with ``ReadOnlySqlTransaction`` even
on a URL whose user could write, unless the statement first turns that setting off.
Queries aggregate in SQL and pull only what one view shows (one epoch's votes and drafts, chapter titles without
texts, one page of texts), so a 1,000-epoch book renders quickly. Results are plain dicts, tuples and small frozen
dataclasses (picklable: the deck caches them with ``st.cache_data``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from spacetime.adapters.pg import reports
from spacetime.adapters.pg.connect import APPLICATION_NAME, connect_error
from spacetime.adapters.pg.reports import BookUsage, Judging
from spacetime.domain import Book
from spacetime.errors import StoreError

READ_ONLY_OPTIONS = "-c default_transaction_read_only=on -c statement_timeout=15000"
"""Server settings of every deck connection: read-only transactions, and no query runs longer than 15 s."""

EXCERPT_CHARS = 400


@dataclass(frozen=True, slots=True)
class Version:
    """What the live poll compares: when any field changes, the deck re-renders."""

    books: int
    latest_epoch: int
    epochs: int
    agents: int
    alive: int


@dataclass(frozen=True, slots=True)
class Overview:
    """The book's headline figures."""

    chapters: int
    alive: int
    eliminated: int
    leader: str | None
    """The best-rated living agent."""


@dataclass(frozen=True, slots=True)
class EpochSummary:
    """One epoch: who won the chapter, who was eliminated, how long it took."""

    epoch_id: UUID
    epoch_no: int
    start_time: datetime
    end_time: datetime | None
    winner: str | None
    loser: str | None
    chapter_title: str | None
    chapter_position: int | None
    active: int
    """How many agents played it."""
    forfeits: int


def read_only_kwargs(url: str) -> dict[str, Any]:
    """Connection keywords that make every transaction read-only (kept on top of any ``options`` in ``url``)."""
    try:
        existing = conninfo_to_dict(url).get("options") or ""
    except psycopg.ProgrammingError:
        existing = ""
    options = f"{existing} {READ_ONLY_OPTIONS}".strip()
    return {"options": options, "application_name": APPLICATION_NAME, "autocommit": True}


def connect_read_only(url: str, *, timeout_s: int = 10) -> psycopg.Connection:
    """One read-only connection (the deck's pool uses the same settings)."""
    try:
        return psycopg.connect(url, connect_timeout=timeout_s, **read_only_kwargs(url))
    except psycopg.Error as exc:
        raise connect_error(url, exc) from None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


class DeckReader:
    """Read-only access to a Space Time database, shared by the deck's sessions (thread-safe).

    A ``psycopg_pool.ConnectionPool`` of read-only connections (one kept open, up to ``max_size`` while queries run
    at once), opened on first use after one direct connection: an unreachable database fails at once with the
    connection's own error (a pool only tells that it timed out; when it does later, a direct connection says
    why). Each connection is checked when taken from the pool (a connection that broke, e.g. the database
    restarted, is replaced), and a query that loses its connection is retried once on a new one."""

    def __init__(self, url: str, *, max_size: int = 8, timeout_s: int = 5) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.pool = ConnectionPool(
            url,
            kwargs={**read_only_kwargs(url), "connect_timeout": timeout_s},
            min_size=1,
            max_size=max_size,
            open=False,
            check=ConnectionPool.check_connection,
            name="spacetime-deck",
            timeout=timeout_s,
        )
        self._opening = threading.Lock()
        self._opened = False

    def close(self) -> None:
        self.pool.close()

    def _open(self) -> None:
        with self._opening:
            if not self._opened:
                connect_read_only(self.url, timeout_s=self.timeout_s).close()
                self.pool.open(wait=False)
                self._opened = True

    def _connection(self) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        if not self._opened:
            self._open()
        return self.pool.connection()

    def _why_no_connection(self) -> StoreError:
        """The pool timed out: connect once directly for the reason (raised), else the pool was busy."""
        connect_read_only(self.url, timeout_s=self.timeout_s).close()
        return StoreError(
            f"the deck's {self.pool.max_size} database connections stayed busy for {self.timeout_s} s: try again"
        )

    def rows(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """All rows of one (read-only) query as dicts."""
        for attempt in (1, 2):
            try:
                with self._connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                    cur.execute(sql, params)
                    return cur.fetchall() if cur.description is not None else []
            except PoolTimeout:
                raise self._why_no_connection() from None
            except psycopg.errors.QueryCanceled:
                raise StoreError("a deck query ran longer than 15 s and was cancelled (statement_timeout)") from None
            except psycopg.OperationalError as exc:
                if attempt == 1:
                    continue  # the connection broke under the query (the pool drops it): once more on a new one
                raise connect_error(self.url, exc) from None
            except psycopg.errors.UndefinedTable:
                raise StoreError(
                    "the database has no Space Time schema yet: run `spacetime db migrate` or start a book with "
                    "`spacetime run`"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ books and the live version
    def judging(self, book: Book) -> Judging:
        """How ``book`` has been judged (the same queries and audit as ``spacetime status --json``)."""
        b = {"b": book.book_id}
        queries = (reports.AUDIT_VOTES, reports.AGENT_NAMES, reports.FLAGGED_DRAFTS, reports.LAST_CONFIDENCE)
        return reports.judging_of(book, *(self.rows(q, b) for q in queries))

    def usage(self, book: Book) -> BookUsage:
        """What the book's calls used and cost, epoch by epoch (the same query as ``spacetime status --json``)."""
        return reports.usage_of(book, self.rows(reports.EPOCH_USAGE, {"b": book.book_id}))

    def books(self) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT b.book_id, b.name, b.topic, b.config, b.created_at, "
            "(SELECT coalesce(max(e.epoch_no), 0) FROM simulation_epochs e WHERE e.book_id = b.book_id) AS epochs "
            "FROM books b ORDER BY b.created_at DESC, b.name"
        )

    def version(self, book_id: UUID | None) -> Version:
        """Cheap (index-only) fingerprint of what the deck shows; polled every 2 s."""
        row = self.rows(
            "SELECT (SELECT count(*) FROM books) AS books, "
            "(SELECT coalesce(max(epoch_no), 0) FROM simulation_epochs WHERE book_id = %(b)s) AS latest, "
            "(SELECT count(*) FROM simulation_epochs WHERE book_id = %(b)s) AS epochs, "
            "(SELECT count(*) FROM agents WHERE book_id = %(b)s) AS agents, "
            "(SELECT count(*) FROM agents WHERE book_id = %(b)s AND status = 'alive') AS alive",
            {"b": book_id},
        )[0]
        return Version(row["books"], row["latest"], row["epochs"], row["agents"], row["alive"])

    def overview(self, book_id: UUID) -> Overview:
        row = self.rows(
            "SELECT (SELECT count(*) FROM chapters WHERE book_id = %(b)s) AS chapters, "
            "(SELECT count(*) FROM agents WHERE book_id = %(b)s AND status = 'alive') AS alive, "
            "(SELECT count(*) FROM agents WHERE book_id = %(b)s AND status = 'eliminated') AS eliminated, "
            "(SELECT name FROM agents WHERE book_id = %(b)s AND status = 'alive' "
            "  ORDER BY rating DESC, name LIMIT 1) AS leader",
            {"b": book_id},
        )[0]
        return Overview(row["chapters"], row["alive"], row["eliminated"], row["leader"])

    # ------------------------------------------------------------------ one epoch
    def epoch(self, book_id: UUID, epoch_no: int) -> EpochSummary | None:
        found = self.rows(
            "SELECT e.epoch_id, e.epoch_no, e.start_time, e.end_time, w.name AS winner, l.name AS loser, "
            "c.title AS chapter_title, c.position AS chapter_position, cardinality(e.active_agent_ids) AS active, "
            "(SELECT count(*) FROM forfeits f WHERE f.epoch_id = e.epoch_id) AS forfeits "
            "FROM simulation_epochs e "
            "LEFT JOIN agents w ON w.agent_id = e.winner_agent_id "
            "LEFT JOIN agents l ON l.agent_id = e.loser_agent_id "
            "LEFT JOIN chapters c ON c.epoch_id = e.epoch_id "
            "WHERE e.book_id = %s AND e.epoch_no = %s",
            (book_id, epoch_no),
        )
        return EpochSummary(**found[0]) if found else None

    def votes(self, book_id: UUID, epoch_no: int) -> list[dict[str, Any]]:
        """Every vote of one epoch with the target draft's alias and penalties (aliases revealed: post-collapse), and
        its G-Eval reading ``expected_score`` (``None`` when the judge's backend gave no log-probabilities)."""
        return self.rows(
            "SELECT v.voter_agent AS voter, v.target_agent AS target, v.target_alias AS alias, v.insight_score, "
            "v.expected_score, v.latency_penalty, v.rationale, v.excerpted, d.truncated, d.truncation_penalty, "
            "d.lateness_penalty "
            "FROM simulation_epochs e JOIN peer_votes v USING (epoch_id) "
            "LEFT JOIN drafts d ON d.epoch_id = e.epoch_id AND d.agent_id = v.target_agent_id "
            "WHERE e.book_id = %s AND e.epoch_no = %s ORDER BY v.voter_agent, v.target_agent",
            (book_id, epoch_no),
        )

    def drafts(self, book_id: UUID, epoch_no: int) -> list[dict[str, Any]]:
        """The drafts of one epoch, best score first, with their texts (an epoch has a handful)."""
        return self.rows(
            "SELECT a.name AS author, d.alias, d.text, d.prompt_tokens, d.completion_tokens, d.finish_reason, "
            "d.truncated, d.latency_s, d.mean_insight, d.truncation_penalty, d.lateness_penalty, d.score, "
            "d.votes_received, (d.agent_id = e.winner_agent_id) AS winner, (d.agent_id = e.loser_agent_id) AS loser, "
            "b.status AS ballot "
            "FROM simulation_epochs e JOIN drafts d USING (epoch_id) JOIN agents a ON a.agent_id = d.agent_id "
            "LEFT JOIN ballots b ON b.epoch_id = e.epoch_id AND b.voter_agent_id = d.agent_id "
            "WHERE e.book_id = %s AND e.epoch_no = %s "
            "ORDER BY (d.agent_id = e.winner_agent_id) DESC, d.score DESC NULLS LAST, a.name",
            (book_id, epoch_no),
        )

    def ballots(self, book_id: UUID, epoch_no: int) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT a.name AS voter, b.status, b.problems FROM simulation_epochs e JOIN ballots b USING (epoch_id) "
            "JOIN agents a ON a.agent_id = b.voter_agent_id WHERE e.book_id = %s AND e.epoch_no = %s ORDER BY a.name",
            (book_id, epoch_no),
        )

    def forfeits(self, book_id: UUID, epoch_no: int) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT a.name AS agent, f.reason FROM simulation_epochs e JOIN forfeits f USING (epoch_id) "
            "JOIN agents a ON a.agent_id = f.agent_id WHERE e.book_id = %s AND e.epoch_no = %s ORDER BY a.name",
            (book_id, epoch_no),
        )

    # ------------------------------------------------------------------ agents and ratings
    def roster(self, book_id: UUID) -> list[dict[str, Any]]:
        """Living agents by rating, with their last rating change."""
        return self.rows(
            "SELECT a.name, p.discipline, a.rating, a.born_epoch, a.model, p.origin, "
            "(SELECT r.rating_after - r.rating_before FROM ratings r JOIN simulation_epochs e USING (epoch_id) "
            "  WHERE r.agent_id = a.agent_id ORDER BY e.epoch_no DESC LIMIT 1) AS last_change, "
            "(SELECT count(*) FROM ratings r WHERE r.agent_id = a.agent_id) AS epochs_played "
            "FROM agents a JOIN personas p USING (persona_id) "
            "WHERE a.book_id = %s AND a.status = 'alive' ORDER BY a.rating DESC, a.name",
            (book_id,),
        )

    def recent_deaths(self, book_id: UUID, limit: int = 5) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT a.name, a.died_epoch, a.rating, a.cause_of_death, n.name AS replaced_by "
            "FROM agents a LEFT JOIN agents n ON n.replaced_agent_id = a.agent_id "
            "WHERE a.book_id = %s AND a.status = 'eliminated' ORDER BY a.died_epoch DESC, a.name LIMIT %s",
            (book_id, limit),
        )

    def agents(self, book_id: UUID) -> list[dict[str, Any]]:
        """Every agent of the book (living and dead) with its persona's origin and parents and whom it replaced."""
        return self.rows(
            "SELECT a.agent_id, a.name, a.status, a.rating, a.born_epoch, a.died_epoch, a.cause_of_death, "
            "a.replaced_agent_id, r.name AS replaced, p.origin, p.parents, p.discipline "
            "FROM agents a JOIN personas p USING (persona_id) LEFT JOIN agents r ON r.agent_id = a.replaced_agent_id "
            "WHERE a.book_id = %s ORDER BY a.born_epoch, a.created_at, a.name",
            (book_id,),
        )

    def largest_move(self, book_id: UUID) -> float | None:
        """The largest one-epoch rating change of the book, ``max |rating_after − rating_before|`` over its
        ``ratings`` rows; ``None`` before its first epoch."""
        row = self.rows(
            "SELECT max(abs(r.rating_after - r.rating_before)) AS largest "
            "FROM simulation_epochs e JOIN ratings r USING (epoch_id) WHERE e.book_id = %s",
            (book_id,),
        )[0]
        largest: float | None = row["largest"]
        return largest

    def trajectories(self, book_id: UUID) -> list[tuple[str, int, float, float]]:
        """Every rating change of the book in one query: (agent, epoch_no, rating_before, rating_after),
        ordered by agent then epoch."""
        rows = self.rows(
            "SELECT a.name, e.epoch_no, r.rating_before, r.rating_after "
            "FROM simulation_epochs e JOIN ratings r USING (epoch_id) JOIN agents a ON a.agent_id = r.agent_id "
            "WHERE e.book_id = %s ORDER BY a.born_epoch, a.name, e.epoch_no",
            (book_id,),
        )
        return [(r["name"], r["epoch_no"], r["rating_before"], r["rating_after"]) for r in rows]

    # ------------------------------------------------------------------ the canon and search
    def chapter_index(self, book_id: UUID) -> list[dict[str, Any]]:
        """Titles without texts (a 1,000-chapter book stays light)."""
        return self.rows(
            "SELECT c.position, c.title, e.epoch_no, a.name AS author, length(c.text) AS chars "
            "FROM chapters c JOIN simulation_epochs e USING (epoch_id) JOIN agents a ON a.agent_id = c.agent_id "
            "WHERE c.book_id = %s ORDER BY c.position",
            (book_id,),
        )

    def chapter_texts(self, book_id: UUID, first: int, last: int) -> list[dict[str, Any]]:
        """Chapters ``first``..``last`` (positions, inclusive) with their texts."""
        return self.rows(
            "SELECT c.position, c.title, c.text, e.epoch_no, a.name AS author "
            "FROM chapters c JOIN simulation_epochs e USING (epoch_id) JOIN agents a ON a.agent_id = c.agent_id "
            "WHERE c.book_id = %s AND c.position BETWEEN %s AND %s ORDER BY c.position",
            (book_id, first, last),
        )

    def embedding_models(self, book_id: UUID) -> list[str]:
        """The vector spaces this book's chapters were embedded in (usually one)."""
        rows = self.rows(
            "SELECT DISTINCT embedding_model FROM chapters WHERE book_id = %s AND embedding_model IS NOT NULL",
            (book_id,),
        )
        return sorted(r["embedding_model"] for r in rows)

    def search_vectors(
        self, book_id: UUID, model: str, vector: Sequence[float], *, limit: int = 10
    ) -> list[dict[str, Any]]:
        """Exact cosine search (pgvector ``<=>``) over this book's chapters and the drafts that lost (a winning
        draft is its chapter), in one vector space. No approximate index: a filtered exact scan never returns
        too few rows."""
        params = {"b": book_id, "m": model, "q": _vector_literal(vector), "k": limit, "n": EXCERPT_CHARS}
        return self.rows(
            "SELECT * FROM ("
            " (SELECT 'chapter' AS kind, c.position, e.epoch_no, a.name AS author, c.title AS label, "
            "   left(c.text, %(n)s) AS excerpt, true AS winner, c.embedding <=> %(q)s::vector AS distance "
            "  FROM chapters c JOIN simulation_epochs e USING (epoch_id) JOIN agents a ON a.agent_id = c.agent_id "
            "  WHERE c.book_id = %(b)s AND c.embedding_model = %(m)s AND c.embedding IS NOT NULL "
            "  ORDER BY distance LIMIT %(k)s)"
            " UNION ALL "
            " (SELECT 'draft', NULL, e.epoch_no, a.name, d.alias, left(d.text, %(n)s), "
            "   false, d.embedding <=> %(q)s::vector AS distance "
            "  FROM simulation_epochs e JOIN drafts d USING (epoch_id) JOIN agents a ON a.agent_id = d.agent_id "
            "  WHERE e.book_id = %(b)s AND d.embedding_model = %(m)s AND d.embedding IS NOT NULL "
            "  AND d.agent_id IS DISTINCT FROM e.winner_agent_id "
            "  ORDER BY distance LIMIT %(k)s)"
            ") hits ORDER BY distance, kind LIMIT %(k)s",
            params,
        )

    def search_text(self, book_id: UUID, text: str, *, limit: int = 10) -> list[dict[str, Any]]:
        """Plain case-insensitive substring search (the fallback when no embedder is available)."""
        params = {"b": book_id, "p": _like(text), "k": limit, "n": EXCERPT_CHARS}
        return self.rows(
            "SELECT * FROM ("
            " (SELECT 'chapter' AS kind, c.position, e.epoch_no, a.name AS author, c.title AS label, "
            "   left(c.text, %(n)s) AS excerpt, true AS winner "
            "  FROM chapters c JOIN simulation_epochs e USING (epoch_id) JOIN agents a ON a.agent_id = c.agent_id "
            "  WHERE c.book_id = %(b)s AND (c.text ILIKE %(p)s OR c.title ILIKE %(p)s) "
            "  ORDER BY c.position DESC LIMIT %(k)s)"
            " UNION ALL "
            " (SELECT 'draft', NULL, e.epoch_no, a.name, d.alias, left(d.text, %(n)s), "
            "   false "
            "  FROM simulation_epochs e JOIN drafts d USING (epoch_id) JOIN agents a ON a.agent_id = d.agent_id "
            "  WHERE e.book_id = %(b)s AND d.text ILIKE %(p)s AND d.agent_id IS DISTINCT FROM e.winner_agent_id "
            "  ORDER BY e.epoch_no DESC LIMIT %(k)s)"
            ") hits ORDER BY kind, epoch_no DESC LIMIT %(k)s",
            params,
        )
