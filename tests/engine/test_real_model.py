"""A full 3-epoch tournament on the REAL embedded model (SmolLM2-135M via llama-cpp-python) and the real embedded
PostgreSQL. Slow (about a minute per epoch on 2 cores)."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest

from spacetime.adapters.pg.store import Store
from spacetime.book import load_book
from spacetime.engine.director import Director
from spacetime.engine.models import ModelPool

pytestmark = pytest.mark.slow


def _q(url: str, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


async def test_three_real_epochs(store: Store, migrated_url: str) -> None:
    config = dataclasses.replace(load_book(None), seed=11, max_tokens=48)
    book = await store.create_book("real", config.topic, config.outline, config.to_json())
    await store.upsert_personas(config.roster + config.reserve)
    models = ModelPool(config)
    director = Director(store=store, book=book, config=config, models=models)
    try:
        await director.setup()
        outcomes = await director.play(3)
    finally:
        await director.close()
        await models.aclose()
    assert len(outcomes) == 3
    epochs = _q(migrated_url, "SELECT epoch_no, winner_agent_id, loser_agent_id FROM simulation_epochs ORDER BY 1")
    assert [e[0] for e in epochs] == [1, 2, 3] and all(e[1] and e[2] for e in epochs)
    abstained = dict(_q(migrated_url, "SELECT e.epoch_no, count(*) FILTER (WHERE b.status = 'abstained') "
                                      "FROM ballots b JOIN simulation_epochs e USING (epoch_id) GROUP BY 1"))
    votes = dict(_q(migrated_url, "SELECT e.epoch_no, count(*) FROM peer_votes v JOIN simulation_epochs e "
                                  "USING (epoch_id) GROUP BY 1"))
    for epoch_no in (1, 2, 3):
        # N·(N−1) votes minus what abstaining (or partial) ballots did not give
        assert votes.get(epoch_no, 0) <= 20
        assert votes.get(epoch_no, 0) >= max(2, 20 - 4 * abstained.get(epoch_no, 0) - 4)  # votes were counted
    # every committed epoch was decided by counted votes (an epoch without one is retried, never committed)
    judged = _q(migrated_url, "SELECT count(*) FROM drafts WHERE votes_received > 0 GROUP BY epoch_id")
    assert len(judged) == 3 and all(n >= 2 for (n,) in judged)
    # the embedded model gives log-probabilities: every vote whose integer the tokens confirm carries its G-Eval
    # reading, within the scale
    read = _q(migrated_url, "SELECT count(*), count(expected_score), coalesce(min(expected_score), 1), "
                            "coalesce(max(expected_score), 10) FROM peer_votes")  # fmt: skip
    assert read[0][1] >= 0.9 * read[0][0] and 1.0 <= read[0][2] <= read[0][3] <= 10.0
    dupes = _q(migrated_url, "SELECT epoch_id, voter_agent, target_agent, count(*) FROM peer_votes GROUP BY 1, 2, 3 "
                             "HAVING count(*) > 1")
    assert dupes == []
    assert _q(migrated_url, "SELECT count(*), count(embedding) FROM chapters") == [(3, 3)]
    assert _q(migrated_url, "SELECT count(*) = count(embedding) FROM drafts") == [(True,)]
    dims = _q(migrated_url, "SELECT DISTINCT vector_dims(embedding), embedding_model FROM drafts")
    assert len(dims) == 1 and dims[0][0] > 100
    agents = _q(migrated_url, "SELECT status, born_epoch FROM agents")
    assert sum(1 for a in agents if a[0] == "eliminated") == 3
    assert sum(1 for a in agents if a[1] > 0) == 3
    assert sum(1 for a in agents if a[0] == "alive") == 5
    tokens = _q(migrated_url, "SELECT min(completion_tokens), max(completion_tokens), bool_or(truncated) FROM drafts")
    # the cap holds to within one character: llama-cpp-python finishes a multi-byte UTF-8 character it has started
    # before it checks max_tokens (Llama._create_completion's "multibyte_fix"), so a draft cut at the cap may carry
    # up to 3 more tokens
    assert tokens[0][0] > 0 and tokens[0][1] <= 48 + 3
