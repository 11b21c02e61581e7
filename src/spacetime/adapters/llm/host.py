"""The model host: the embedded model's llama.cpp runs in a child process we start and supervise, never in ours.

Native code can crash in ways Python cannot catch (SIGSEGV in a CPU-specific kernel, SIGILL, the kernel's OOM
killer). In the child, such a crash ends the child only: :meth:`ModelHost.call` sees the connection close, reads
the exit status and raises :class:`~spacetime.errors.ModelHostCrashed` with one line saying what happened. Nothing
half-done is saved by the engine (an epoch is one transaction), so running the command again resumes the book.

One host per process (:func:`shared_host`), started on first use and shared by every book, agent, embedder and
breeding call; it holds one copy of each loaded model. It serves one request at a time (a llama.cpp context is
single-threaded): callers queue on an ``asyncio.Lock`` per event loop (tests and the deck run several loops), and a
``threading.Lock`` keeps one request on the connection. Service time is measured in the child, so queueing is
never counted as a model's latency.

A crashed host is restarted automatically ``restarts`` times per process (default 1,
``SPACETIME_MODEL_HOST_RESTARTS``), each restart logged as a warning and kept in :attr:`ModelHost.crashes`; the
call that was in flight is retried once on the new host. After that the host stays down and every call raises the
same error.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from enum import StrEnum
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from spacetime.adapters.llm.loops import PerLoop
from spacetime.errors import ConfigError, ModelError, ModelHostCrashed

log = logging.getLogger("spacetime.adapters.llm.host")

RESTARTS_ENV = "SPACETIME_MODEL_HOST_RESTARTS"
DEFAULT_RESTARTS = 1
START_TIMEOUT_S = 120.0
"""How long a new host may take to import llama.cpp and say it is ready (seconds; ~0.5 s on 2 cores)."""


class HostState(StrEnum):
    NEW = "new"
    """Not started yet (starts on the first call)."""
    READY = "ready"
    """A child process is serving."""
    CRASHED = "crashed"
    """The child died more often than ``restarts`` allows; every call raises ``ModelHostCrashed``."""
    CLOSED = "closed"
    """Closed by its owner; calls raise ``ModelError``."""


class Op(StrEnum):
    """What a request asks of the host, and how a crash during it is described."""

    LOAD = "load"
    CHAT = "chat"
    EMBED = "embed"

    @property
    def doing(self) -> str:
        return {Op.LOAD: "loading the model", Op.CHAT: "generating", Op.EMBED: "embedding"}[self]


@dataclass(frozen=True, slots=True)
class HostCrash:
    """One death of a host process."""

    pid: int
    cause: str
    """``killed by SIGSEGV``, ``exited with status 1`` …"""
    during: str
    """What it was doing: ``starting``, ``generating``, ``embedding``, ``loading the model``, ``idle``."""
    log_path: str | None
    """Its stderr (llama.cpp's messages, Python's fault handler), kept after a crash when not empty."""

    @property
    def what(self) -> str:
        """``the embedded model's host process (pid 42) was killed by SIGSEGV (…) while generating``."""
        was = "was " if self.cause.startswith("killed") else ""
        return f"the embedded model's host process (pid {self.pid}) {was}{self.cause} while {self.during}"


_SIGNAL_HINTS = {
    signal.SIGKILL: "out of memory, or killed by another process",
    signal.SIGSEGV: "a crash in llama.cpp",
    signal.SIGILL: "an instruction this CPU lacks",
    signal.SIGBUS: "a crash in llama.cpp",
    signal.SIGABRT: "llama.cpp aborted",
}


def describe_exit(returncode: int | None) -> str:
    """A child's exit status in words: ``killed by SIGSEGV (a crash in llama.cpp)``, ``exited with status 3``."""
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode)
        except ValueError:
            return f"killed by signal {-returncode}"
        hint = _SIGNAL_HINTS.get(sig)
        return f"killed by {sig.name}" + (f" ({hint})" if hint else "")
    return f"exited with status {returncode}"


def crash_message(crash: HostCrash, restarted: int, last_log_line: str = "") -> str:
    """The one line a user sees when the host is down for good: what happened, then what to do."""
    again = f" after {restarted} restart{'s' if restarted != 1 else ''}" if restarted else ""
    said = f" ({last_log_line[:200]})" if last_log_line else ""
    where = f"; details in {crash.log_path}" if crash.log_path else ""
    return (
        f"{crash.what}{again}{said}; "
        "nothing unfinished was saved: run the same command again to resume "
        f"(if it keeps crashing, try SPACETIME_LLAMA_EXTRA_BUFFERS=off){where}"
    )


def restarts_from_env(value: str | None) -> int:
    """``SPACETIME_MODEL_HOST_RESTARTS`` (unset: 1). Raises ``ConfigError`` unless it is a whole number >= 0."""
    if value is None or not value.strip():
        return DEFAULT_RESTARTS
    try:
        restarts = int(value)
    except ValueError:
        restarts = -1
    if restarts < 0:
        raise ConfigError(f"{RESTARTS_ENV} must be a whole number of restarts (0 or more), not {value!r}")
    return restarts


class ModelHost:
    """A supervised child process running llama.cpp: :meth:`call` (blocking) or :meth:`run` (async) sends one
    request and returns ``(result, service seconds)``."""

    def __init__(self, *, restarts: int = DEFAULT_RESTARTS, start_timeout_s: float = START_TIMEOUT_S) -> None:
        self.restarts = restarts
        self.start_timeout_s = start_timeout_s
        self.state = HostState.NEW
        self.crashes: list[HostCrash] = []
        self.pid: int | None = None
        self.use_extra_bufts: bool | None = None
        """The load plan's choice, as the child reported it."""
        self.plan_reason = ""
        self.system_info = ""
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._log_path: str | None = None
        self._down: ModelHostCrashed | None = None
        self._lock = threading.Lock()
        self._loop_locks = PerLoop(asyncio.Lock)

    # ------------------------------------------------------------------ calls
    async def run(self, op: Op, *args: Any) -> tuple[Any, float]:
        """:meth:`call` in a worker thread, queued behind this event loop's other callers."""
        async with self._queue():
            return await asyncio.to_thread(self.call, op, *args)

    def call(self, op: Op, *args: Any) -> tuple[Any, float]:
        """Send one request and wait for its answer. Raises ``ModelError`` when llama.cpp refuses it (the host
        lives on), ``ModelHostCrashed`` when the host died and may not be restarted."""
        with self._lock:
            while True:
                conn = self._ensure_started()
                try:
                    conn.send((op.value, args))
                    reply = conn.recv()
                except (EOFError, OSError):
                    if self.state is HostState.CLOSED:  # closed under us (shutdown), not a crash
                        raise ModelError("the embedded model host is closed") from None
                    self._crashed(op.doing)
                    continue  # restarted (else _crashed raised)
                if reply[0] == "ok":
                    return reply[1], float(reply[2])
                raise ModelError(str(reply[2]))

    def _queue(self) -> asyncio.Lock:
        return self._loop_locks.get()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the child now (calls start it on demand)."""
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> Connection:
        if self.state is HostState.CLOSED:
            raise ModelError("the embedded model host is closed")
        if self.state is HostState.CRASHED:
            assert self._down is not None
            raise self._down
        if self._conn is None:
            self._spawn()
        assert self._conn is not None
        return self._conn

    def _spawn(self) -> None:
        import spacetime

        ours, theirs = socket.socketpair()
        fd, log_path = tempfile.mkstemp(prefix="spacetime-model-host-", suffix=".log")
        env = dict(os.environ)
        package_root = str(Path(spacetime.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        env.setdefault("PYTHONFAULTHANDLER", "1")
        with os.fdopen(fd, "wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "spacetime.adapters.llm.host_main", "--fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                env=env,
                start_new_session=True,  # Ctrl-C reaches us, not the host: we stop it in order
            )
        theirs.close()
        conn = Connection(ours.detach())
        self._process, self._conn, self._log_path = process, conn, log_path
        self.pid = process.pid
        self.starts += 1
        try:
            if not conn.poll(self.start_timeout_s):
                process.kill()
                self._crashed(f"starting (no answer within {self.start_timeout_s:.0f} s)", hung=True)
                return
            hello = conn.recv()
        except (EOFError, OSError):
            self._crashed("starting")
            return
        if hello[0] != "ready":  # refused to start (a bad SPACETIME_LLAMA_EXTRA_BUFFERS): a configuration error
            self._stop_process()
            self.state = HostState.CLOSED
            Path(log_path).unlink(missing_ok=True)
            raise ConfigError(str(hello[2]))
        _, _, self.use_extra_bufts, self.plan_reason, self.system_info = hello
        self.state = HostState.READY
        log.debug("model host pid %s ready: %s", self.pid, self.plan_reason)

    def _crashed(self, doing: str, *, hung: bool = False) -> None:
        """The child is gone: record why; restart it if allowed (returns), else raise ``ModelHostCrashed``.
        ``hung``: we killed it for not answering."""
        process = self._process
        assert process is not None
        returncode: int | None = None
        try:
            returncode = process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # the connection broke but the process hangs on: end it
            process.kill()
            process.wait()
        if hung:
            returncode = None
        log_path, self._log_path = _kept(self._log_path), None
        crash = HostCrash(process.pid, describe_exit(returncode), doing, log_path)
        self.crashes.append(crash)
        self._forget()
        if len(self.crashes) <= self.restarts:
            details = f"; details in {crash.log_path}" if crash.log_path else ""
            log.warning("%s; restarted it (%d of %d)%s", crash.what, len(self.crashes), self.restarts, details)
            self._spawn()
            return
        last = _last_line(log_path) if returncode is not None and returncode > 0 else ""
        self.state = HostState.CRASHED
        self._down = ModelHostCrashed(crash_message(crash, len(self.crashes) - 1, last))
        raise self._down

    def _forget(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._process = None

    def _stop_process(self, timeout_s: float = 5.0) -> None:
        process, conn = self._process, self._conn
        if process is None:
            return
        if conn is not None:
            try:
                conn.send(("exit", ()))
            except OSError:
                pass
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._forget()

    def close(self) -> None:
        """Stop the child (ask it to exit, wait, then terminate, then kill). Its log is removed unless it crashed."""
        acquired = self._lock.acquire(timeout=30)  # a call in flight may still finish; then we stop regardless
        try:
            if self.state is HostState.CLOSED:
                return
            self.state = HostState.CLOSED
            self._stop_process()
            if self._log_path:  # a healthy host's log; crashed hosts' logs are kept (named in the error)
                Path(self._log_path).unlink(missing_ok=True)
                self._log_path = None
        finally:
            if acquired:
                self._lock.release()

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to the child (fault tests); returns its pid."""
        if self._process is None:
            raise ModelError("the embedded model host is not running")
        self._process.send_signal(sig)
        return self._process.pid


def _kept(path: str | None) -> str | None:
    """A crashed host's log path if the log says something (Python's fault handler, llama.cpp); an empty log (a
    SIGKILL leaves nothing) is removed."""
    if path is None:
        return None
    try:
        if Path(path).stat().st_size > 0:
            return path
        Path(path).unlink()
    except OSError:
        pass
    return None


def _last_line(path: str | None) -> str:
    if not path:
        return ""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


_HOST: ModelHost | None = None
_HOST_LOCK = threading.Lock()


def shared_host() -> ModelHost:
    """This process's model host (created on first use; started by its first call). A closed host is replaced."""
    global _HOST
    with _HOST_LOCK:
        if _HOST is None or _HOST.state is HostState.CLOSED:
            _HOST = ModelHost(restarts=restarts_from_env(os.environ.get(RESTARTS_ENV)))
        return _HOST


def close_shared_host() -> None:
    """Stop this process's model host, if any (at exit, and in tests)."""
    global _HOST
    with _HOST_LOCK:
        host, _HOST = _HOST, None
    if host is not None:
        host.close()


atexit.register(close_shared_host)
