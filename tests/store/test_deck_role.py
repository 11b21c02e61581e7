"""The deck's read-only role on the real embedded PostgreSQL: the deck's own connection cannot write even with its
session's read-only setting switched off, reads every table it queries, nothing else, and the grants follow later
migrations."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from spacetime.adapters.pg import embedded
from spacetime.adapters.pg import migrations as migrations_module
from spacetime.adapters.pg.connect import ENV_DECK_DATABASE_URL, deck_database_url
from spacetime.adapters.pg.deck import DeckReader
from spacetime.adapters.pg.migrations import Migration, grant_deck_role, migrate, our_tables
from spacetime.adapters.pg.roles import DECK_ROLE, deck_role_problem, role_url
from spacetime.adapters.pg.store import open_store
from spacetime.cli.app import app
from spacetime.config import Settings
from spacetime.deck import ENV_URL
from tests.conftest import scratch_database
from tests.deck.fill import fill_book

WRITES = [
    "INSERT INTO books (name, topic) VALUES ('sneaky', 'x')",
    "UPDATE agents SET rating = 0",
    "DELETE FROM peer_votes",
    "TRUNCATE ratings",
    "CREATE TABLE deck_was_here (x int)",
    "CREATE TABLE public.deck_was_here (x int)",
]


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    """A data dir of our own: `spacetime deck` on the embedded server migrates its `postgres` database and
    creates the (server-wide) role, which the session's shared server should not see."""
    path = Path(tempfile.mkdtemp(prefix="spacetime-test-deck-role-"))
    embedded.start(path)
    yield path
    embedded.stop(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def admin_url(data_dir: Path) -> str:
    url = embedded.running_uri(data_dir)
    assert url is not None
    return url


def spacetime_deck_url(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the real `spacetime deck` command on the embedded server; return the URL it hands to Streamlit."""
    handed: list[str] = []

    def serve(url: str, **_: Any) -> int:
        handed.append(url)
        return 0

    monkeypatch.setattr("spacetime.deck.serve", serve)
    for name in ("SPACETIME_DATABASE_URL", ENV_DECK_DATABASE_URL):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), "deck"])
    assert result.exit_code == 0, result.output
    assert len(handed) == 1
    return handed[0]


@pytest.fixture(scope="module")
def book_name(admin_url: str, data_dir: Path) -> str:
    from spacetime.adapters.pg.connect import prepare

    prepare(Settings(data_dir=data_dir, database_url=None))

    async def fill() -> None:
        async with open_store(admin_url, max_size=2) as store:
            await fill_book(store, "role-book", 4)

    asyncio.run(fill())
    return "role-book"


@pytest.fixture
def fresh_db(admin_url: str) -> Iterator[str]:
    """A new, empty database on this module's server (dropped afterwards)."""
    with scratch_database(admin_url, "r") as url:
        yield url


def test_the_decks_connection_cannot_write_even_with_read_only_switched_off(
    data_dir: Path, book_name: str, admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = spacetime_deck_url(data_dir, monkeypatch)
    reader = DeckReader(url)
    try:
        for sql in WRITES:
            with reader._connection() as conn:
                conn.execute("SET default_transaction_read_only = off")
                assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(sql)
            with reader._connection() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("BEGIN READ WRITE")
                try:
                    conn.execute(sql)
                finally:
                    conn.execute("ROLLBACK")
    finally:
        reader.close()
    with psycopg.connect(admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM books WHERE name = 'sneaky'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM agents WHERE rating = 0").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM ratings").fetchone() != (0,)
        assert conn.execute("SELECT to_regclass('deck_was_here')").fetchone() == (None,)


def test_the_deck_connects_as_its_role_and_keeps_the_session_settings(
    data_dir: Path, book_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = spacetime_deck_url(data_dir, monkeypatch)
    reader = DeckReader(url)
    try:
        row = reader.rows("SELECT current_user AS who, current_setting('default_transaction_read_only') AS ro, "
                          "current_setting('statement_timeout') AS timeout")[0]
    finally:
        reader.close()
    assert row == {"who": DECK_ROLE, "ro": "on", "timeout": "15s"}


def test_the_role_reads_every_table_the_deck_queries(
    data_dir: Path, book_name: str, admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def get_book() -> Any:
        async with open_store(admin_url, max_size=1) as store:
            return await store.get_book(book_name)

    book = asyncio.run(get_book())
    b = book.book_id
    reader = DeckReader(spacetime_deck_url(data_dir, monkeypatch))
    try:
        assert [r["name"] for r in reader.books()] == [book_name]
        assert reader.version(b).epochs == 4
        assert reader.overview(b).chapters == 4
        assert reader.epoch(b, 2) is not None
        assert reader.votes(b, 2) and reader.drafts(b, 2) and reader.ballots(b, 2)
        reader.forfeits(b, 2)
        assert reader.roster(b) and reader.recent_deaths(b) and reader.agents(b)
        assert reader.largest_move(b) is not None and reader.trajectories(b)
        assert len(reader.chapter_index(b)) == 4 and len(reader.chapter_texts(b, 1, 2)) == 2
        models = reader.embedding_models(b)
        assert models
        reader.search_vectors(b, models[0], [0.1] * 8)
        reader.search_text(b, "a")
        reader.judging(book)
        reader.usage(book)
    finally:
        reader.close()


def test_the_role_reads_nothing_but_our_tables(
    data_dir: Path, book_name: str, admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:  # what DBOS and anyone else keep in the database
        conn.execute("CREATE SCHEMA IF NOT EXISTS dbos")
        conn.execute("CREATE TABLE IF NOT EXISTS dbos.workflow_status (workflow_uuid TEXT PRIMARY KEY)")
        conn.execute("CREATE TABLE IF NOT EXISTS public.someone_elses (secret TEXT)")
    url = spacetime_deck_url(data_dir, monkeypatch)
    with psycopg.connect(url, autocommit=True) as conn:
        for sql in ("SELECT * FROM dbos.workflow_status", "SELECT * FROM public.someone_elses",
                    "SELECT * FROM schema_migrations", "INSERT INTO dbos.workflow_status VALUES ('x')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
        for table in our_tables():
            conn.execute(f"SELECT * FROM {table} LIMIT 1")


def test_the_role_is_unprivileged_with_its_own_settings(admin_url: str, book_name: str) -> None:
    with psycopg.connect(admin_url) as conn:
        attrs = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, "
            "(SELECT count(*) FROM pg_auth_members WHERE member = r.oid) FROM pg_roles r WHERE rolname = %s",
            (DECK_ROLE,),
        ).fetchone()
        settings = conn.execute(
            "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
            "WHERE r.rolname = %s AND s.setdatabase = 0", (DECK_ROLE,)
        ).fetchone()
    assert attrs == (True, False, False, False, False, False, 0)
    assert settings is not None
    assert {"statement_timeout=15s", "default_transaction_read_only=on"} <= set(settings[0])
    # the role's own settings hold without the deck's libpq options, and come back after RESET
    with psycopg.connect(role_url(admin_url, DECK_ROLE), autocommit=True) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("15s",)
        conn.execute("SET statement_timeout = 0")
        conn.execute("RESET ALL")
        assert conn.execute("SHOW statement_timeout").fetchone() == ("15s",)
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(16)")


def _acl(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT c.relname, c.relacl::text FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
            "AND c.relkind = 'r' ORDER BY 1"
        ).fetchall()


def test_granting_is_idempotent_and_a_later_migrations_table_is_readable(
    fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, deck_role=True)
        first = _acl(fresh_db)
        migrate(conn, deck_role=True)
        grant_deck_role(conn)
        grant_deck_role(conn)
        assert _acl(fresh_db) == first
        assert all(f"{DECK_ROLE}=r/" in (acl or "") for name, acl in first if name != "schema_migrations")

        later = Migration(len(migrations_module.migrations()) + 1, "later",
                          "CREATE TABLE later_things (id INT PRIMARY KEY); INSERT INTO later_things VALUES (7);")
        shipped = migrations_module.migrations()
        monkeypatch.setattr(migrations_module, "migrations", lambda: [*shipped, later])
        assert "later_things" in our_tables()
        assert migrate(conn) == [later.version]  # as on an external server: the role is granted, not created
    with psycopg.connect(role_url(fresh_db, DECK_ROLE), autocommit=True) as deck:
        assert deck.execute("SELECT id FROM later_things").fetchall() == [(7,)]
        assert deck_role_problem(deck, our_tables()) is None


def test_two_processes_migrating_with_the_role_at_once(fresh_db: str) -> None:
    code = ("import sys, psycopg; from spacetime.adapters.pg.migrations import migrate; "
            "c = psycopg.connect(sys.argv[1], autocommit=True); print(len(migrate(c, deck_role=True)))")
    procs = [subprocess.Popen([sys.executable, "-c", code, fresh_db], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with psycopg.connect(role_url(fresh_db, DECK_ROLE), autocommit=True) as deck:
        assert deck_role_problem(deck, our_tables()) is None


def test_our_tables_are_exactly_the_tables_the_migrations_create(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn)
        tables = {r[0] for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')")}
    assert set(our_tables()) == tables - {"schema_migrations"}


def test_a_deck_url_that_could_write_is_refused(admin_url: str, book_name: str, data_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from spacetime.errors import StoreConfigError

    monkeypatch.setenv(ENV_DECK_DATABASE_URL, admin_url)
    with pytest.raises(StoreConfigError, match="superuser"):
        deck_database_url(Settings(data_dir=data_dir, database_url=None))
    monkeypatch.setenv(ENV_DECK_DATABASE_URL, role_url(admin_url, DECK_ROLE))
    assert deck_database_url(Settings(data_dir=data_dir, database_url=None)) == role_url(admin_url, DECK_ROLE)


def test_the_user_facing_variable_is_the_one_streamlit_reads() -> None:
    assert ENV_DECK_DATABASE_URL == ENV_URL


def test_membership_that_could_write_is_refused_then_taken_back(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn, deck_role=True)
        conn.execute(f"GRANT pg_write_all_data TO {DECK_ROLE}")
        with psycopg.connect(role_url(fresh_db, DECK_ROLE), autocommit=True) as deck:
            assert "member of pg_write_all_data" in (deck_role_problem(deck, our_tables()) or "")
        grant_deck_role(conn)
    with psycopg.connect(role_url(fresh_db, DECK_ROLE), autocommit=True) as deck:
        assert deck_role_problem(deck, our_tables()) is None
        deck.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            deck.execute("DELETE FROM books")


def test_a_schema_everyone_may_create_in_is_a_warning(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrate(conn)
        assert grant_deck_role(conn).warnings == ()
        conn.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")  # the default before PostgreSQL 15
        (warning,) = grant_deck_role(conn).warnings
    assert "REVOKE CREATE ON SCHEMA public FROM PUBLIC" in warning
