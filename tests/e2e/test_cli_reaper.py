"""The Reaper from the command line: ``spacetime swap`` (live, from a second terminal), ``personas``, ``lineage``,
``status --json``; a small real-model run in which the reserve runs dry and personas are bred by SmolLM2."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from spacetime.adapters.pg.store import Store
from spacetime.book import load_book
from tests.conftest import run_cli


def _err_line(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("spacetime: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def _q(url: str, sql: str, *args: object) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()  # type: ignore[arg-type]


async def _book_with_a_death(store: Store) -> None:
    """Book 'b': the five built-in founders, the Financier dead after epoch 1 and the Cyberneticist in its seat."""
    config = load_book(None)
    book = await store.create_book("b", config.topic, config.outline, config.to_json())
    await store.upsert_personas(config.roster + config.reserve)
    agents = {p.name: await store.add_agent(book.book_id, p, rating=1500.0, born_epoch=0) for p in config.roster}
    async with store.pool.connection() as conn:
        await conn.execute("UPDATE agents SET status = 'eliminated', died_epoch = 1, cause_of_death = 'lowest rating' "
                           "WHERE agent_id = %s", (agents["Financier"].agent_id,))  # fmt: skip
    await store.add_agent(book.book_id, config.reserve[0], rating=1500.0, born_epoch=1,
                          replaced_agent_id=agents["Financier"].agent_id)  # fmt: skip


async def test_swap_bad_inputs_are_one_line_exit_2_and_queue_nothing(store: Store, migrated_url: str) -> None:
    await _book_with_a_death(store)
    env = {"SPACETIME_DATABASE_URL": migrated_url}
    _err_line(run_cli("swap", "--book", "nope", "--out", "Physicist", "--in", "Historian", env=env), 2,
              "no book named 'nope'")  # fmt: skip
    _err_line(run_cli("swap", "--book", "b", "--out", "Wizard", "--in", "Historian", env=env), 2,
              "has no agent named 'Wizard'", "living: ")  # fmt: skip
    _err_line(run_cli("swap", "--book", "b", "--out", "Financier", "--in", "Historian", env=env), 2,
              "Financier is already dead", "epoch 1")  # fmt: skip
    _err_line(run_cli("swap", "--book", "b", "--out", "Physicist", "--in", "Shaman", env=env), 2,
              "unknown persona 'Shaman'", "spacetime personas")  # fmt: skip
    _err_line(run_cli("swap", "--book", "b", "--out", "Physicist", "--in", "Mathematician", env=env), 2,
              "Mathematician is already alive")  # fmt: skip
    _err_line(run_cli("swap", "--book", "b", "--out", "Physicist", "--in", "Financier", env=env), 2,
              "never revived")  # fmt: skip
    assert _q(migrated_url, "SELECT count(*) FROM swap_requests") == [(0,)]
    ok = run_cli("swap", "--book", "b", "--out", "Physicist", "--in", "Historian", env=env)
    assert ok.returncode == 0 and "queued: Physicist → Historian" in ok.stdout, ok.stderr
    _err_line(run_cli("swap", "--book", "b", "--out", "Politician", "--in", "Historian", env=env), 2,
              "already pending")  # fmt: skip
    assert _q(migrated_url, "SELECT status FROM swap_requests") == [("pending",)]
    missing = run_cli("swap", "--book", "b", "--in", "Historian", env=env)
    assert missing.returncode == 2 and "--out" in missing.stderr and "Traceback" not in missing.stderr


async def test_personas_lineage_and_status_json(store: Store, migrated_url: str) -> None:
    await _book_with_a_death(store)
    env = {"SPACETIME_DATABASE_URL": migrated_url}
    listed = run_cli("personas", "--book", "b", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    state = {p["name"]: p["state"] for p in json.loads(listed.stdout)}
    assert state["Physicist"] == "alive" and state["Financier"] == "dead" and state["Cyberneticist"] == "alive"
    assert state["Philosopher"] == "reserve" and state["Chemist"] == "reserve"
    table = run_cli("personas", env=env)
    assert table.returncode == 0 and "Historian" in table.stdout and "builtin" in table.stdout
    tree = run_cli("lineage", "--book", "b", env=env)
    assert tree.returncode == 0, tree.stderr
    lines = tree.stdout.splitlines()
    financier = next(i for i, line in enumerate(lines) if "Financier" in line)
    assert "Cyberneticist" in lines[financier + 1] and "dies at epoch 1" in lines[financier]
    assert lines[financier + 1].index("Cyberneticist") > lines[financier].index("Financier")  # a child node
    _err_line(run_cli("lineage", "--book", "nope", env=env), 2, "no book named 'nope'")
    status = json.loads(run_cli("status", "--book", "b", "--json", env=env).stdout)
    entry = {e["name"]: e for e in status["lineage"]}
    assert entry["Cyberneticist"]["replaced"] == "Financier" and entry["Cyberneticist"]["born_epoch"] == 1
    assert entry["Physicist"]["via"] == "founder"


BOOK_TOML = """
name = "reaped"
topic = "What is time?"
roster = ["Physicist", "Financier", "Politician", "Mathematician"]
reserve = ["Cyberneticist"]
max_tokens = 48
seed = 5
"""


@pytest.mark.slow
def test_real_model_run_breeds_and_takes_a_swap_from_a_second_terminal(migrated_url: str, tmp_path: Path) -> None:
    """3 epochs on SmolLM2-135M: the reserve of 1 enters, then personas are bred by the model (or the
    deterministic fallback when its answers are rejected); a swap typed in another terminal after epoch 1
    is handled at the next boundary (applied, or refused because its agent lost first) while `spacetime run` keeps
    going."""
    book = tmp_path / "reaped.toml"
    book.write_text(BOOK_TOML)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACETIME_")}
    env["SPACETIME_DATABASE_URL"] = migrated_url
    started = time.monotonic()
    run = subprocess.Popen([sys.executable, "-m", "spacetime", "run", str(book), "--epochs", "3"], env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)  # fmt: skip
    swapped = None
    try:
        while run.poll() is None and time.monotonic() - started < 1500:
            epochs = _q(migrated_url, "SELECT count(*) FROM simulation_epochs")[0][0]
            if epochs >= 1 and swapped is None:
                # the best-rated founder: the swap lands at the boundary after epoch 1 or 2 (it races the run),
                # and an agent eliminated before it lands makes it "rejected" (tested elsewhere); the best-rated
                # is the one least likely to lose epoch 2 (whose outcome the seed alone does not fix: see below)
                founders = ("Mathematician", "Politician", "Physicist", "Financier")
                out = _q(migrated_url, "SELECT name FROM agents WHERE status = 'alive' AND name = ANY(%s) "
                                       "ORDER BY rating DESC, name LIMIT 1", list(founders))[0][0]  # fmt: skip
                swapped = (out, epochs, run_cli("swap", "--book", "reaped", "--out", out, "--in", "Historian",
                                                env={"SPACETIME_DATABASE_URL": migrated_url}))  # fmt: skip
            time.sleep(0.5)
        out_text, err_text = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, (out_text[-2000:], err_text[-2000:])
    assert swapped is not None and swapped[2].returncode == 0, swapped
    wall = time.monotonic() - started

    events = _q(migrated_url, "SELECT r.epoch_no, r.kind, r.source, i.name, o.name, r.stall_ms, r.prepared_s, r.note "
                              "FROM reaper_events r JOIN agents i ON i.agent_id = r.in_agent_id LEFT JOIN agents o "
                              "ON o.agent_id = r.out_agent_id ORDER BY r.epoch_no, r.created_at")  # fmt: skip
    print(f"\nreal model, 3 epochs, {wall:.0f} s:")
    for e in events:
        stall = "—" if e[5] is None else f"{e[5]:.2f} ms"
        print(f"  after epoch {e[0]}: {e[1]:11s} {e[4]} → {e[3]} ({e[2]}; prepared in {e[6]:.2f} s off the loop; "
              f"loop blocked {stall}){'; ' + e[7] if e[7] else ''}")
    stalls = list({e[0]: e[5] for e in events if e[5] is not None}.values())  # one figure per boundary
    print(f"  median loop stall {statistics.median(stalls):.2f} ms over {len(stalls)} boundaries")
    assert sum(1 for e in events if e[1] == "elimination") == 3
    assert [e[3] for e in events if e[2] == "reserve"] == ["Cyberneticist"]
    bred = _q(migrated_url, "SELECT name, discipline, voice, parents FROM personas WHERE origin = 'bred'")
    assert len(bred) == 2 and all(1 <= len(b[3]) <= 2 for b in bred), bred
    print("  bred:", "; ".join(f"{b[0]} ({b[1]}) from {' × '.join(b[3])}" for b in bred))
    # the swap, typed while epoch 2 runs, is handled at the first boundary after it, and the run never stops.
    # Epoch 2 is not reproducible from the seed on the real model (lateness penalties come from measured service
    # times; breeding calls interleave with the epoch's), so the swapped agent may lose epoch 2 first: then the swap
    # must be refused for exactly that reason. (The applied path is also covered deterministically by the scripted
    # six-epoch test.)
    out, epochs_then, _ = swapped
    (status, applied, reason), = _q(migrated_url, "SELECT status, applied_epoch, reason FROM swap_requests")
    died = _q(migrated_url, "SELECT cause_of_death, died_epoch FROM agents WHERE name = %s", out)
    if status == "rejected":
        assert died[0][0] == "lowest rating" and died[0][1] in (epochs_then, epochs_then + 1), (died, events)
        assert reason == f"{out} died before the swap (epoch {died[0][1]})", reason
        assert "Historian" not in out_text
        archived = 3
    else:
        assert status == "applied" and applied in (epochs_then, epochs_then + 1), (out, epochs_then, reason, events)
        assert died == [("operator swap", applied)]
        assert "Historian" in out_text and "enters" in out_text
        archived = 4
    assert _q(migrated_url, "SELECT count(*) FROM simulation_epochs") == [(3,)]
    assert _q(migrated_url, "SELECT count(*) FROM agents WHERE status = 'alive'") == [(4,)]
    assert _q(migrated_url, "SELECT count(*) FROM agent_archive") == [(archived,)]
    assert all(s < 250 for s in stalls), stalls

