"""The collapse and the whole verdict (``judge``): winner, loser, ratings, confidence."""

from __future__ import annotations

import dataclasses
import random
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacetime.domain import Agent, Draft, DraftScore, FinishReason, Persona, Vote
from spacetime.errors import EpochUnjudged
from spacetime.rules.selection import Verdict, collapse, judge, pick_loser, pick_winner, verdict_confidence


def score(agent: UUID, total: float, votes: int = 3) -> DraftScore:
    return DraftScore(agent, total, 0.0, 0.0, total, votes, insight=total, ci_low=total, ci_high=total)


def table(*scores: DraftScore) -> dict[UUID, DraftScore]:
    return {s.agent_id: s for s in scores}


def test_winner_is_the_best_total_among_judged_drafts() -> None:
    a, b, c, unjudged = uuid4(), uuid4(), uuid4(), uuid4()
    scores = table(score(a, 6.0), score(b, 8.5), score(c, 2.0), score(unjudged, 9.9, votes=0))
    assert pick_winner(scores, random.Random(0)) == b
    with pytest.raises(ValueError, match="counted vote"):
        pick_winner(table(score(a, 5.0, votes=0)), random.Random(0))


def test_ties_break_by_strength_then_at_random() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    tied = table(score(a, 7.0), score(b, 7.0), score(c, 7.0))
    assert pick_winner(tied, random.Random(0), strength={a: 1500.0, b: 1600.0, c: 1400.0}) == b
    winners = {pick_winner(tied, random.Random(s)) for s in range(40)}
    assert winners == {a, b, c}
    reversed_table = dict(reversed(list(tied.items())))
    assert all(pick_winner(tied, random.Random(s)) == pick_winner(reversed_table, random.Random(s)) for s in range(40))


def test_a_flagged_draft_never_wins_unless_all_judged_drafts_are_flagged() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    scores = table(score(a, 9.0), score(b, 3.0), score(c, 1.0, votes=0))
    assert pick_winner(scores, random.Random(0), flagged={a}) == b
    assert pick_winner(scores, random.Random(0), flagged={a, b}) == a  # every judged draft flagged: best of them
    assert collapse(scores, {a: 1.0, b: 2.0, c: 3.0}, [a, b, c], random.Random(0), flagged={a}).winner_id == b


def test_loser_is_the_lowest_rating_and_the_winner_is_spared() -> None:
    a, b, c, forfeit = uuid4(), uuid4(), uuid4(), uuid4()
    scores = table(score(a, 9.0), score(b, 5.0), score(c, 4.0))
    ratings = {a: 1400.0, b: 1450.0, c: 1500.0, forfeit: 1460.0}
    decision = collapse(scores, ratings, [a, b, c, forfeit], random.Random(0))
    assert (decision.winner_id, decision.loser_id) == (a, b)  # a is lowest but just won
    ratings[forfeit] = 1450.0  # tie with b: an agent with no draft ranks below every draft
    assert pick_loser(ratings, [a, b, c, forfeit], scores, random.Random(0), spare=a) == forfeit
    alone = collapse(table(score(a, 9.0)), {a: 1500.0}, [a], random.Random(0))
    assert alone.winner_id == alone.loser_id == a
    with pytest.raises(ValueError):
        pick_loser({}, [], {}, random.Random(0))


def test_verdict_confidence() -> None:
    a, b = uuid4(), uuid4()
    reps = [{a: 9.0, b: 2.0}, {a: 2.0, b: 9.0}, {a: 5.0, b: 5.0}, {b: 3.0}]
    assert verdict_confidence(reps, {}, a) == pytest.approx((1 + 0 + 0.5 + 0) / 4)
    assert verdict_confidence(reps, {a: 0.5}, a) == pytest.approx(0.25)  # a straggler loses the tie
    assert verdict_confidence([], {}, a) == 1.0


# ---------------------------------------------------------------------------------------------------- judge
def agents_of(n: int, rng: random.Random) -> list[Agent]:
    return [Agent(uuid4(), Persona(f"P{i}", "D", "v", "s"), rng.uniform(1300, 1700), sigma=rng.uniform(60, 250),
                  elo=rng.uniform(1300, 1700)) for i in range(n)]  # fmt: skip


def draft(agent: Agent, truncated: bool = False, latency: float = 10.0, flags: tuple[str, ...] = ()) -> Draft:
    reason = FinishReason.LENGTH if truncated else FinishReason.STOP
    return Draft(agent.agent_id, "text", reason, 10, 10, latency, flags=flags)


def verdict_key(v: Verdict) -> tuple[object, ...]:
    return v.decision, v.ratings, {a: s.total for a, s in v.scores.items()}, v.confidence


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 6), seed=st.integers(0, 2**32), data=st.data())
def test_a_voter_on_its_own_scale_changes_no_verdict(n: int, seed: int, data: st.DataObject) -> None:
    """Shifting one voter's scores by a constant, or any strictly increasing transform (no truncation here), changes
    neither winner, loser, ratings, totals nor confidence."""
    rng = random.Random(seed)
    agents = agents_of(n, rng)
    drafts = [draft(a, latency=rng.uniform(5, 30)) for a in agents]
    votes = [Vote(v.agent_id, t.agent_id, data.draw(st.integers(1, 10)), "") for v in agents for t in agents
             if v is not t]  # fmt: skip
    voter = data.draw(st.sampled_from(agents)).agent_id
    shift = data.draw(st.integers(-50, 50))
    power = data.draw(st.integers(1, 3))
    moved = [dataclasses.replace(v, insight_score=v.insight_score**power + shift) if v.voter_id == voter else v
             for v in votes]  # fmt: skip
    base = judge(drafts, votes, agents, random.Random(seed), replicates=30)
    other = judge(drafts, moved, agents, random.Random(seed), replicates=30)
    assert verdict_key(base) == verdict_key(other)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 6), seed=st.integers(0, 2**32), data=st.data())
def test_truncation_shift_invariance_holds_with_the_penalty(n: int, seed: int, data: st.DataObject) -> None:
    """A constant added to one voter's scores commutes with the −5: truncated drafts change nothing either."""
    rng = random.Random(seed)
    agents = agents_of(n, rng)
    drafts = [draft(a, truncated=data.draw(st.booleans())) for a in agents]
    votes = [Vote(v.agent_id, t.agent_id, data.draw(st.integers(1, 10)), "") for v in agents for t in agents
             if v is not t]  # fmt: skip
    voter, shift = data.draw(st.sampled_from(agents)).agent_id, data.draw(st.integers(-9, 9))
    moved = [dataclasses.replace(v, insight_score=v.insight_score + shift) if v.voter_id == voter else v for v in votes]
    assert verdict_key(judge(drafts, votes, agents, random.Random(seed), replicates=20)) == verdict_key(
        judge(drafts, moved, agents, random.Random(seed), replicates=20)
    )


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 6), seed=st.integers(0, 2**32), data=st.data())
def test_a_harsh_voter_cannot_lift_its_own_draft(n: int, seed: int, data: st.DataObject) -> None:
    """Whatever a voter gives the others, its own draft's total (and rating) stays the same: it never judges it, and
    the others' ballots are read on their own scales."""
    rng = random.Random(seed)
    agents = agents_of(n, rng)
    drafts = [draft(a) for a in agents]
    harsh = agents[0].agent_id
    votes = [Vote(v.agent_id, t.agent_id, data.draw(st.integers(1, 10)), "") for v in agents for t in agents
             if v is not t]  # fmt: skip
    all_ones = [dataclasses.replace(v, insight_score=1) if v.voter_id == harsh else v for v in votes]
    base = judge(drafts, votes, agents, random.Random(seed), replicates=0)
    harsher = judge(drafts, all_ones, agents, random.Random(seed), replicates=0)
    assert harsher.scores[harsh].total == base.scores[harsh].total
    # every ballot's shares average ½: however harsh (or flat) a voter is, it cannot lower the field as a whole
    others = [a.agent_id for a in agents[1:]]
    assert sum(harsher.scores[a].total for a in others) == pytest.approx(sum(base.scores[a].total for a in others))


def test_a_forfeit_is_ranked_last_and_loses_rating() -> None:
    rng = random.Random(3)
    agents = agents_of(4, rng)
    agents = [dataclasses.replace(a, rating=1500.0, sigma=100.0, elo=1500.0) for a in agents]
    drafts = [draft(a) for a in agents[:3]]  # agents[3] forfeited its draft
    votes = [Vote(v.agent_id, d.agent_id, 5, "") for v in agents for d in drafts if v.agent_id != d.agent_id]
    verdict = judge(drafts, votes, agents, random.Random(0))
    change = {r.agent_id: r for r in verdict.ratings}
    forfeit = change[agents[3].agent_id]
    assert forfeit.after < forfeit.before and forfeit.elo_after < forfeit.elo_before
    assert verdict.decision.loser_id == agents[3].agent_id
    assert all(change[d.agent_id].after > 1500.0 for d in drafts)  # tied with each other, above the forfeit


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 6), seed=st.integers(0, 2**32), data=st.data())
def test_flagged_never_wins_and_confidence_is_a_share(n: int, seed: int, data: st.DataObject) -> None:
    rng = random.Random(seed)
    agents = agents_of(n, rng)
    flagged = {a.agent_id for a in agents if data.draw(st.booleans())}
    drafts = [draft(a, flags=("addressed-to-reviewers",) if a.agent_id in flagged else ()) for a in agents]
    votes = [Vote(v.agent_id, t.agent_id, data.draw(st.integers(1, 10)), "") for v in agents for t in agents
             if v is not t]  # fmt: skip
    verdict = judge(drafts, votes, agents, random.Random(seed), flagged=flagged, replicates=30)
    if len(flagged) < n:
        assert verdict.decision.winner_id not in flagged
    assert 0.0 <= verdict.confidence <= 1.0
    assert verdict.decision.loser_id != verdict.decision.winner_id
    after = {r.agent_id: r.after for r in verdict.ratings}
    assert after[verdict.decision.loser_id] == min(v for a, v in after.items() if a != verdict.decision.winner_id)
    for s in verdict.scores.values():
        assert s.ci_low <= s.insight <= s.ci_high
    again = judge(drafts, votes, agents, random.Random(seed), flagged=flagged, replicates=30)
    assert verdict_key(again) == verdict_key(verdict)  # seeded: reproducible


def test_judge_refuses_an_epoch_without_a_counted_vote() -> None:
    agents = agents_of(3, random.Random(1))
    drafts = [draft(a) for a in agents]
    lone = [Vote(agents[0].agent_id, agents[1].agent_id, 7, "")]  # one score: no scale, not counted
    with pytest.raises(EpochUnjudged, match="no counted vote"):
        judge(drafts, lone, agents, random.Random(0))
