"""Scoring: mean insight minus truncation (5 points) and lateness (up to 1 point)."""

from __future__ import annotations

import itertools
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacetime.domain import Draft, FinishReason, Vote
from spacetime.rules.scoring import (
    LATENESS_WEIGHT,
    TRUNCATION_PENALTY,
    Penalties,
    draft_penalties,
    lateness,
    rated_totals,
    score_drafts,
)


def draft(latency: float = 10.0, truncated: bool = False, agent: UUID | None = None) -> Draft:
    reason = FinishReason.LENGTH if truncated else FinishReason.STOP
    return Draft(agent or uuid4(), "text", reason, 100, 2048 if truncated else 500, latency)


def vote(voter: UUID, target: UUID, score: int) -> Vote:
    return Vote(voter, target, score, "because")


def test_constants() -> None:
    assert TRUNCATION_PENALTY == 5.0
    assert LATENESS_WEIGHT == 1.0


def test_lateness_formula() -> None:
    assert lateness(10, 10) == 0.0
    assert lateness(5, 10) == 0.0
    assert lateness(15, 10) == 0.5
    assert lateness(20, 10) == 1.0
    assert lateness(95, 10) == 1.0
    assert lateness(5, 0) == 0.0
    assert lateness(float("inf"), 10) == 0.0


def test_draft_penalties() -> None:
    fast, median, slow, cut = draft(8), draft(10), draft(15), draft(30, truncated=True)
    extra = draft(12)
    p = draft_penalties([fast, median, slow, cut, extra])  # median latency 12
    assert p[fast.agent_id] == Penalties(0.0, 0.0)
    assert p[median.agent_id] == Penalties(0.0, 0.0)
    assert p[slow.agent_id] == Penalties(0.0, pytest.approx(0.25))
    assert p[cut.agent_id] == Penalties(5.0, 1.0)
    assert p[cut.agent_id].total == 6.0
    weighted = draft_penalties([fast, median, slow, cut, extra], truncation_penalty=2.0, lateness_weight=0.5)
    assert weighted[cut.agent_id] == Penalties(2.0, 0.5)
    assert draft_penalties([]) == {}
    alone = draft(99)
    assert draft_penalties([alone]) == {alone.agent_id: Penalties(0.0, 0.0)}  # a lone draft is the median


@settings(max_examples=100, deadline=None)
@given(
    latencies=st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=9),
    truncated=st.lists(st.booleans(), min_size=9, max_size=9),
    weight=st.floats(0, 3),
)
def test_penalty_bounds(latencies: list[float], truncated: list[bool], weight: float) -> None:
    drafts = [draft(lat, cut) for lat, cut in zip(latencies, truncated, strict=False)]
    penalties = draft_penalties(drafts, lateness_weight=weight)
    ordered = sorted(drafts, key=lambda d: d.latency_s)
    for d in drafts:
        p = penalties[d.agent_id]
        assert p.truncation == (5.0 if d.truncated else 0.0)
        assert 0.0 <= p.lateness <= weight + 1e-12
    for a, b in itertools.pairwise(ordered):  # slower never pays less
        assert penalties[a.agent_id].lateness <= penalties[b.agent_id].lateness


def test_score_is_mean_insight_minus_penalties() -> None:
    a, b, c = draft(), draft(truncated=True), draft()
    votes = [vote(b.agent_id, a.agent_id, 8), vote(c.agent_id, a.agent_id, 5), vote(a.agent_id, b.agent_id, 9)]
    penalties = {a.agent_id: Penalties(0.0, 0.5), b.agent_id: Penalties(5.0, 0.0)}
    scores = score_drafts([a, b, c], votes, penalties)
    assert list(scores) == [a.agent_id, b.agent_id, c.agent_id]
    sa, sb, sc = scores[a.agent_id], scores[b.agent_id], scores[c.agent_id]
    assert (sa.mean_insight, sa.votes, sa.lateness_penalty, sa.total) == (6.5, 2, 0.5, 6.0)
    assert (sb.mean_insight, sb.truncation_penalty, sb.total) == (9.0, 5.0, 4.0)
    assert (sc.mean_insight, sc.votes, sc.total) == (0.0, 0, 0.0)  # nobody judged it
    assert rated_totals(scores) == {a.agent_id: 6.0, b.agent_id: 4.0}


def test_unjudged_draft_total_is_minus_its_penalties() -> None:
    d = draft()
    score = score_drafts([d], [], {d.agent_id: (5.0, 0.25)})[d.agent_id]
    assert (score.mean_insight, score.votes, score.total) == (0.0, 0, -5.25)
    assert rated_totals({d.agent_id: score}) == {}


def test_score_drafts_rejects_impossible_votes() -> None:
    a, b = draft(), draft()
    stranger = uuid4()
    with pytest.raises(ValueError, match="unknown draft"):
        score_drafts([a], [vote(a.agent_id, stranger, 5)], {})
    with pytest.raises(ValueError, match="self-vote"):
        score_drafts([a], [vote(a.agent_id, a.agent_id, 5)], {})
    with pytest.raises(ValueError, match="duplicate"):
        score_drafts([a, b], [vote(a.agent_id, b.agent_id, 5), vote(a.agent_id, b.agent_id, 6)], {})
    with pytest.raises(ValueError, match="two drafts"):
        score_drafts([a, a], [], {})


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 7), data=st.data())
def test_score_properties(n: int, data: st.DataObject) -> None:
    drafts = [draft(data.draw(st.floats(1, 100)), data.draw(st.booleans())) for _ in range(n)]
    votes = [
        vote(voter.agent_id, target.agent_id, data.draw(st.integers(1, 10)))
        for voter in drafts
        for target in drafts
        if voter is not target and data.draw(st.booleans())
    ]
    penalties = draft_penalties(drafts)
    scores = score_drafts(drafts, votes, penalties)
    for d in drafts:
        s = scores[d.agent_id]
        received = [v.insight_score for v in votes if v.target_id == d.agent_id]
        assert s.votes == len(received)
        assert s.mean_insight == (pytest.approx(sum(received) / len(received)) if received else 0.0)
        assert s.total == pytest.approx(s.mean_insight - s.truncation_penalty - s.lateness_penalty)
        assert (s.truncation_penalty, s.lateness_penalty) == penalties[d.agent_id]
        if received:
            assert -6.0 <= s.total <= 10.0
