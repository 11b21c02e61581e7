"""Collapse: the best judged draft wins; the lowest-rated living agent other than the winner is eliminated."""

from __future__ import annotations

import random
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacetime.domain import DraftScore
from spacetime.rules.selection import collapse, pick_loser, pick_winner


def score(agent: UUID, total: float, mean: float | None = None, votes: int = 3) -> DraftScore:
    mean = total if mean is None else mean
    return DraftScore(agent, mean, 0.0, mean - total, total, votes)


def table(*rows: DraftScore) -> dict[UUID, DraftScore]:
    return {r.agent_id: r for r in rows}


def test_winner_has_highest_total() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    assert pick_winner(table(score(a, 6.0), score(b, 8.5), score(c, 2.0)), random.Random(0)) == b


def test_winner_tie_breaks_by_mean_insight_then_rng() -> None:
    a, b = uuid4(), uuid4()
    scores = table(score(a, 5.0, mean=5.0), score(b, 5.0, mean=6.0))  # b paid 1 point of lateness
    assert pick_winner(scores, random.Random(0)) == b
    tied = table(score(a, 5.0), score(b, 5.0))
    winners = {pick_winner(tied, random.Random(s)) for s in range(40)}
    assert winners == {a, b}
    reversed_table = dict(reversed(list(tied.items())))
    assert all(pick_winner(tied, random.Random(s)) == pick_winner(reversed_table, random.Random(s)) for s in range(40))


def test_drafts_with_votes_win_over_unjudged_ones() -> None:
    judged, unjudged = uuid4(), uuid4()
    scores = {
        unjudged: DraftScore(unjudged, 0.0, 0.0, 0.0, 0.0, 0),
        judged: DraftScore(judged, 3.0, 5.0, 0.0, -2.0, 2),  # truncated: total below the unjudged draft's 0
    }
    assert pick_winner(scores, random.Random(0)) == judged


def test_without_any_vote_every_draft_competes() -> None:
    a, b = uuid4(), uuid4()
    scores = {a: DraftScore(a, 0.0, 5.0, 0.0, -5.0, 0), b: DraftScore(b, 0.0, 0.0, 0.5, -0.5, 0)}
    assert pick_winner(scores, random.Random(0)) == b
    with pytest.raises(ValueError):
        pick_winner({}, random.Random(0))


def test_loser_is_lowest_rated_living_agent_including_forfeits() -> None:
    a, b, forfeit, dead = uuid4(), uuid4(), uuid4(), uuid4()
    ratings = {a: 1510.0, b: 1490.0, forfeit: 1480.0, dead: 1000.0}
    scores = table(score(a, 7.0), score(b, 4.0))
    decision = collapse(scores, ratings, [a, b, forfeit], random.Random(0))
    assert (decision.winner_id, decision.loser_id) == (a, forfeit)


def test_loser_ties_break_by_lower_score_then_rng() -> None:
    a, b, c, forfeit = uuid4(), uuid4(), uuid4(), uuid4()
    scores = table(score(a, 9.0), score(b, 4.0), score(c, 5.0))
    ratings = {a: 1600.0, b: 1490.0, c: 1490.0, forfeit: 1500.0}
    assert pick_loser(ratings, [a, b, c, forfeit], scores, random.Random(0)) == b
    ratings[forfeit] = 1490.0  # no draft ranks below every draft
    assert pick_loser(ratings, [a, b, c, forfeit], scores, random.Random(0)) == forfeit
    even = table(score(b, 4.0), score(c, 4.0))
    losers = {pick_loser(ratings, [a, b, c], even, random.Random(s)) for s in range(40)}
    assert losers == {b, c}


def test_winner_is_spared_unless_alone() -> None:
    a, b = uuid4(), uuid4()
    scores = table(score(a, 9.0), score(b, 3.0))
    ratings = {a: 1300.0, b: 1700.0}  # the winner is still the lowest rated
    decision = collapse(scores, ratings, [a, b], random.Random(0))
    assert (decision.winner_id, decision.loser_id) == (a, b)
    alone = collapse(table(score(a, 9.0)), {a: 1500.0}, [a], random.Random(0))
    assert alone.winner_id == alone.loser_id == a


def test_loser_errors() -> None:
    a = uuid4()
    with pytest.raises(ValueError):
        pick_loser({}, [], {}, random.Random(0))
    with pytest.raises(ValueError):
        pick_loser({}, [a], {}, random.Random(0))


@st.composite
def epochs(draw: st.DrawFn) -> tuple[dict[UUID, DraftScore], dict[UUID, float], list[UUID]]:
    living = [uuid4() for _ in range(draw(st.integers(1, 8)))]
    drafters = [a for a in living if draw(st.integers(0, 5)) > 0] or living[:1]
    scores = {
        a: DraftScore(a, m, t, 0.0, m - t, draw(st.integers(0, 6)))
        for a in drafters
        for m, t in [(draw(st.sampled_from([0.0, 3.0, 5.5, 8.0])), draw(st.sampled_from([0.0, 5.0])))]
    }
    ratings = {a: draw(st.sampled_from([1450.0, 1500.0, 1532.0])) for a in living}
    return scores, ratings, living


@settings(max_examples=200, deadline=None)
@given(epoch=epochs(), seed=st.integers())
def test_collapse_properties(epoch: tuple[dict[UUID, DraftScore], dict[UUID, float], list[UUID]], seed: int) -> None:
    scores, ratings, living = epoch
    decision = collapse(scores, ratings, living, random.Random(seed))
    assert decision == collapse(scores, ratings, living, random.Random(seed))
    assert decision.winner_id in scores
    assert decision.loser_id in living
    if len(living) >= 2:
        assert decision.loser_id != decision.winner_id
        others = [a for a in living if a != decision.winner_id]
        assert ratings[decision.loser_id] == min(ratings[a] for a in others)
    judged = [s for s in scores.values() if s.votes > 0]
    pool = judged or list(scores.values())
    assert scores[decision.winner_id].total == max(s.total for s in pool)
