"""Several books played at once by one process (``play_books`` / ``spacetime run --books N``)."""

from __future__ import annotations

import dataclasses
import random
import uuid
from pathlib import Path

import psycopg
import pytest

from bench.process import ServerProcess
from bench.server import LatencyModel
from spacetime.adapters.llm.fake import HashEmbedder, ScriptedCall, ScriptedModel
from spacetime.book import load_book
from spacetime.config import Settings
from spacetime.engine.events import EpochCommitted
from spacetime.engine.play import BookPlan, plan_books, play_books
from spacetime.errors import BookBusy, ConfigError
from tests.conftest import run_cli
from tests.engine.scripted import tournament_responder


def _settings(url: str) -> Settings:
    return Settings(data_dir=Path("/nonexistent"), database_url=url)


def _q(url: str, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


async def test_books_progress_together_and_failures_stay_local(migrated_url: str, store: object) -> None:
    template = dataclasses.replace(load_book(None), seed=1, max_tokens=48)
    base = tournament_responder(random.Random(2))

    def respond(call: ScriptedCall) -> object:
        if "EXPLODE" in call.prompt:
            return RuntimeError("a bug in one book")
        return base(call)

    model = ScriptedModel(replies=respond, name="embedded", concurrency=4, delay_s=0.002)  # type: ignore[arg-type]
    plans = plan_books([], copies=3)
    assert [p.name for p in plans] == ["spacetime-1", "spacetime-2", "spacetime-3"]
    plans = [dataclasses.replace(p, config=template) for p in plans]
    plans.append(BookPlan("exploding", dataclasses.replace(template, topic="EXPLODE on contact")))
    plans.append(BookPlan("unreadable", error=ConfigError("book file x.toml is not valid TOML: …")))
    # a book another process is playing: its advisory lock is held elsewhere
    locked = await store.create_book("locked", template.topic, None, template.to_json())  # type: ignore[attr-defined]
    plans.append(BookPlan("locked", template))
    key = uuid.UUID(str(locked.book_id)).int & 0x7FFF_FFFF_FFFF_FFFF
    committed: dict[str, int] = {}

    def emit_for(name: str):  # type: ignore[no-untyped-def]
        def listener(event: object) -> None:
            if isinstance(event, EpochCommitted):
                committed[name] = committed.get(name, 0) + 1

        return listener

    with psycopg.connect(migrated_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (key,))
        runs = await play_books(_settings(migrated_url), plans, epochs=2, emit_for=emit_for,
                                prebuilt={"embedded": model}, prebuilt_embedder=HashEmbedder(dim=8))  # fmt: skip
    by = {r.name: r for r in runs}
    for i in (1, 2, 3):
        run = by[f"spacetime-{i}"]
        assert run.error is None and [o.epoch_no for o in run.outcomes] == [1, 2]
        assert committed[f"spacetime-{i}"] == 2
    assert isinstance(by["exploding"].error, RuntimeError) and by["exploding"].outcomes == []
    assert isinstance(by["unreadable"].error, ConfigError)
    assert isinstance(by["locked"].error, BookBusy) and "another spacetime process" in str(by["locked"].error)
    epochs = dict(_q(migrated_url, "SELECT b.name, count(e.*) FROM books b LEFT JOIN simulation_epochs e "
                                   "USING (book_id) GROUP BY b.name"))  # fmt: skip
    assert epochs == {"spacetime-1": 2, "spacetime-2": 2, "spacetime-3": 2, "exploding": 0, "locked": 0}
    # one endpoint, one bound: the books together never exceeded the model's 4 slots
    assert model.max_in_flight == 4
    # copies of a seeded template get their own seeds (they do not replay each other)
    seeds = dict(_q(migrated_url, "SELECT name, (config->>'seed')::int FROM books WHERE name LIKE 'spacetime-%'"))
    assert seeds == {"spacetime-1": 1, "spacetime-2": 2, "spacetime-3": 3}
    # locks were released: the books can be played again (resumed)
    again = await play_books(_settings(migrated_url), plans[:1], epochs=1, prebuilt={"embedded": model},
                             prebuilt_embedder=HashEmbedder(dim=8))  # fmt: skip
    assert again[0].error is None and again[0].outcomes[0].epoch_no == 3


def test_plan_books_names(tmp_path: Path) -> None:
    named = tmp_path / "a.toml"
    named.write_text('name = "alpha"\n')
    plain = tmp_path / "b.toml"
    plain.write_text('topic = "Bees"\n')
    broken = tmp_path / "c.toml"
    broken.write_text("topic = \n")
    assert [p.name for p in plan_books([named, plain])] == ["alpha", "b"]
    assert [p.name for p in plan_books([named], copies=2)] == ["alpha-1", "alpha-2"]
    assert [p.name for p in plan_books([plain], copies=2)] == ["spacetime-1", "spacetime-2"]
    assert [p.name for p in plan_books([plain], book_name="mine", copies=2)] == ["mine-1", "mine-2"]
    assert [(p.name, p.seed_offset) for p in plan_books([named, plain], copies=2)] == [
        ("alpha-1", 0), ("alpha-2", 1), ("b-1", 0), ("b-2", 1)]  # fmt: skip
    mixed = plan_books([named, broken])
    assert mixed[1].name == "c" and isinstance(mixed[1].error, ConfigError)
    with pytest.raises(ConfigError, match="two books would be named 'alpha'"):
        plan_books([named, named])
    with pytest.raises(ConfigError, match="--book names one book"):
        plan_books([named, plain], book_name="x")


@pytest.fixture
def cli_env(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {"SPACETIME_DATA_DIR": str(tmp_path / "data")}
    yield env
    run_cli("db", "stop", "--force", env=env)


def test_cli_runs_copies_and_reports_a_failing_file(tmp_path: Path, cli_env: dict[str, str]) -> None:
    with ServerProcess(LatencyModel(ttft_s=0.0, per_token_s=0.0, output_tokens=20, slots=4)) as server:
        book = tmp_path / "tale.toml"
        book.write_text(
            'name = "tale"\nmax_tokens = 32\nseed = 3\nmodel = "bench"\nembedder = "bench"\n'
            f'[endpoints.bench]\nkind = "openai"\nbase_url = "{server.base_url}"\nmodel = "bench-model"\n'
            "concurrency = 4\n"
        )
        copies = run_cli("run", str(book), "--books", "3", "--epochs", "2", env=cli_env, timeout=300)
        assert copies.returncode == 0, copies.stderr
        assert "played 6 epoch(s) of 3 book(s), 0 failed" in copies.stdout
        for i in (1, 2, 3):
            assert f"tale-{i} · epoch 2: chapter" in copies.stdout
        assert server.stats()["requests"] == 3 * 2 * 10  # 2N calls per epoch, N = 5

        broken = tmp_path / "broken.toml"
        broken.write_text("topic = \n")
        mixed = run_cli("run", str(book), str(broken), "--epochs", "1", env=cli_env, timeout=300)
    assert mixed.returncode == 2, (mixed.stdout, mixed.stderr)
    assert "played 1 epoch(s) of 2 book(s), 1 failed" in mixed.stdout
    lines = [x for x in mixed.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "book 'broken'" in lines[0] and "not valid TOML" in lines[0], mixed.stderr
    status = run_cli("status", "--json", env=cli_env)
    import json

    epochs = {b["book"]: b["epochs"] for b in json.loads(status.stdout)["books"]}
    assert epochs == {"tale-1": 2, "tale-2": 2, "tale-3": 2, "tale": 1}
