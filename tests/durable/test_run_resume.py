"""A `spacetime run` SIGKILLed in the middle of judgment, then run again: the drafts already written are not
asked for again (each was checkpointed as a DBOS step), the epoch is committed once, and the book goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.process import ServerProcess
from bench.server import LatencyModel
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

AGENTS = 5


def q(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def book_file(tmp_path: Path, base_url: str) -> Path:
    book = tmp_path / "durable.toml"
    book.write_text(f"""
name = "durable"
topic = "Time and its measure"
seed = 5
max_tokens = 64
model = "bench"
embedder = "none"
[endpoints.bench]
kind = "openai"
base_url = "{base_url}"
model = "bench-model"
concurrency = 8
""")
    return book


def wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_run_killed_during_judgment_resumes_without_asking_for_the_drafts_again(
    tmp_path: Path, migrated_url: str
) -> None:
    # drafts answer at once, ballots take 4 s: the kill lands while every ballot is in flight
    model = LatencyModel(ttft_s=0.05, per_token_s=0.0, output_tokens=30, slots=16)
    with ServerProcess(model) as server:
        book = book_file(tmp_path, server.base_url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPACETIME_")}
        env["SPACETIME_DATABASE_URL"] = migrated_url
        server.configure({"ttft_s": 0.05})
        first = subprocess.Popen([sys.executable, "-m", "spacetime", "run", str(book), "--epochs", "1"], env=env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 start_new_session=True)  # fmt: skip
        try:
            wait_for(lambda: server.stats()["by_kind"]["draft"]["requests"] >= AGENTS, 60)
            server.configure({"ttft_s": 4.0})  # from now on every call (the ballots) is slow
            wait_for(lambda: server.stats()["by_kind"]["ballot"]["requests"] + server.stats()["in_flight"] >= 1, 30)
            time.sleep(0.5)
            os.killpg(first.pid, signal.SIGKILL)
        finally:
            first.wait(timeout=30)
            assert first.stderr is not None
            first.stderr.close()
        assert q(migrated_url, "SELECT count(*) FROM simulation_epochs") == [(0,)]
        drafts_before = server.stats()["by_kind"]["draft"]["requests"]
        assert drafts_before == AGENTS

        server.configure({"ttft_s": 0.05})
        server.call("POST", "/stats/reset")
        again = run_cli("run", str(book), "--epochs", "2", env={"SPACETIME_DATABASE_URL": migrated_url}, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
        asked = server.stats()["by_kind"]
    # epoch 1's drafts came from the record; only epoch 2 drafted again
    assert asked["draft"]["requests"] == AGENTS, asked
    assert asked["ballot"]["requests"] >= 2 * AGENTS, asked  # epoch 1's ballots (in flight at the kill) + epoch 2
    assert q(migrated_url, "SELECT epoch_no FROM simulation_epochs ORDER BY epoch_no") == [(1,), (2,)]
    assert q(migrated_url, "SELECT count(*) FROM drafts d JOIN simulation_epochs e USING (epoch_id) "
                           "WHERE e.epoch_no = 1") == [(AGENTS,)]  # fmt: skip
    # the drafts answered from the record were paid for by the killed run: epoch 1's usage counts them once
    assert q(migrated_url, "SELECT calls FROM epoch_usage WHERE epoch_no = 1 AND kind = 'draft'") == [(AGENTS,)]
    statuses = q(migrated_url, "SELECT workflow_uuid, status FROM dbos.workflow_status ORDER BY workflow_uuid")
    assert [s for _, s in statuses] == ["SUCCESS", "SUCCESS"], statuses
