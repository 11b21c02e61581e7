"""Fleet books through the real CLI: `spacetime submit`, `worker`, `pause`, `resume`, `cancel`, `status`; and the
fault test of docs/benchmarks.md — 3 workers, 20 books × 10 epochs, 20 SIGKILLs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.fleet_faults import book_toml, cli_env, play
from bench.process import ServerProcess
from bench.server import LatencyModel
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def q(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def epochs_of(url: str) -> dict[str, int]:
    return dict(q(url, "SELECT b.name, count(e.epoch_id) FROM books b LEFT JOIN simulation_epochs e USING (book_id) "
                       "GROUP BY b.name"))  # fmt: skip


def fleet_of(url: str) -> dict[str, str | None]:
    shown = run_cli("status", "--json", env={"SPACETIME_DATABASE_URL": url})
    assert shown.returncode == 0, shown.stderr
    return {b["book"]: b["fleet"] for b in json.loads(shown.stdout)["books"]}


def until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_pause_resume_and_cancel_a_fleet_book(tmp_path: Path, migrated_url: str) -> None:
    env = {"SPACETIME_DATABASE_URL": migrated_url}
    with ServerProcess(LatencyModel(ttft_s=0.2, per_token_s=0.0, output_tokens=30, slots=32)) as server:
        book = tmp_path / "fleet.toml"
        book.write_text(book_toml(server.base_url, 8))
        sent = run_cli("submit", str(book), "--books", "2", "--epochs", "6", env=env)
        assert sent.returncode == 0, sent.stderr
        assert "submitted 'fleet-1': epochs 1–6" in sent.stdout
        assert fleet_of(migrated_url) == {"fleet-1": "waiting", "fleet-2": "waiting"}
        worker = subprocess.Popen([sys.executable, "-m", "spacetime", "worker", "--executor-id", "solo",
                                   "--endpoints", str(book)],
                                  env=cli_env(migrated_url), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
        try:
            until(lambda: epochs_of(migrated_url)["fleet-1"] >= 1, 120)
            paused = run_cli("pause", "fleet-1", env=env)
            assert paused.returncode == 0 and "pausing 'fleet-1'" in paused.stdout, paused.stderr
            cancelled = run_cli("cancel", "fleet-2", env=env)
            assert cancelled.returncode == 0 and "cancelled 'fleet-2'" in cancelled.stdout, cancelled.stderr
            until(lambda: fleet_of(migrated_url) == {"fleet-1": "paused", "fleet-2": "cancelled"}, 120)
            held = epochs_of(migrated_url)
            time.sleep(3)
            assert epochs_of(migrated_url) == held  # nothing moves while paused or cancelled
            assert held["fleet-1"] < 6

            refused = run_cli("resume", "fleet-2", env=env)
            assert refused.returncode == 2
            assert refused.stderr.strip().splitlines() == [
                "spacetime: error: book 'fleet-2' was cancelled: `spacetime submit` it again to play more epochs"
            ]
            resumed = run_cli("resume", "fleet-1", env=env)
            assert resumed.returncode == 0 and "resumed 'fleet-1'" in resumed.stdout, resumed.stderr
            until(lambda: fleet_of(migrated_url)["fleet-1"] == "done", 180)
            assert epochs_of(migrated_url)["fleet-1"] == 6
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err[-2000:]
        assert "Traceback" not in err
        assert "fleet-1: epoch 6 committed" in out


def test_a_fleet_under_sigkill_loses_and_repeats_nothing(migrated_url: str) -> None:
    """docs/benchmarks.md "Fleet under fire": 3 workers on this machine, 20 books × 10 epochs, a random worker
    SIGKILLed and restarted under its executor id every 1–4 s, 20 times."""
    report = play(migrated_url, workers=3, books=20, epochs=10, kills=20, kill_every_s=(1.0, 4.0), concurrency=4,
                  timeout_s=1500)  # fmt: skip
    assert report.kills == 20
    assert report.finished_books == 20, report
    assert report.epochs_committed == 200
    assert (report.epochs_missing, report.epochs_duplicated, report.chapters_missing, report.votes_duplicated) == (
        0, 0, 0, 0,
    )  # fmt: skip
    # every draft and ballot call was queued once, under its step's id; the server saw no more than those, the
    # Reaper's breeding calls and the calls a killed worker had in flight
    assert report.step_calls == report.calls_needed, report
    limit = report.calls_needed + report.breeding_calls + report.in_flight_at_kills
    assert report.calls_needed <= report.calls_made <= limit, report
    assert 1 <= report.max_in_flight <= report.concurrency, report  # the endpoint's limit, across all workers
    assert report.ok()


def test_a_worker_does_not_call_endpoints_it_was_not_given(tmp_path: Path, migrated_url: str) -> None:
    """docs/book.md "What is trusted": a worker started without --endpoints or --trust-stored-endpoints fails a book
    on a model server with one line and never calls the server the database names."""
    env = {"SPACETIME_DATABASE_URL": migrated_url}
    with ServerProcess(LatencyModel(ttft_s=0.0, per_token_s=0.0, output_tokens=30, slots=8)) as server:
        book = tmp_path / "fleet.toml"
        book.write_text(book_toml(server.base_url, 4))
        sent = run_cli("submit", str(book), "--epochs", "2", env=env)
        assert sent.returncode == 0, sent.stderr
        worker = subprocess.Popen([sys.executable, "-m", "spacetime", "worker", "--executor-id", "wary"],
                                  env=cli_env(migrated_url), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
        try:
            until(lambda: fleet_of(migrated_url)["fleet"] == "failed", 120)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            _out, err = worker.communicate(timeout=60)
        assert server.stats()["requests"] == 0
        assert epochs_of(migrated_url) == {"fleet": 0}
        assert "Traceback" not in err
        assert "--trust-stored-endpoints" in err and "endpoint bench (" in err, err[-2000:]
