"""``spacetime deck``: help, and bad --host/--port values as one clear line (the server itself: tests/e2e)."""

from __future__ import annotations

import socket
from pathlib import Path

from spacetime.deck import streamlit_command
from tests.conftest import run_cli


def _one_line(proc, code: int, needle: str) -> None:  # type: ignore[no-untyped-def]
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("spacetime: error: ") and needle in lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr


def test_help() -> None:
    proc = run_cli("deck", "--help")
    assert proc.returncode == 0 and "--host" in proc.stdout and "--port" in proc.stdout and "read-only" in proc.stdout
    assert "--no-auth" in proc.stdout and "--book-file" in proc.stdout


def test_unreadable_book_file_is_one_line(migrated_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    proc = run_cli("deck", "--book-file", str(missing), env={"SPACETIME_DATABASE_URL": migrated_url}, timeout=60)
    _one_line(proc, 2, f"book file {missing} does not exist")


def test_port_in_use_is_one_line(migrated_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("deck", "--port", str(port), env={"SPACETIME_DATABASE_URL": migrated_url}, timeout=60)
    _one_line(proc, 2, f"port {port} on 127.0.0.1 is already in use")


def test_unknown_host_is_one_line(migrated_url: str) -> None:
    proc = run_cli("deck", "--host", "no-such-host.invalid", env={"SPACETIME_DATABASE_URL": migrated_url}, timeout=60)
    _one_line(proc, 2, "cannot serve the deck on host 'no-such-host.invalid'")


def test_bad_port_is_a_usage_error() -> None:
    assert run_cli("deck", "--port", "0").returncode == 2


def test_streamlit_binds_only_where_told() -> None:
    cmd = streamlit_command("127.0.0.1", 8601)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8601"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"
