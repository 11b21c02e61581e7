"""``spacetime bench`` / ``python -m bench``: run the scenarios, print Markdown tables, optionally write JSON.

Every figure is a median over repeats; ratios (speedup, overhead) are measured side by side in the same run. The
model server is ``bench.server`` in a child process; the database is a throwaway embedded PostgreSQL on a temporary
data dir (removed afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.db import bench_database
from bench.server import LatencyModel

SECTIONS = ("speedup", "scaling", "layers", "books", "commit", "embedded")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{os.cpu_count()} CPU ({cpu}){mem}, {system}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke: small N, one or two repeats, no embedded model")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per figure (default 5; --quick 2)")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only these sections (repeatable)")
    parser.add_argument("--skip", action="append", choices=SECTIONS, default=[], help="skip these sections")
    parser.add_argument("--max-books", type=int, default=100, help="largest number of concurrent books")
    parser.add_argument("--slots", type=int, default=32, help="server slots in the many-books scenario")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    repeats = args.repeats or (2 if quick else 5)
    sections = [s for s in (args.only or SECTIONS) if s not in args.skip]
    if quick and not args.only:
        sections = [s for s in sections if s not in ("layers", "embedded")]
    results: dict[str, Any] = {"machine": machine(), "quick": quick, "repeats": repeats, "command": sys.argv}
    started = time.perf_counter()

    def step(label: str) -> None:
        print(f"… {label} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

    with bench_database() as db:
        if "speedup" in sections:
            step("epoch speedup vs RoundRobinGroupChat")
            if quick:
                latency = LatencyModel(ttft_s=0.05, per_token_s=0.001, output_tokens=100)
                results["speedup"] = scenarios.speedup(db, latency, n=5, repeats=repeats, max_tokens=128)
            else:
                latency = LatencyModel(ttft_s=0.2, per_token_s=0.01, output_tokens=200)
                results["speedup"] = scenarios.speedup(db, latency, n=7, repeats=repeats, max_tokens=256)
        if "scaling" in sections:
            step("calls, tokens and CPU per epoch vs N")
            ns = [7] if quick else [5, 7, 16, 32, 64]
            results["scaling"] = scenarios.scaling(db, ns=ns, repeats=repeats, max_tokens=256)
        if "layers" in sections:
            step("per-call CPU by layer")
            results["layers"] = scenarios.layers(rounds=repeats, per_round=40)
        if "books" in sections:
            step("many books at once")
            if quick:
                latency = LatencyModel(ttft_s=0.05, per_token_s=0.001, output_tokens=100, slots=8)
                results["books"] = scenarios.books(db, latency, counts=[1, 3], agents=5, window_s=2.0, max_tokens=128)
            else:
                latency = LatencyModel(ttft_s=0.1, per_token_s=0.004, output_tokens=100, slots=args.slots)
                counts = sorted({c for c in (1, 10, 25, 50, 100, args.max_books) if c <= args.max_books})
                results["books"] = scenarios.books(db, latency, counts=counts, agents=7, window_s=5.0,
                                                   max_tokens=128)  # fmt: skip
        if "commit" in sections:
            step("epoch commit on the embedded PostgreSQL")
            ns = [7] if quick else [7, 64]
            results["commit"] = scenarios.commit(db, ns=ns, repeats={7: 10 if quick else 30, 64: 8})
        if "embedded" in sections:
            step("embedded model (SmolLM2-135M via llama-cpp-python)")
            results["embedded"] = scenarios.embedded(db, n=5, epochs=max(2, min(repeats, 3)), max_tokens=128)
    results["elapsed_s"] = time.perf_counter() - started
    return results


# --------------------------------------------------------------------------- report
def _yes(ok: bool | None) -> str:
    return "—" if ok is None else ("**met**" if ok else "not met")


def summary(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(figure, value, target, met) rows of the headline table."""
    rows: list[tuple[str, str, str, bool | None]] = []
    if s := results.get("speedup"):
        rows.append((f"epoch speedup vs RoundRobinGroupChat, N = {s['n']}",
                     f"{s['speedup']:.2f}× ({s['sequential_s']:.2f} s → {s['parallel_s']:.2f} s)",
                     f"≥ 6.8× (limit {s['n']}×)" if s["n"] == 7 else f"> 1× (limit {s['n']}×)",
                     s["speedup"] >= 6.8 if s["n"] == 7 else s["speedup"] > 1))
        rows.append((f"epoch wall ÷ (slowest draft + slowest ballot), N = {s['n']}", f"{s['overhead_ratio']:.3f}",
                     "≤ 1.05", s["overhead_ratio"] <= 1.05))
        rows.append((f"LLM calls per parallel epoch, N = {s['n']}", f"{s['calls']:.0f} (baseline: "
                     f"{s['baseline_turns']:.0f} turns)", f"2N = {2 * s['n']}", s["calls"] == 2 * s["n"]))
    if scale := results.get("scaling"):
        ok = all(r["calls_all_2n"] for r in scale)
        rows.append(("LLM calls per epoch, N = " + ", ".join(str(r["n"]) for r in scale),
                     ", ".join(f"{r['calls']:.0f}" for r in scale), "2N", ok))
        for r in scale:
            if r["n"] in (7, 64):
                limit = 20 if r["n"] == 7 else 400
                rows.append((f"orchestrator CPU per epoch, instant server, N = {r['n']}", f"{r['cpu_ms']:.0f} ms",
                             f"≤ {limit} ms", r["cpu_ms"] <= limit))
        for r in scale:
            if r["n"] in (7, 64) or len(scale) == 1:
                goal = {7: 0.75, 64: 0.93}.get(r["n"])
                rows.append((f"prompt tokens shared with earlier requests, N = {r['n']}",
                             f"{100 * r['shared_fraction']:.1f} % of {r['prompt_tokens']:,.0f} (drafts "
                             f"{100 * r['draft_shared_fraction']:.0f} %, "
                             f"ballots {100 * r['ballot_shared_fraction']:.0f} %)",
                             "measure" if goal is None else f"≥ {100 * goal:.0f} %",
                             None if goal is None else r["shared_fraction"] >= goal))
            if r["n"] == 64:
                uncached = r["prompt_tokens"] - r["shared_prompt_tokens"]
                rows.append(("uncached prompt tokens per epoch, N = 64", f"{uncached:,.0f}", "≤ 80,000",
                             uncached <= 80_000))
    if bk := results.get("books"):
        top = bk[-1]
        rows.append((f"slot utilisation, {top['books']} books × {top['agents']} agents, {top['slots']} slots",
                     f"{100 * top['utilisation']:.0f} % ({top['epochs_per_s']:.2f} epochs/s)", "≥ 80 %",
                     top["utilisation"] >= 0.8 if top["books"] >= 100 else None))
        rows.append((f"RSS of the one process playing {top['books']} books × {top['agents']} agents (peak in the "
                     "window)", f"{top['rss_peak_mib']:,.0f} MiB", "≤ 1.5 GiB" if top["books"] >= 100 else "measure",
                     top["rss_peak_mib"] <= 1536 if top["books"] >= 100 else None))
    if cm := results.get("commit"):
        for r in cm:
            rows.append((f"epoch commit (embedded PostgreSQL, {r['dim']}-d embeddings), N = {r['n']}",
                         f"{r['commit_ms']:.1f} ms", "≤ 25 ms" if r["n"] == 7 else "measure",
                         r["commit_ms"] <= 25 if r["n"] == 7 else None))
        big = cm[-1]
        rows.append((f"bulk vote import (COPY inside the commit), N = {big['n']}",
                     f"{big['votes_per_s']:,.0f} votes/s ({big['votes']} votes)", "measure", None))
    if em := results.get("embedded"):
        rows.append((f"embedded tournament tokens/s ÷ direct loop, N = {em['n']}, cap {em['max_tokens']}",
                     f"{em['ratio']:.2f} ({em['tournament_tokens_per_s']:.1f} vs "
                     f"{em['direct_tokens_per_s']:.1f} tok/s)",
                     "≥ 0.8", em["ratio"] >= 0.8))
        rows.append((f"embedded prefill computed per epoch (llama.cpp KV reuse), N = {em['n']}",
                     f"{em['prefill_tokens_per_epoch']:,.0f} of {em['prompt_tokens_per_epoch']:,.0f} prompt tokens "
                     f"({100 * em['prefill_tokens_per_epoch'] / max(em['prompt_tokens_per_epoch'], 1):.0f} %)",
                     "measure", None))
        rows.append(("… same, ÷ a direct replay of the epoch's own calls",
                     f"{em['ratio_vs_replay']:.2f} (replay {em['replay_tokens_per_s']:.1f} tok/s)", "measure", None))
    return rows  # fmt: skip


def render(results: dict[str, Any]) -> str:
    out = [f"Machine: {results['machine']}", f"Repeats: {results['repeats']} (medians)", ""]
    out += ["| figure | value | target | |", "| --- | --- | --- | --- |"]
    out += [f"| {f} | {v} | {t} | {_yes(ok)} |" for f, v, t, ok in summary(results)]
    if scale := results.get("scaling"):
        out += ["", "Per epoch on an instant server (no latency), as N grows:", "",
                "| N | LLM calls | prompt tokens (ballots) | shared prefix: all / drafts / ballots | completion tokens "
                "| orchestrator CPU | wall |",
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        out += [f"| {r['n']} | {r['calls']:.0f} | {r['prompt_tokens']:,.0f} ({r['ballot_prompt_tokens']:,.0f}) | "
                f"{100 * r['shared_fraction']:.0f} % / {100 * r['draft_shared_fraction']:.0f} % / "
                f"{100 * r['ballot_shared_fraction']:.0f} % | {r['completion_tokens']:,.0f} | {r['cpu_ms']:.0f} ms | "
                f"{r['wall_ms']:.0f} ms |" for r in scale]
    if layers := results.get("layers"):
        out += ["", "Orchestrator CPU of one ballot call, layer by layer (instant server):", "",
                "| layer (each includes the ones above) | CPU per call |", "| --- | ---: |"]
        out += [f"| {label} | {ms:.2f} ms |" for label, ms in layers.items()]
    if bk := results.get("books"):
        out += ["", "Books at once (each book × agents), one endpoint with K slots shared by all books:", "",
                "| books | slot utilisation | epochs/s | requests/s | orchestrator CPU | max queue wait | RSS (peak) "
                "| failed |",
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        out += [f"| {r['books']} | {100 * r['utilisation']:.0f} % | {r['epochs_per_s']:.2f} | "
                f"{r['requests_per_s']:.1f} | {100 * r['orchestrator_cpu_share']:.0f} % of a core | "
                f"{r['server_queue_wait_max_s'] * 1000:.0f} ms | {r['rss_peak_mib']:,.0f} MiB | {r['failed_books']} |"
                for r in bk]
    if em := results.get("embedded"):
        other = em["other_s"]
        out += ["", f"Embedded model, one epoch ({em['epoch_s']:.1f} s, medians): drafts {em['draft_calls_s']:.1f} s "
                f"({em['draft_completion_tokens']} tokens written, {em['draft_prompt_tokens']} prompt tokens of which "
                f"{em['draft_prefill_tokens']} computed); ballots {em['ballot_calls_s']:.1f} s "
                f"({em['ballot_completion_tokens']} tokens written under the JSON grammar, "
                f"{em['ballot_prompt_tokens']} prompt tokens of which {em['ballot_prefill_tokens']} computed); "
                f"outside model calls {other:.1f} s. "
                f"The drafts' embeddings run beside the ballots (alone they take {em['embed_drafts_s'] or 0:.1f} s)."]
    out += ["", f"Elapsed: {results['elapsed_s']:.0f} s"]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    print(render(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    return 0
