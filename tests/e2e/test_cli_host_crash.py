"""Killing the embedded model's host mid-epoch, as a user's machine would (SIGKILL from the OOM killer, SIGSEGV
from a CPU-specific llama.cpp kernel): the real CLI on the real embedded model and PostgreSQL prints ONE line,
exits 1, writes nothing of the epoch, and the next ``spacetime run`` resumes and completes it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def _host_pids(parent: int) -> list[int]:
    """Pids of the model-host children of ``parent`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spacetime.adapters.llm.host_main" in cmdline:
            found.append(int(entry.name))
    return found


def _epochs(env: dict[str, str]) -> int:
    status = run_cli("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    return sum(int(book["epochs"]) for book in json.loads(status.stdout)["books"])


def _run_and_kill(env: dict[str, str], sig: int) -> tuple[subprocess.CompletedProcess[str], int]:
    """``spacetime run`` with the host killed by ``sig`` once the epoch's drafts are being generated."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SPACETIME_")} | env
    process = subprocess.Popen(
        [sys.executable, "-m", "spacetime", "run", "--epochs", "1", "--max-tokens", "64", "--seed", "5"],
        env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out: list[str] = []
    drafting = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            out.append(line)
            if "drafting" in line or "epoch 1" in line:
                drafting.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert drafting.wait(300), "the epoch never started: " + "".join(out)
    deadline = time.monotonic() + 120
    while not (pids := _host_pids(process.pid)):
        assert time.monotonic() < deadline and process.poll() is None, "no model host appeared"
        time.sleep(0.1)
    time.sleep(2.0)  # the burst is under way in the host
    assert process.poll() is None, "the run ended before the host was killed"
    os.kill(pids[0], sig)
    stderr = process.stderr.read() if process.stderr else ""
    process.wait(timeout=300)
    reader.join(10)
    return subprocess.CompletedProcess(process.args, process.returncode, "".join(out), stderr), pids[0]


def _check_and_remove_log(line: str, sig: int) -> None:
    """A SIGSEGV leaves Python's fault handler's report in the host's log, named by the line (and removed here);
    a SIGKILL leaves an empty log, which is not kept."""
    found = re.search(r"details in (\S+)$", line)
    if sig == signal.SIGKILL:
        assert found is None, line
        return
    assert found is not None, line
    log = Path(found.group(1))
    assert "Segmentation fault" in log.read_text(), log
    log.unlink()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_killed_host_is_one_line_and_the_next_run_resumes(sig: int, tmp_path: Path) -> None:
    env = {"SPACETIME_DATA_DIR": str(tmp_path / "data"), "SPACETIME_MODEL_HOST_RESTARTS": "0"}
    try:
        crashed, pid = _run_and_kill(env, sig)
        assert crashed.returncode == 1, (crashed.returncode, crashed.stdout[-2000:], crashed.stderr)
        lines = [line for line in crashed.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in crashed.stderr, crashed.stderr
        line = lines[0]
        assert line.startswith("spacetime: error: the embedded model's host process"), line
        assert f"pid {pid}" in line and signal.Signals(sig).name in line and "run the same command again" in line
        _check_and_remove_log(line, sig)
        assert not Path(f"/proc/{pid}").exists()  # reaped by the CLI, no zombie left behind
        assert _epochs(env) == 0  # nothing of the epoch in flight was written

        resumed = run_cli("run", "--epochs", "1", "--max-tokens", "64", env=env, timeout=900)
        assert resumed.returncode == 0, resumed.stderr
        assert "epoch 1: chapter" in resumed.stdout
        assert _epochs(env) == 1
    finally:
        run_cli("db", "stop", "--force", env=env)


def test_one_crash_is_restarted_and_recorded(tmp_path: Path) -> None:
    """With the default budget (one restart) a single crash costs a warning line, not the run."""
    env = {"SPACETIME_DATA_DIR": str(tmp_path / "data")}
    try:
        survived, pid = _run_and_kill(env, signal.SIGSEGV)
        assert survived.returncode == 0, (survived.stdout[-2000:], survived.stderr)
        lines = [line for line in survived.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in survived.stderr, survived.stderr
        assert lines[0].startswith("spacetime: warning:") and f"(pid {pid}) was killed by SIGSEGV" in lines[0]
        assert "restarted it (1 of 1)" in lines[0]
        _check_and_remove_log(lines[0], signal.SIGSEGV)
        assert _epochs(env) == 1
    finally:
        run_cli("db", "stop", "--force", env=env)
