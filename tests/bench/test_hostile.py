"""A whole book through the real CLI against a hostile server (``bench/hostile_server.py``): 5xx, a hang past the
timeout, a truncated draft, an injected note, malformed, out-of-range and unknown-alias ballots. The run completes
and every fault the server served is in the record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.hostile_server import FAULTS, GHOST, HostileServerProcess
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def q(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_every_fault_served_is_in_the_record_and_the_run_completes(tmp_path: Path, migrated_url: str) -> None:
    with HostileServerProcess() as server:
        book = tmp_path / "hostile.toml"
        book.write_text(f"""
name = "hostile"
topic = "Time and its measure"
seed = 3
max_tokens = 48
model = "hostile"
embedder = "none"
[endpoints.hostile]
kind = "openai"
base_url = "{server.base_url}"
model = "bench-model"
timeout_s = 1.0
max_retries = 1
""")
        played = run_cli("run", str(book), "--epochs", "2", env={"SPACETIME_DATABASE_URL": migrated_url},
                         timeout=300)  # fmt: skip
        served = server.faults()
    assert played.returncode == 0, played.stderr[-2000:]
    assert "Traceback" not in played.stderr
    kinds = {f["fault"] for f in served}
    assert kinds == set(FAULTS), kinds  # every kind of fault was served at least once

    def by_epoch(sql: str) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for epoch_no, name in q(migrated_url, sql):
            out.setdefault(epoch_no, set()).add(name)
        return out

    forfeits = by_epoch("SELECT e.epoch_no, a.name FROM forfeits f JOIN simulation_epochs e USING (epoch_id) "
                        "JOIN agents a USING (agent_id) WHERE f.reason LIKE '%HTTP 503%'")  # fmt: skip
    truncated = by_epoch("SELECT e.epoch_no, a.name FROM drafts d JOIN simulation_epochs e USING (epoch_id) "
                         "JOIN agents a USING (agent_id) WHERE d.truncated AND d.truncation_penalty = 5")  # fmt: skip
    flagged = by_epoch("SELECT e.epoch_no, a.name FROM drafts d JOIN simulation_epochs e USING (epoch_id) "
                       "JOIN agents a USING (agent_id) WHERE cardinality(d.flags) > 0")  # fmt: skip
    drafted = by_epoch("SELECT e.epoch_no, a.name FROM drafts d JOIN simulation_epochs e USING (epoch_id) "
                       "JOIN agents a USING (agent_id)")  # fmt: skip
    ballots = {(e, n): (s, " | ".join(p)) for e, n, s, p in q(
        migrated_url, "SELECT e.epoch_no, a.name, b.status, b.problems FROM ballots b JOIN simulation_epochs e "
                      "USING (epoch_id) JOIN agents a ON a.agent_id = b.voter_agent_id")}  # fmt: skip
    author = {"Physics": "Physicist", "Finance": "Financier", "Politics": "Politician", "Mathematics": "Mathematician"}
    for f in served:
        epoch, fault = f["chapter"], f["fault"]
        who = author.get(f["who"], f["who"])
        if fault == "draft-503":
            assert who in forfeits.get(epoch, set()), f
        elif fault == "draft-truncated":
            assert who in truncated.get(epoch, set()), f
        elif fault == "draft-injection":
            assert who in flagged.get(epoch, set()), f
        elif fault == "draft-timeout":
            assert who in drafted.get(epoch, set()), f  # retried after the hang: the draft is there
        else:
            status, problems = ballots[(epoch, who)]
            if fault == "ballot-malformed":
                assert status == "abstained" and problems, f
            elif fault == "ballot-out-of-range":
                assert "42" in problems, (f, problems)
            elif fault == "ballot-unknown-alias":
                assert GHOST in problems, (f, problems)
            else:  # ballot-500: retried, then a clean ballot
                assert status == "ok", (f, status, problems)
    # only the faults: nobody else's draft was cut or flagged (the server's drafts fit the cap)
    assert all(names <= {"Financier"} for names in truncated.values()), truncated
    assert all(names <= {"Politician"} for names in flagged.values()), flagged
    assert q(migrated_url, "SELECT count(*) FROM simulation_epochs") == [(2,)]
    assert q(migrated_url, "SELECT count(*) FROM chapters") == [(2,)]
