"""Scoring: per-ballot ranks of adjusted scores (truncation −5 once), a straggler-only lateness, bootstrap intervals."""

from __future__ import annotations

import random
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacetime.domain import Draft, FinishReason, Vote
from spacetime.rules.scoring import (
    STRAGGLER_FACTOR,
    STRAGGLER_PENALTY,
    TRUNCATION_PENALTY,
    Penalties,
    adjusted_ballots,
    bootstrap,
    draft_penalties,
    interval,
    lateness,
    normalised_insight,
    rank_shares,
    score_drafts,
    with_intervals,
)


def draft(latency: float = 10.0, truncated: bool = False, agent: UUID | None = None) -> Draft:
    reason = FinishReason.LENGTH if truncated else FinishReason.STOP
    return Draft(agent or uuid4(), "text", reason, 100, 2048 if truncated else 500, latency)


def vote(voter: UUID, target: UUID, score: int) -> Vote:
    return Vote(voter, target, score, "because")


def pen(drafts: list[Draft]) -> dict[UUID, tuple[float, float]]:
    return {a: (p.truncation, p.lateness) for a, p in draft_penalties(drafts).items()}


def test_constants() -> None:
    assert (TRUNCATION_PENALTY, STRAGGLER_FACTOR, STRAGGLER_PENALTY) == (5.0, 2.0, 0.5)


def test_lateness_is_a_fixed_straggler_penalty_beyond_the_dead_band() -> None:
    assert lateness(10, 10) == lateness(19.9, 10) == lateness(20, 10) == 0.0  # inside the band: nothing
    assert lateness(20.01, 10) == lateness(95, 10) == STRAGGLER_PENALTY
    assert lateness(5, 0) == lateness(float("inf"), 10) == 0.0


def test_draft_penalties() -> None:
    fast, median, slow, cut = draft(6), draft(12), draft(30), draft(12, truncated=True)
    p = draft_penalties([fast, median, slow, cut])  # median latency 12
    assert p[fast.agent_id] == p[median.agent_id] == Penalties(0.0, 0.0)
    assert p[slow.agent_id] == Penalties(0.0, 0.5) and p[cut.agent_id] == Penalties(5.0, 0.0)
    assert draft_penalties([]) == {}


def test_rank_shares_use_mid_ranks() -> None:
    a, b, c, d = (uuid4() for _ in range(4))
    assert rank_shares({a: 9, b: 3, c: 3, d: 1}) == {a: 1.0, b: 0.5, c: 0.5, d: 0.0}
    assert rank_shares({a: 4, b: 4}) == {a: 0.5, b: 0.5}
    assert rank_shares({a: 7}) == {a: 0.5}


def test_normalised_insight_reads_on_the_1_to_10_scale() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    # a tops ballot 1 (share 1) and ties b on top of ballot 2 (mid-rank 2.5 of 3: share 0.75)
    assert normalised_insight([{a: 9, b: 2}, {a: 5, b: 5, c: 1}]) == {a: 1 + 9 * 0.875, b: 1 + 9 * 0.375, c: 1.0}


def test_a_harsh_judge_cannot_lift_its_own_draft() -> None:
    """The old plain mean let a voter who scored everyone 1 put its own draft on top; ranks do not."""
    drafts = [draft() for _ in range(4)]
    harsh, others = drafts[0].agent_id, [d.agent_id for d in drafts[1:]]
    honest = {others[0]: 8, others[1]: 6, others[2]: 4, harsh: 5}
    votes = [vote(harsh, t, 1) for t in others]
    votes += [vote(v, t, s) for v in others for t, s in honest.items() if t != v]
    scores = score_drafts(drafts, votes, pen(drafts))
    assert max(scores.values(), key=lambda s: s.total).agent_id == others[0]
    # the harsh ballot is all ties: it moves no draft away from the middle
    assert scores[harsh].total < scores[others[0]].total


def test_truncation_is_applied_once_inside_each_vote() -> None:
    long, short, third = draft(truncated=True), draft(), draft()
    voter = uuid4()
    votes = [vote(voter, long.agent_id, 9), vote(voter, short.agent_id, 4), vote(voter, third.agent_id, 2)]
    scores = score_drafts([long, short, third], votes, pen([long, short, third]))
    # 9 − 5 = 4 ties the 4: both share the mid-rank (once); twice (−10) would rank it last
    assert scores[long.agent_id].insight == scores[short.agent_id].insight == 1 + 9 * 0.75
    assert scores[long.agent_id].total == scores[long.agent_id].insight  # not subtracted again from the total
    assert scores[long.agent_id].truncation_penalty == 5.0


def test_a_straggler_loses_the_fixed_amount_from_its_total_only() -> None:
    drafts = [draft(10), draft(11), draft(50)]
    voter = uuid4()
    votes = [vote(voter, d.agent_id, s) for d, s in zip(drafts, (3, 5, 9), strict=True)]
    scores = score_drafts(drafts, votes, pen(drafts))
    late = scores[drafts[2].agent_id]
    assert (late.insight, late.lateness_penalty, late.total) == (10.0, 0.5, 9.5)


@settings(max_examples=60, deadline=None)
@given(latencies=st.lists(st.floats(10.0, 12.0), min_size=3, max_size=6), data=st.data())
def test_jitter_inside_the_dead_band_changes_nothing(latencies: list[float], data: st.DataObject) -> None:
    """±10 % jitter on latencies within 20 % of each other never crosses 2 × median: no total moves."""
    drafts = [draft(x) for x in latencies]
    jittered = [draft(d.latency_s * data.draw(st.floats(0.9, 1.1)), agent=d.agent_id) for d in drafts]
    voter = uuid4()
    votes = [vote(voter, d.agent_id, data.draw(st.integers(1, 10))) for d in drafts]
    before, after = score_drafts(drafts, votes, pen(drafts)), score_drafts(jittered, votes, pen(jittered))
    assert {a: s.total for a, s in before.items()} == {a: s.total for a, s in after.items()}
    assert all(s.lateness_penalty == 0.0 for s in after.values())


def test_partial_and_lone_ballots() -> None:
    a, b, c = draft(), draft(), draft()
    v1, v2 = uuid4(), uuid4()
    votes = [vote(v1, a.agent_id, 7), vote(v2, a.agent_id, 3), vote(v2, b.agent_id, 9)]  # v1 scored one draft
    assert adjusted_ballots([a, b, c], votes, {}) == [{a.agent_id: 3, b.agent_id: 9}]
    scores = score_drafts([a, b, c], votes, {})
    assert (scores[a.agent_id].votes, scores[b.agent_id].votes, scores[c.agent_id].votes) == (1, 1, 0)
    assert scores[a.agent_id].mean_insight == 3.0  # the lone score is not counted
    assert scores[c.agent_id].insight == 0.0 and scores[c.agent_id].total == 0.0


def test_score_drafts_rejects_impossible_votes() -> None:
    a, b = draft(), draft()
    with pytest.raises(ValueError, match="unknown"):
        score_drafts([a], [vote(a.agent_id, uuid4(), 5)], {})
    with pytest.raises(ValueError, match="self-vote"):
        score_drafts([a], [vote(a.agent_id, a.agent_id, 5)], {})
    with pytest.raises(ValueError, match="duplicate"):
        score_drafts([a, b], [vote(a.agent_id, b.agent_id, 5), vote(a.agent_id, b.agent_id, 6)], {})
    with pytest.raises(ValueError, match="two drafts"):
        score_drafts([a, a], [], {})


def test_interval() -> None:
    assert interval([], 3.0) == (3.0, 3.0)
    assert interval([float(x) for x in range(200)], 100.0) == (5.0, 194.0)
    assert interval([5.0] * 10, 1.0) == (1.0, 5.0)  # widened to contain the point estimate


def epoch(data: st.DataObject, n: int) -> tuple[list[Draft], list[Vote]]:
    drafts = [draft(truncated=data.draw(st.booleans())) for _ in range(n)]
    votes = [vote(v.agent_id, t.agent_id, data.draw(st.integers(1, 10))) for v in drafts for t in drafts if v is not t]
    return drafts, votes


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 6), seed=st.integers(0, 2**32), data=st.data())
def test_bootstrap_interval_contains_the_point_and_is_reproducible(n: int, seed: int, data: st.DataObject) -> None:
    drafts, votes = epoch(data, n)
    ballots = adjusted_ballots(drafts, votes, pen(drafts))
    samples = bootstrap(ballots, random.Random(seed), replicates=50)
    assert samples == bootstrap(ballots, random.Random(seed), replicates=50)
    scores = with_intervals(score_drafts(drafts, votes, pen(drafts)), samples)
    for s in scores.values():
        assert 1.0 <= s.ci_low <= s.insight <= s.ci_high <= 10.0
