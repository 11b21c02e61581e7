"""Ratings: openskill Plackett–Luce on the 1500 scale from the ballots, the Elo column from the same pairs, and the
newcomer's entry rating."""

from __future__ import annotations

import math
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacetime.domain import Agent, Persona
from spacetime.rules.rating import (
    BETA,
    ENTRY_SIGMA,
    INITIAL_RATING,
    INITIAL_SIGMA,
    K_FACTOR,
    Skill,
    elo_from_pairs,
    elo_update,
    entry_rating,
    expected_score,
    pair_results,
    plackett_luce_update,
    with_forfeits,
)


def fresh(*agents: UUID) -> dict[UUID, Skill]:
    return {a: Skill(INITIAL_RATING, INITIAL_SIGMA) for a in agents}


def test_constants() -> None:
    assert (INITIAL_RATING, INITIAL_SIGMA, BETA, K_FACTOR, ENTRY_SIGMA) == (1500.0, 250.0, 125.0, 32.0, 125.0)


def test_expected_score() -> None:
    assert expected_score(1500, 1500) == 0.5
    assert expected_score(1900, 1500) == pytest.approx(10 / 11)
    assert expected_score(0, 1e9) == 0.0  # no overflow on absurd gaps


def test_a_ballot_is_a_match_ranking_its_drafts() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    after = plackett_luce_update(fresh(a, b, c), [{a: 9, b: 5, c: 1}])
    assert after[a].mu > INITIAL_RATING > after[c].mu and after[a].mu > after[b].mu > after[c].mu
    assert all(after[x].sigma < INITIAL_SIGMA for x in (a, b, c))  # every player learned something
    tied = plackett_luce_update(fresh(a, b), [{a: 4, b: 4}])
    assert tied[a].mu == pytest.approx(tied[b].mu)


def test_players_in_no_match_keep_their_skill() -> None:
    a, b, idle = uuid4(), uuid4(), uuid4()
    skills = {**fresh(a, b), idle: Skill(1400.0, 80.0)}
    after = plackett_luce_update(skills, [{a: 1, b: 2}, {a: 3}])  # a lone entry is no match
    assert after[idle] == Skill(1400.0, 80.0)
    with pytest.raises(ValueError, match="without a skill"):
        plackett_luce_update(fresh(a), [{a: 1, b: 2}])


def test_a_forfeit_loses_to_every_judged_draft() -> None:
    a, b, forfeit = uuid4(), uuid4(), uuid4()
    matches = with_forfeits([{a: 2, b: 1}, {a: 1, b: 9}], [forfeit])
    assert all(m[forfeit] == -math.inf for m in matches)
    results = pair_results(matches)
    assert results[(forfeit, a)] == results[(forfeit, b)] == 0.0
    skills = plackett_luce_update(fresh(a, b, forfeit), matches)
    assert skills[forfeit].mu < min(skills[a].mu, skills[b].mu) and skills[forfeit].mu < INITIAL_RATING
    elo = elo_from_pairs(dict.fromkeys((a, b, forfeit), INITIAL_RATING), results)
    assert elo[forfeit] < INITIAL_RATING  # not writing is never safer than writing badly


def test_pair_results_are_within_ballot_shares() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    results = pair_results([{a: 9, b: 5}, {a: 5, b: 5, c: 1}, {b: 7, a: 3}])
    assert results[(a, b)] == pytest.approx((1 + 0.5 + 0) / 3) and results[(b, a)] == pytest.approx(1 - 1.5 / 3)
    assert results[(a, c)] == 1.0 and (c, a) in results and (c, c) not in results


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 6),
    ballots=st.lists(st.lists(st.integers(1, 10), min_size=6, max_size=6), min_size=1, max_size=6),
    ratings=st.lists(st.floats(1000, 2000), min_size=6, max_size=6),
)
def test_elo_column_is_bounded_and_zero_sum(n: int, ballots: list[list[int]], ratings: list[float]) -> None:
    agents = [uuid4() for _ in range(n)]
    before = dict(zip(agents, ratings, strict=False))
    results = pair_results([dict(zip(agents, b, strict=False)) for b in ballots])
    after = elo_from_pairs(before, results)
    assert math.fsum(after.values()) == pytest.approx(math.fsum(before.values()))
    assert all(abs(after[a] - before[a]) <= K_FACTOR + 1e-9 for a in agents)
    assert elo_from_pairs(dict(reversed(before.items())), dict(reversed(results.items()))) == after


@settings(max_examples=40, deadline=None)
@given(scores=st.lists(st.integers(1, 10), min_size=2, max_size=6), shift=st.integers(-20, 20),
       scale=st.integers(1, 5))  # fmt: skip
def test_only_the_order_inside_a_ballot_matters(scores: list[int], shift: int, scale: int) -> None:
    agents = [uuid4() for _ in scores]
    match = dict(zip(agents, scores, strict=True))
    moved = {a: scale * s + shift for a, s in match.items()}  # a strictly increasing transform
    assert plackett_luce_update(fresh(*agents), [match]) == plackett_luce_update(fresh(*agents), [moved])
    assert pair_results([match]) == pair_results([moved])


def test_elo_update_on_totals_is_one_round_robin() -> None:
    a, b = uuid4(), uuid4()
    after = elo_update({a: 1500.0, b: 1500.0}, {a: 8.0, b: 3.0})
    assert after[a] == pytest.approx(1516.0) and after[b] == pytest.approx(1484.0)
    assert elo_update({a: 1500.0, b: 1600.0}, {a: 5.0}) == {a: 1500.0, b: 1600.0}


def agent(rating: float, elo: float, sigma: float = 60.0) -> Agent:
    return Agent(uuid4(), Persona("P", "D", "v", "s"), rating, sigma=sigma, elo=elo)


def test_newcomers_enter_at_the_living_mean() -> None:
    assert entry_rating([]) == (INITIAL_RATING, INITIAL_SIGMA, INITIAL_RATING)
    living = [agent(1600.0, 1550.0), agent(1700.0, 1510.0), agent(1500.0, 1490.0)]
    assert entry_rating(living) == (pytest.approx(1600.0), ENTRY_SIGMA, pytest.approx(1516.6666667))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(500, 2500), st.floats(500, 2500)), min_size=1, max_size=8))
def test_entry_rating_lies_within_the_living(pairs: list[tuple[float, float]]) -> None:
    living = [agent(r, e) for r, e in pairs]
    rating, sigma, elo = entry_rating(living)
    assert min(a.rating for a in living) - 1e-6 <= rating <= max(a.rating for a in living) + 1e-6
    assert min(a.elo for a in living) - 1e-6 <= elo <= max(a.elo for a in living) + 1e-6
    assert sigma == ENTRY_SIGMA


def test_far_from_1500_ratings_neither_overflow_nor_change_the_update() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    match = {a: 9, b: 5, c: 1}
    near = plackett_luce_update({a: Skill(1500.0, 90.0), b: Skill(1520.0, 90.0), c: Skill(1480.0, 90.0)}, [match])
    far = plackett_luce_update({a: Skill(901500.0, 90.0), b: Skill(901520.0, 90.0), c: Skill(901480.0, 90.0)},
                               [match])  # fmt: skip
    for x in (a, b, c):
        assert far[x].mu - 900000.0 == pytest.approx(near[x].mu) and far[x].sigma == pytest.approx(near[x].sigma)
