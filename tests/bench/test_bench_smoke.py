"""CI smoke of the benchmark suite: `spacetime bench --quick` end to end (real server process, real embedded
PostgreSQL). Asserts counts and ratios measured side by side, never absolute times."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def test_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = run_cli("bench", "--quick", "--json", str(out), timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    speedup = results["speedup"]
    n = speedup["n"]
    assert speedup["calls"] == 2 * n  # N drafts + N ballots, no more
    assert speedup["baseline_turns"] == 2 * n  # the RoundRobinGroupChat baseline took 2N turns too
    assert speedup["speedup"] > 1.5  # the parallel epoch beats the sequential baseline on a latency-bound server
    assert all(row["calls_all_2n"] and row["calls"] == 2 * row["n"] for row in results["scaling"])
    # prefix sharing (vLLM-style accounting on the bench server): drafts share their context, ballots the two
    # orders of the shared layout — about 5 of 7 ballots reuse a drafts block (per-voter shuffles: ~10 %)
    row = results["scaling"][0]
    assert row["n"] == 7 and row["ballot_shared_fraction"] >= 0.6 and row["shared_fraction"] >= 0.65
    assert [row["books"] for row in results["books"]] == [1, 3]
    assert all(row["failed_books"] == 0 and row["epochs_per_s"] > 0 for row in results["books"])
    assert results["commit"][0]["n"] == 7 and results["commit"][0]["commit_ms"] > 0
    table = proc.stdout
    assert "| figure | value | target |" in table and "epoch speedup vs RoundRobinGroupChat" in table
