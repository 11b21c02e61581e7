"""The Epistemic Deck: a live, read-only Streamlit dashboard of the store (``spacetime deck``).

``app.py`` is the Streamlit script; ``data.py`` its cached access to ``spacetime.adapters.pg.deck`` (read-only
connections); ``figures.py`` the Plotly pictures. This module only starts the Streamlit server.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from types import FrameType
from urllib.parse import quote

from spacetime.errors import ConfigError

APP_PATH = Path(__file__).with_name("app.py")
ENV_URL = "SPACETIME_DECK_DATABASE_URL"
"""How the database URL reaches the Streamlit process (an environment variable: never on a command line)."""
ENV_TOKEN = "SPACETIME_DECK_TOKEN"
"""The deck's access token: read from the user's environment, handed to the Streamlit process the same way; when
set there, the page shows nothing without ``?token=<it>`` (``app.py``)."""
ENV_EMBEDDERS = "SPACETIME_DECK_EMBEDDERS"
"""JSON ``{book name: {"embedder": endpoint name or null, "spec": {EndpointSpec fields}}}`` from ``--book-file``:
the only endpoints the deck may call besides the packaged embedded model (no key value in it: only the NAME of the
key's environment variable, read by the deck process itself)."""
TOKEN_MIN_CHARS = 16
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


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def access_token(host: str, *, auth: bool, environ: Mapping[str, str]) -> tuple[str | None, bool]:
    """``(token, generated)``: the token the page requires, ``None`` for none. Off loopback a token is required
    unless ``auth`` is off (``--no-auth``): ``SPACETIME_DECK_TOKEN``, else a new random one; on loopback only when
    ``SPACETIME_DECK_TOKEN`` is set."""
    if not auth:
        return None, False
    given = environ.get(ENV_TOKEN, "").strip()
    if given and len(given) < TOKEN_MIN_CHARS:
        raise ConfigError(f"{ENV_TOKEN} is shorter than {TOKEN_MIN_CHARS} characters: unset it to get a random "
                          "token, or set a longer one")  # fmt: skip
    if given or is_loopback(host):
        return given or None, False
    return secrets.token_urlsafe(24), True


def book_embedders(book_files: Sequence[Path]) -> dict[str, dict[str, object]]:
    """``{book name: {"embedder": name or None, "spec": fields}}`` of the book files given to ``--book-file``: each
    file's ``name``, else its stem, names the book; its embedder is the one the deck may use for that book."""
    from spacetime.book import load_book

    out: dict[str, dict[str, object]] = {}
    for path in book_files:
        config = load_book(path)
        name = config.name or path.stem
        if name in out:
            raise ConfigError(f"two --book-file files name the book {name!r}: give each book once")
        spec = None if config.embedder is None else config.endpoints[config.embedder]
        fields_ = None if spec is None else {f.name: getattr(spec, f.name) for f in fields(spec) if f.name != "name"}
        out[name] = {"embedder": config.embedder, "spec": fields_}
    return out


def open_line(host: str, port: int, token: str | None, generated: bool) -> str:
    where = f"[{host}]" if ":" in host else host
    base = f"http://{where}:{port}"
    if token is None:
        return f"The Epistemic Deck (read-only): {base}  (Ctrl-C stops it)"
    if generated:
        return f"The Epistemic Deck (read-only): open {base}/?token={quote(token)}  (the access token; Ctrl-C stops it)"
    return f"The Epistemic Deck (read-only): open {base}/?token=<{ENV_TOKEN}>  (Ctrl-C stops it)"


def serve(url: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, auth: bool = True,
          book_files: Sequence[Path] = ()) -> int:  # fmt: skip
    """Run the Streamlit server in a child process until it ends or we are stopped; return its exit code.

    Off loopback the page needs an access token unless ``auth`` is off (see :func:`access_token`). The book files
    name the only endpoints the deck may embed search queries with (besides the packaged embedded model).
    SIGTERM/SIGHUP are forwarded to the child; Ctrl-C reaches it directly (same process group)."""
    embedders = book_embedders(book_files)
    token, generated = access_token(host, auth=auth, environ=os.environ)
    check_port(host, port)
    print(open_line(host, port, token, generated), file=sys.stderr, flush=True)
    if not is_loopback(host) and token is None:
        print(f"spacetime: warning: the deck on {host} is reachable from other machines, with no login "
              "(it is read-only)", file=sys.stderr)
    env = dict(os.environ)
    env.pop(ENV_TOKEN, None)
    env.pop(ENV_EMBEDDERS, None)
    if token is not None:
        env[ENV_TOKEN] = token
    if embedders:
        env[ENV_EMBEDDERS] = json.dumps(embedders)
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
