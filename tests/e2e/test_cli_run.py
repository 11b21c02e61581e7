"""``spacetime run`` / ``export`` / ``status`` as a user runs them: real CLI, real embedded model and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli


def _err_line(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"SPACETIME_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def stop_server(env: dict[str, str]):  # type: ignore[no-untyped-def]
    yield
    run_cli("db", "stop", "--force", env=env)


def test_bad_book_files(tmp_path: Path, env: dict[str, str], stop_server: None) -> None:
    _err_line(run_cli("run", str(tmp_path / "missing.toml"), env=env), 2, "does not exist")
    bad = tmp_path / "bad.toml"
    bad.write_text("topic = \n")
    _err_line(run_cli("run", str(bad), env=env), 2, "not valid TOML")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('roster = ["Physicist", "Wizard", "Financier"]\n')
    _err_line(run_cli("run", str(unknown), env=env), 2, "unknown persona 'Wizard'")
    small = tmp_path / "small.toml"
    small.write_text('roster = ["Physicist", "Financier"]\n')
    _err_line(run_cli("run", str(small), env=env), 2, "at least 3")
    endpoint = tmp_path / "endpoint.toml"
    endpoint.write_text('model = "vllm"\n')
    _err_line(run_cli("run", str(endpoint), env=env), 2, "not a defined endpoint")
    _err_line(run_cli("export", "--book", "nope", env=env), 2, "no book named 'nope'")
    assert run_cli("run", "--epochs", "0", env=env).returncode == 2
    # nothing half-written: no book was created by any of these
    status = run_cli("status", "--json", env=env)
    assert json.loads(status.stdout) == {"books": []}


@pytest.mark.slow
def test_run_resume_export_status(tmp_path: Path, env: dict[str, str], stop_server: None) -> None:
    first = run_cli("run", "--epochs", "1", "--max-tokens", "32", "--seed", "3", env=env, timeout=900)
    assert first.returncode == 0, first.stderr
    assert "epoch 1: chapter" in first.stdout and "eliminated" in first.stdout
    second = run_cli("run", "--epochs", "1", env=env, timeout=900)  # resumes the default book
    assert second.returncode == 0, second.stderr
    assert "epoch 2: chapter" in second.stdout
    out = tmp_path / "book.md"
    exported = run_cli("export", "-o", str(out), env=env)
    assert exported.returncode == 0, exported.stderr
    text = out.read_text()
    assert text.startswith("# spacetime") and "## 1. " in text and "## 2. " in text
    status = json.loads(run_cli("status", "--book", "spacetime", "--json", env=env).stdout)
    assert status["epochs"] == 2 and status["chapters"] == 2
    alive = [a for a in status["roster"] if a["status"] == "alive"]
    assert len(alive) == 5 and all(isinstance(a["rating"], float) for a in alive)
    assert sum(1 for a in status["roster"] if a["status"] == "eliminated") == 2


@pytest.mark.slow
def test_second_player_of_the_same_book_is_refused(env: dict[str, str], stop_server: None) -> None:
    cmd = [sys.executable, "-m", "spacetime", "run", "--epochs", "1", "--max-tokens", "16", "--book", "race"]
    import os

    full = {**os.environ, **env}
    first = subprocess.Popen(cmd, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # wait until the first has seated its agents (the book exists), then race it
        import time

        for _ in range(300):
            if '"race"' in run_cli("status", "--json", env=env).stdout:
                break
            time.sleep(0.5)
        second = run_cli("run", "--epochs", "1", "--book", "race", env=env, timeout=300)
        if first.poll() is None:
            _err_line(second, 2, "being played by another spacetime process")
    finally:
        first.communicate(timeout=900)
    assert first.returncode == 0
