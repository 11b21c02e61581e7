"""The schema against the real embedded PostgreSQL: migrations, the spec's tables, constraints."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from spacetime.adapters.pg.migrations import migrate, migrations


def _columns(conn: psycopg.Connection, table: str) -> dict[str, tuple[str, str | None]]:
    rows = conn.execute(
        "SELECT column_name, data_type, column_default FROM information_schema.columns WHERE table_name = %s",
        (table,),
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_migrate_from_empty_then_rerun_is_idempotent(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        first = migrate(conn)
        second = migrate(conn)
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert first == [m.version for m in migrations()]
    assert second == []
    assert versions == first


def test_migrations_raced_by_two_processes(fresh_db_url: str) -> None:
    code = "import sys, psycopg; from spacetime.adapters.pg.migrations import migrate; " \
           "c = psycopg.connect(sys.argv[1], autocommit=True); print(len(migrate(c)))"
    procs = [subprocess.Popen([sys.executable, "-c", code, fresh_db_url], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    # exactly one of them applied everything, the other found nothing to do
    assert sorted(outs) == ["0", str(len(migrations()))]
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(migrations())


def test_spec_tables_exactly_as_specified(migrated_url: str) -> None:
    with psycopg.connect(migrated_url) as conn:
        epochs = _columns(conn, "simulation_epochs")
        votes = _columns(conn, "peer_votes")
        assert epochs["epoch_id"][0] == "uuid" and "gen_random_uuid()" in (epochs["epoch_id"][1] or "")
        assert epochs["start_time"][0] == "timestamp without time zone" and "now()" in (epochs["start_time"][1] or "")
        assert epochs["active_agent_ids"][0] == "ARRAY"
        assert epochs["winner_agent_id"][0] == "uuid" and epochs["loser_agent_id"][0] == "uuid"
        assert {k: v[0] for k, v in votes.items() if k in (
            "vote_id", "epoch_id", "voter_agent", "target_agent", "insight_score", "latency_penalty", "rationale")} == {
            "vote_id": "uuid", "epoch_id": "uuid", "voter_agent": "character varying",
            "target_agent": "character varying", "insight_score": "integer", "latency_penalty": "double precision",
            "rationale": "text"}
        lengths = dict(conn.execute(
            "SELECT column_name, character_maximum_length FROM information_schema.columns "
            "WHERE table_name = 'peer_votes' AND data_type = 'character varying' "
            "AND column_name IN ('voter_agent', 'target_agent')").fetchall())
        assert lengths == {"voter_agent": 50, "target_agent": 50}
        elem = conn.execute("SELECT udt_name FROM information_schema.columns WHERE table_name = 'simulation_epochs' "
                            "AND column_name = 'active_agent_ids'").fetchone()[0]
        assert elem == "_uuid"
        cons = conn.execute(
            "SELECT contype, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'peer_votes'::regclass"
        ).fetchall()
        defs = {d for _, d in cons}
        assert "UNIQUE (epoch_id, voter_agent, target_agent)" in defs
        assert "PRIMARY KEY (vote_id)" in defs
        assert "FOREIGN KEY (epoch_id) REFERENCES simulation_epochs(epoch_id)" in defs
        assert "CHECK (((insight_score >= 1) AND (insight_score <= 10)))" in defs
        pk = conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                          "WHERE conrelid = 'simulation_epochs'::regclass AND contype = 'p'").fetchone()[0]
        assert pk == "PRIMARY KEY (epoch_id)"
        ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        assert ext is not None


def test_unique_vote_constraint_is_enforced(migrated_url: str) -> None:
    with psycopg.connect(migrated_url, autocommit=True) as conn:
        book = conn.execute("INSERT INTO books (name, topic) VALUES ('b', 't') RETURNING book_id").fetchone()[0]
        epoch = conn.execute("INSERT INTO simulation_epochs (book_id, epoch_no) VALUES (%s, 1) RETURNING epoch_id",
                             (book,)).fetchone()[0]
        insert = ("INSERT INTO peer_votes (vote_id, epoch_id, voter_agent, target_agent, insight_score, rationale) "
                  "VALUES (gen_random_uuid(), %s, 'A', 'B', %s, 'x')")
        conn.execute(insert, (epoch, 5))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, (epoch, 6))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(insert.replace("'B'", "'C'"), (epoch, 0))
