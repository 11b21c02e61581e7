"""One full epoch with every agent on a REAL OpenAI-compatible server on loopback (``python -m llama_cpp.server``
with the same GGUF), through the engine's normal HTTP backend, recorded in the real embedded PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from spacetime.adapters.pg.store import Store
from spacetime.book import parse_book
from spacetime.engine.director import Director
from spacetime.engine.models import ModelPool

pytestmark = pytest.mark.slow


async def test_epoch_over_http(llama_server: str, store: Store, migrated_url: str) -> None:
    config = parse_book({
        "topic": "Clocks", "seed": 5, "max_tokens": 32, "model": "local", "embedder": "none",
        "roster": ["Physicist", "Financier", "Politician", "Mathematician"],
        "endpoints": {"local": {"kind": "openai", "base_url": llama_server, "model": "smollm2", "concurrency": 1,
                                "context_window": 4096, "structured_output": "json_object_schema"}},
    })  # fmt: skip
    book = await store.create_book("http", config.topic, config.outline, config.to_json())
    await store.upsert_personas(config.roster + config.reserve)
    models = ModelPool(config)
    director = Director(store=store, book=book, config=config, models=models)
    try:
        await director.setup()
        [outcome] = await director.play(1)
    finally:
        await director.close()
        await models.aclose()
    assert outcome.drafts == 4 and outcome.forfeits == 0
    with psycopg.connect(migrated_url) as conn:
        statuses = [r[0] for r in conn.execute("SELECT status FROM ballots")]
        votes = conn.execute("SELECT count(*), min(insight_score), max(insight_score) FROM peer_votes").fetchone()
        drafts = conn.execute("SELECT bool_and(completion_tokens <= 32), count(*) FROM drafts").fetchone()
        stored = conn.execute("SELECT config::text FROM books").fetchone()[0]
    assert len(statuses) == 4 and "abstained" not in statuses  # structured output gives valid ballots
    assert votes[0] == 12 and 1 <= votes[1] <= votes[2] <= 10
    assert drafts == (True, 4)
    assert "api_key" not in stored or '"api_key_env": null' in stored
