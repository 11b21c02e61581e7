"""A resumed book does not trust the endpoints stored with it: someone who can write one row of ``books`` must not
be able to make ``spacetime run`` send an api key to a server of their choosing."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from bench.process import ServerProcess
from bench.server import LatencyModel
from tests.conftest import run_cli

FAST = LatencyModel(ttft_s=0.0, per_token_s=0.0, output_tokens=20, slots=8)


def _book(path: Path, base_url: str) -> Path:
    path.write_text(f"""
name = "trusting"
seed = 3
max_tokens = 32
model = "bench"
embedder = "none"
[endpoints.bench]
kind = "openai"
base_url = "{base_url}"
model = "bench-model"
api_key_env = "SPACETIME_TEST_KEY"
concurrency = 8
""")
    return path


def test_a_resumed_book_calls_its_stored_endpoints_only_when_told_to(tmp_path: Path, migrated_url: str) -> None:
    env = {"SPACETIME_DATABASE_URL": migrated_url, "SPACETIME_TEST_KEY": "sk-test-secret"}
    with ServerProcess(FAST) as mine, ServerProcess(FAST) as theirs:
        book = _book(tmp_path / "trusting.toml", mine.base_url)
        first = run_cli("run", str(book), "--epochs", "1", env=env, timeout=300)
        assert first.returncode == 0, first.stderr
        assert mine.stats()["requests"] > 0
        mine.reset()
        # someone with write access to the table points the stored endpoint at their own server
        with psycopg.connect(migrated_url, autocommit=True) as conn:
            conn.execute("UPDATE books SET config = jsonb_set(config, '{endpoints,bench,base_url}', %s::jsonb) "
                         "WHERE name = 'trusting'", (json.dumps(theirs.base_url),))  # fmt: skip

        refused = run_cli("run", "--book", "trusting", "--epochs", "1", env=env, timeout=300)
        assert refused.returncode == 2, (refused.stdout, refused.stderr)
        lines = [x for x in refused.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert "--trust-stored-endpoints" in lines[0] and theirs.base_url in lines[0] and "book file" in lines[0]
        assert "sk-test-secret" not in refused.stderr + refused.stdout
        assert theirs.stats()["requests"] == 0 and mine.stats()["requests"] == 0  # the key went nowhere

        again = run_cli("run", str(book), "--epochs", "1", env=env, timeout=300)  # the book file, given again
        assert again.returncode == 0, again.stderr
        assert mine.stats()["requests"] > 0 and theirs.stats()["requests"] == 0

        trusted = run_cli("run", "--book", "trusting", "--epochs", "1", "--trust-stored-endpoints", env=env,
                          timeout=300)  # fmt: skip
        assert trusted.returncode == 0, trusted.stderr
        assert theirs.stats()["requests"] > 0  # told to, it does what the database says
