"""What durable epochs cost: epoch wall time with DBOS (every model call a checkpointed step, the epoch a
workflow) ÷ without (the same Director played in place), on the latency-modelled server, side by side.

    python -m bench.durability --agents 7 --epochs 6 --rounds 3

Each round plays a fresh book of ``--agents`` agents for ``--epochs`` epochs once without and once with DBOS (the
order alternates between rounds) through ``spacetime.engine.play.play_books`` on the real embedded PostgreSQL.
Prints the median epoch wall time of each mode and their ratio (target ≤ 1.05, docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from pathlib import Path

from bench.db import bench_database
from bench.process import ServerProcess
from bench.roster import bench_book
from bench.server import LatencyModel
from spacetime.config import Settings
from spacetime.engine.play import BookPlan, play_books


def epoch_walls(url: str, base_url: str, *, agents: int, epochs: int, durable: bool, seed: int) -> list[float]:
    config = bench_book(agents, base_url=base_url, seed=seed, embedder=False)
    settings = Settings(data_dir=Path("/nonexistent"), database_url=url)
    runs = asyncio.run(play_books(settings, [BookPlan("durability", config)], epochs=epochs, durable=durable))
    run = runs[0]
    if run.error is not None:
        raise RuntimeError(f"the {'durable' if durable else 'plain'} run failed: {run.error}")
    return [o.wall_s for o in run.outcomes]


def measure(*, agents: int, epochs: int, rounds: int, server_url: str | None = None) -> dict[str, object]:
    walls: dict[str, list[float]] = {"plain": [], "durable": []}
    with ServerProcess(LatencyModel()) as server, bench_database(server_url) as db:
        for r in range(rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            for durable in order:
                with db.fresh() as url:
                    found = epoch_walls(url, server.base_url, agents=agents, epochs=epochs, durable=durable, seed=r)
                walls["durable" if durable else "plain"] += found
    plain, durable = statistics.median(walls["plain"]), statistics.median(walls["durable"])
    return {
        "agents": agents,
        "epochs_per_mode": len(walls["plain"]),
        "median_epoch_s": {"plain": round(plain, 3), "durable": round(durable, 3)},
        "ratio": round(durable / plain, 3),
        "target": 1.05,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.durability", description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server-url", default=None, help="A PostgreSQL admin URL (default: embedded, temporary).")
    args = parser.parse_args(argv)
    print(json.dumps(measure(agents=args.agents, epochs=args.epochs, rounds=args.rounds,
                             server_url=args.server_url), indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
