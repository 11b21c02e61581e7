"""The fleet under fire: N ``spacetime worker`` processes play B books × E epochs on the latency server while a
driver SIGKILLs a random worker every few seconds and restarts it under the same executor id.

    python -m bench.fleet_faults --workers 3 --books 20 --epochs 10 --kills 20

Prints (and returns) what the targets of docs/benchmarks.md ask: epochs, chapters and votes lost or duplicated,
LLM calls made against the calls the committed record needed plus the calls in flight at the kills, the most
requests the endpoint saw at once against its ``concurrency``, and whether every book finished.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.db import bench_database
from bench.process import REPO, ServerProcess
from bench.server import LatencyModel

AGENTS = 5


@dataclass
class FaultReport:
    workers: int
    books: int
    epochs: int
    kills: int = 0
    wall_s: float = 0.0
    finished_books: int = 0
    epochs_committed: int = 0
    epochs_missing: int = 0
    epochs_duplicated: int = 0
    chapters_missing: int = 0
    votes_duplicated: int = 0
    calls_made: int = 0
    repeated_requests: int = 0
    """Requests the server had already been sent, body for body (retries and calls made again)."""
    calls_needed: int = 0
    in_flight_at_kills: int = 0
    """Queued model calls a killed worker had taken and not finished: each ran again elsewhere (the sum over the
    fleet's call workflows of their DBOS recovery attempts beyond the first)."""
    max_in_flight: int = 0
    concurrency: int = 0
    call_workflows: int = 0
    """Model calls the fleet queued (one DBOS workflow each)."""
    step_calls: int = 0
    """Queued calls made by an epoch's durable steps (drafts, ballots, re-asks): must equal ``calls_needed``."""
    breeding_calls: int = 0
    """Queued calls made by the Reaper breeding successors (not checkpointed: a kill mid-breeding breeds again)."""
    newcomers_bred: int = 0
    calls_rerun: int = 0
    """Queued calls whose worker died under them and that ran again elsewhere."""
    worker_errors: list[str] = field(default_factory=list)

    @property
    def extra_calls(self) -> int:
        """Requests beyond the epochs' needed calls and the breeding calls: calls made again after a kill."""
        return self.calls_made - self.calls_needed - self.breeding_calls

    def ok(self) -> bool:
        return (
            self.finished_books == self.books
            and self.epochs_missing == self.epochs_duplicated == self.chapters_missing == self.votes_duplicated == 0
            and self.step_calls == self.calls_needed
            and self.calls_made <= self.calls_needed + self.breeding_calls + self.in_flight_at_kills
            and self.max_in_flight <= self.concurrency
        )


def book_toml(base_url: str, concurrency: int) -> str:
    return f"""
name = "fleet"
topic = "Time and its measure"
seed = 11
max_tokens = 48
model = "bench"
embedder = "none"
[endpoints.bench]
kind = "openai"
base_url = "{base_url}"
model = "bench-model"
concurrency = {concurrency}
timeout_s = 30
"""


def q(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def cli_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACETIME_")}
    env["SPACETIME_DATABASE_URL"] = url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


class Workers:
    """``n`` worker processes, each under its own stable executor id, killed and restarted on demand."""

    def __init__(self, n: int, url: str, logs: Path) -> None:
        self.url = url
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for i in range(1, n + 1):
            self.start(f"w{i}")

    def start(self, name: str) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "spacetime", "worker", "--executor-id", name, "--books-at-once", "8",
             "--trust-stored-endpoints"],
            env=cli_env(self.url), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        log.close()

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def committed(url: str) -> int:
    return int(q(url, "SELECT count(*) FROM simulation_epochs")[0][0])


def play(
    url: str,
    *,
    workers: int = 3,
    books: int = 20,
    epochs: int = 10,
    kills: int = 20,
    kill_every_s: tuple[float, float] = (2.0, 5.0),
    concurrency: int = 4,
    timeout_s: float = 1200.0,
    seed: int = 1,
    model: LatencyModel | None = None,
    progress: bool = False,
) -> FaultReport:
    rng = random.Random(seed)
    report = FaultReport(workers, books, epochs, concurrency=concurrency)
    model = model or LatencyModel(ttft_s=0.05, per_token_s=0.0005, output_tokens=40, slots=64)
    with ServerProcess(model) as server, tempfile.TemporaryDirectory(prefix="spacetime-fleet-") as tmp:
        book = Path(tmp) / "fleet.toml"
        book.write_text(book_toml(server.base_url, concurrency))
        submitted = subprocess.run(
            [sys.executable, "-m", "spacetime", "submit", str(book), "--books", str(books), "--epochs", str(epochs)],
            env=cli_env(url), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if submitted.returncode != 0:
            raise RuntimeError(f"submit failed: {submitted.stderr[-2000:]}")
        server.call("POST", "/stats/reset")
        t0 = time.monotonic()
        fleet = Workers(workers, url, Path(tmp))
        target = books * epochs
        try:
            next_kill = t0 + rng.uniform(*kill_every_s)
            while committed(url) < target and time.monotonic() - t0 < timeout_s:
                now = time.monotonic()
                if report.kills < kills and now >= next_kill:
                    victim = rng.choice(sorted(fleet.procs))
                    fleet.kill(victim)
                    report.kills += 1
                    fleet.start(victim)
                    next_kill = now + rng.uniform(*kill_every_s)
                    if progress:
                        print(f"kill {report.kills}: {victim} at {committed(url)}/{target} epochs", file=sys.stderr)
                time.sleep(0.1)
        finally:
            report.wall_s = time.monotonic() - t0
            fleet.stop_all()
            for log in sorted(Path(tmp).glob("w*.log")):
                text = log.read_text(errors="replace")
                report.worker_errors += [line for line in text.splitlines() if "error" in line.lower()][:5]
        stats = server.stats()
    report.calls_made = int(stats["requests"])
    report.repeated_requests = int(stats["repeats"])
    report.max_in_flight = int(stats["max_in_flight"])
    per_book = dict(q(url, "SELECT b.name, count(e.epoch_id) FROM books b LEFT JOIN simulation_epochs e "
                           "USING (book_id) GROUP BY b.name"))  # fmt: skip
    report.finished_books = sum(1 for n in per_book.values() if n == epochs)
    report.epochs_committed = sum(per_book.values())
    report.epochs_missing = sum(max(0, epochs - n) for n in per_book.values())
    report.epochs_duplicated = int(q(url, "SELECT count(*) - count(DISTINCT (book_id, epoch_no)) "
                                          "FROM simulation_epochs")[0][0])  # fmt: skip
    report.chapters_missing = report.epochs_committed - int(q(url, "SELECT count(*) FROM chapters")[0][0])
    report.votes_duplicated = int(q(url, "SELECT count(*) - count(DISTINCT (epoch_id, voter_agent_id, "
                                         "target_agent_id)) FROM peer_votes")[0][0])  # fmt: skip
    drafts = int(q(url, "SELECT count(*) FROM drafts")[0][0])
    forfeits = int(q(url, "SELECT count(*) FROM forfeits")[0][0])
    ballots = int(q(url, "SELECT count(*) FROM ballots")[0][0])
    reasks = int(q(url, "SELECT count(*) FROM ballots WHERE raw LIKE '%' || chr(10) || '---' || chr(10) || '%'")[0][0])
    report.calls_needed = drafts + forfeits + ballots + reasks
    report.call_workflows, report.calls_rerun, report.in_flight_at_kills = (int(v or 0) for v in q(
        url, "SELECT count(*), count(*) FILTER (WHERE recovery_attempts > 1), sum(greatest(recovery_attempts - 1, 0)) "
             "FROM dbos.workflow_status WHERE name = 'spacetime.call'")[0])  # fmt: skip
    report.breeding_calls = int(q(url, "SELECT count(*) FROM dbos.workflow_status WHERE name = 'spacetime.call' "
                                       "AND workflow_uuid LIKE 'call:free:%'")[0][0])  # fmt: skip
    report.step_calls = report.call_workflows - report.breeding_calls
    report.newcomers_bred = int(q(url, "SELECT count(*) FROM reaper_events WHERE source LIKE 'bred%'")[0][0])
    return report


@contextlib.contextmanager
def database(server_url: str | None) -> Iterator[str]:
    with bench_database(server_url) as db, db.fresh() as url:
        yield url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--books", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server-url", default=None, help="A PostgreSQL admin URL (default: embedded, temporary).")
    args = parser.parse_args(argv)
    with database(args.server_url) as url:
        report = play(url, workers=args.workers, books=args.books, epochs=args.epochs, kills=args.kills,
                      concurrency=args.concurrency, seed=args.seed, progress=True)  # fmt: skip
    shown = asdict(report) | {"extra_calls": report.extra_calls, "ok": report.ok()}
    print(json.dumps(shown, indent=2))
    sys.exit(0 if report.ok() else 1)


if __name__ == "__main__":
    main()
