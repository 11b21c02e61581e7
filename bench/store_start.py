"""Embedded PostgreSQL start-up figures: cold (initdb + start on a new data dir), warm (stopped server, existing
data dir) and reuse (server already running: what every later `spacetime` command pays).

    .venv/bin/python bench/store_start.py [--repeats 5]

Prints medians over the repeats. Each cold run uses a fresh temporary data dir.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CODE = (
    "import sys; from pathlib import Path; from spacetime.adapters.pg import embedded; "
    "embedded.start(Path(sys.argv[1]))"
)


def _start(data_dir: Path) -> float:
    """Seconds for a fresh process to get a ready server (includes the Python start-up of the process)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", CODE, str(data_dir)], check=True)
    return time.perf_counter() - t0


def _python_baseline() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import spacetime.adapters.pg.embedded"], check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from spacetime.adapters.pg import embedded

    cold, warm, reuse, base = [], [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            base.append(_python_baseline())
            cold.append(_start(data))
            reuse.append(_start(data))
            embedded.stop(data)
            warm.append(_start(data))
            embedded.stop(data)
    py = statistics.median(base)
    print(f"{'embedded PostgreSQL start':<44} {'median s':>9} {'minus import':>13}")
    for label, values in (("cold (initdb + start, new data dir)", cold), ("warm (stopped server, existing dir)", warm),
                          ("reuse (server already running)", reuse)):
        med = statistics.median(values)
        print(f"{label:<44} {med:>9.3f} {med - py:>13.3f}")
    print(f"{'python + import baseline':<44} {py:>9.3f}")


if __name__ == "__main__":
    main()
