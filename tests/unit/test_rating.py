"""Elo: conserved, order-invariant, bounded by K, rewarding the higher total."""

from __future__ import annotations

import random
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacetime.rules.rating import INITIAL_RATING, K_FACTOR, elo_update, expected_score, outcome

ratings_st = st.floats(800, 2400, allow_nan=False)
totals_st = st.sampled_from([-6.0, -1.0, 0.0, 3.5, 5.0, 7.25, 10.0]) | st.floats(-6, 10, allow_nan=False)


def test_constants() -> None:
    assert INITIAL_RATING == 1500.0
    assert K_FACTOR == 32.0


def test_expected_score() -> None:
    assert expected_score(1500, 1500) == 0.5
    assert expected_score(1900, 1500) == pytest.approx(10 / 11)
    assert expected_score(1500, 1900) + expected_score(1900, 1500) == pytest.approx(1.0)
    assert expected_score(0, 1e9) == 0.0  # no overflow on absurd gaps


def test_outcome_with_tolerance() -> None:
    assert outcome(7.0, 6.0) == 1.0
    assert outcome(6.0, 7.0) == 0.0
    assert outcome(7.0, 7.0 + 1e-12) == 0.5


def test_two_equal_players() -> None:
    a, b = uuid4(), uuid4()
    after = elo_update({a: 1500.0, b: 1500.0}, {a: 8.0, b: 3.0})
    assert after == {a: 1516.0, b: 1484.0}


def test_round_robin_of_three() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    after = elo_update({a: 1500.0, b: 1500.0, c: 1500.0}, {a: 9.0, b: 5.0, c: 5.0})
    assert after[a] == pytest.approx(1516.0)  # won both: 32/2 · (0.5 + 0.5)
    assert after[b] == pytest.approx(1492.0)  # lost one, drew one: 32/2 · (−0.5 + 0)
    assert after[c] == pytest.approx(1492.0)


def test_unscored_agents_keep_their_rating() -> None:
    a, b, forfeit = uuid4(), uuid4(), uuid4()
    after = elo_update({a: 1500.0, b: 1600.0, forfeit: 1400.0}, {a: 5.0, b: 6.0})
    assert after[forfeit] == 1400.0
    assert set(after) == {a, b, forfeit}
    assert elo_update({a: 1500.0, b: 1600.0}, {a: 5.0}) == {a: 1500.0, b: 1600.0}
    assert elo_update({a: 1500.0}, {}) == {a: 1500.0}


def test_scored_agent_without_rating_is_an_error() -> None:
    with pytest.raises(ValueError):
        elo_update({}, {uuid4(): 1.0, uuid4(): 2.0})


def field(draw: st.DrawFn, n: int) -> tuple[dict[UUID, float], dict[UUID, float]]:
    agents = [uuid4() for _ in range(n)]
    ratings = {a: draw(ratings_st) for a in agents}
    scores = {a: draw(totals_st) for a in agents if draw(st.integers(0, 4)) > 0}
    return ratings, scores


@st.composite
def fields(draw: st.DrawFn) -> tuple[dict[UUID, float], dict[UUID, float]]:
    return field(draw, draw(st.integers(0, 8)))


@settings(max_examples=200, deadline=None)
@given(f=fields(), k=st.sampled_from([K_FACTOR, 16.0, 40.0]))
def test_conserved_and_bounded(f: tuple[dict[UUID, float], dict[UUID, float]], k: float) -> None:
    ratings, scores = f
    after = elo_update(ratings, scores, k=k)
    assert set(after) == set(ratings)
    assert sum(after.values()) == pytest.approx(sum(ratings.values()), abs=1e-6)
    for agent, before in ratings.items():
        assert abs(after[agent] - before) <= k + 1e-9
        if agent not in scores or len(scores) < 2:
            assert after[agent] == before


@settings(max_examples=100, deadline=None)
@given(f=fields(), seed=st.integers())
def test_order_invariant(f: tuple[dict[UUID, float], dict[UUID, float]], seed: int) -> None:
    ratings, scores = f
    rng = random.Random(seed)
    r_items, s_items = list(ratings.items()), list(scores.items())
    rng.shuffle(r_items)
    rng.shuffle(s_items)
    assert elo_update(dict(r_items), dict(s_items)) == elo_update(ratings, scores)


@settings(max_examples=200, deadline=None)
@given(f=fields(), rating=ratings_st, low=totals_st, gap=st.floats(0.01, 10))
def test_higher_total_ends_higher_than_equal_rated_peer(
    f: tuple[dict[UUID, float], dict[UUID, float]], rating: float, low: float, gap: float
) -> None:
    ratings, scores = f
    hi, lo = uuid4(), uuid4()
    ratings |= {hi: rating, lo: rating}
    scores |= {hi: low + gap, lo: low}
    after = elo_update(ratings, scores)
    assert after[hi] > after[lo]


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 8), total=totals_st)
def test_all_draws_among_equals_change_nothing(n: int, total: float) -> None:
    agents = [uuid4() for _ in range(n)]
    after = elo_update(dict.fromkeys(agents, INITIAL_RATING), dict.fromkeys(agents, total))
    assert all(after[a] == INITIAL_RATING for a in agents)
