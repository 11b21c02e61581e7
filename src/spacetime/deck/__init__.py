"""The Epistemic Deck: a live, read-only Streamlit dashboard of the store (``spacetime deck``).

``app.py`` is the Streamlit script; ``data.py`` its cached access to ``spacetime.adapters.pg.deck`` (read-only
connections); ``figures.py`` the Plotly pictures. This module only starts the Streamlit server.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import FrameType

from spacetime.errors import ConfigError

APP_PATH = Path(__file__).with_name("app.py")
ENV_URL = "SPACETIME_DECK_DATABASE_URL"
"""How the database URL reaches the Streamlit process (an environment variable: never on a command line)."""
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501


def streamlit_command(host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_PATH),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--client.toolbarMode", "viewer",
        "--theme.base", "light",
    ]  # fmt: skip


def check_port(host: str, port: int) -> None:
    """Fail with one clear line before Streamlit does (its own message is a traceback-ish log)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot serve the deck on host {host!r} ({exc.strerror}): pass --host 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is already in use: pass another --port") from None
            raise ConfigError(f"cannot serve the deck on {host}:{port} ({exc.strerror}): check --host") from None


def serve(url: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
    """Run the Streamlit server in a child process until it ends or we are stopped; return its exit code.

    SIGTERM/SIGHUP are forwarded to the child; Ctrl-C reaches it directly (same process group)."""
    check_port(host, port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"spacetime: warning: the deck on {host} is reachable from other machines, with no login "
              "(it is read-only)", file=sys.stderr)
    env = dict(os.environ)
    env[ENV_URL] = url
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    child = subprocess.Popen(streamlit_command(host, port), env=env, stdin=subprocess.DEVNULL)

    stopped: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopped.append(signum)
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        code = child.wait()
        return 0 if stopped and code in (0, -signal.SIGTERM) else (128 - code if code < 0 else code)
    except KeyboardInterrupt:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
