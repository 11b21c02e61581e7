"""Ratings from the peer matrix (docs/rules.md § 5).

**The rating that decides elimination** is a Plackett–Luce skill from ``openskill`` (Weng–Lin online Bayesian
ratings; μ and σ per agent). Every counted ballot is one *match* ranking the drafts it judged by their adjusted
scores (ties kept); an agent whose draft forfeited is ranked last in every counted ballot of the epoch (forfeits tie
among themselves). Matches are played one after the other in voter-id order. The model is openskill's default
scaled by 60 (μ₀ = 1500, σ₀ = 250, β = 125, τ = 2.5), so ``Agent.rating`` *is* μ on the familiar Elo-like scale: a
400-point gap between two settled agents means about 10:1 odds (``β·√2·ln 10 ≈ 407``).

**The Elo column** (the spec's, shown, never decisive) is computed from the same within-ballot pairwise results:
``S_ij = (wins + ½ ties) / games`` of *i* against *j* over this epoch's counted ballots, then
``R_i ← R_i + K / (n − 1) · Σ_j (S_ij − E_ij)`` over the pairs that met, from the ratings before the epoch.

**Newcomers** enter at the living agents' mean rating and Elo, with σ = ``ENTRY_SIGMA`` = σ₀ / 2 (``entry_rating``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple
from uuid import UUID

from openskill.models import PlackettLuce

from spacetime.domain import INITIAL_RATING, INITIAL_SIGMA, Agent

__all__ = [
    "BETA",
    "ENTRY_SIGMA",
    "INITIAL_RATING",
    "INITIAL_SIGMA",
    "K_FACTOR",
    "TAU",
    "Skill",
    "elo_from_pairs",
    "elo_update",
    "entry_rating",
    "expected_score",
    "pair_results",
    "plackett_luce_update",
    "with_forfeits",
]

BETA = INITIAL_SIGMA / 2.0
"""Performance noise of one match (openskill's default ratio β = σ₀ / 2)."""
TAU = INITIAL_SIGMA / 100.0
"""Uncertainty added before every match, so a rating never freezes (openskill's default ratio τ = σ₀ / 100)."""
K_FACTOR = 32.0
"""The most one epoch can move an Elo column."""
ENTRY_SIGMA = INITIAL_SIGMA / 2.0
"""Uncertainty of a newcomer entering a running book (at the living mean): chosen with bench/newcomers.py so that,
with no skill differences, newcomers are eliminated in their first epoch about as often as fairness wants (1/n).
σ₀ makes a newcomer's first epoch too volatile (≈ 25 % for n = 5), the living mean σ too sheltered (≈ 15 %)."""


class Skill(NamedTuple):
    """One agent's Plackett–Luce rating: ``mu`` (``Agent.rating``) and ``sigma`` (``Agent.sigma``)."""

    mu: float
    sigma: float


def _model() -> PlackettLuce:
    return PlackettLuce(mu=INITIAL_RATING, sigma=INITIAL_SIGMA, beta=BETA, tau=TAU)


def with_forfeits(ballots: Sequence[Mapping[UUID, float]], forfeits: Sequence[UUID]) -> list[dict[UUID, float]]:
    """The epoch's matches: each counted ballot, with every forfeit added below every draft (value ``−inf``)."""
    return [{**ballot, **dict.fromkeys((f for f in forfeits if f not in ballot), -math.inf)} for ballot in ballots]


def _ranks(match: Mapping[UUID, float]) -> dict[UUID, int]:
    """Competition ranks (1 = best; ties share a rank) from values where higher is better."""
    values = list(match.values())
    return {agent: 1 + sum(1 for v in values if v > value) for agent, value in match.items()}


def plackett_luce_update(skills: Mapping[UUID, Skill], matches: Sequence[Mapping[UUID, float]]) -> dict[UUID, Skill]:
    """Skills after playing ``matches`` (each: agent → value, higher is better, ties kept) in order.

    Matches with fewer than two players are skipped; agents in no match keep their skill. Only the order of the
    values inside each match matters (any strictly increasing transform of one match changes nothing). Raises
    ``ValueError`` for a player without a skill.
    """
    missing = sorted({str(a) for m in matches for a in m if a not in skills})
    if missing:
        raise ValueError(f"plackett_luce_update: players without a skill: {missing}")
    model = _model()
    after = dict(skills)
    for match in matches:
        if len(match) < 2:
            continue
        players = sorted(match, key=str)
        ranks = _ranks(match)
        # Plackett–Luce only sees differences of μ, but openskill computes exp(μ / c): centre each match on its
        # players' mean so that ratings far from 1500 (they drift up as the weakest leave) never overflow.
        centre = math.fsum(after[p].mu for p in players) / len(players)
        teams = [[model.rating(mu=after[p].mu - centre, sigma=after[p].sigma)] for p in players]
        rated = model.rate(teams, ranks=[float(ranks[p]) for p in players])
        for player, (rating,) in zip(players, rated, strict=True):
            after[player] = Skill(float(rating.mu) + centre, float(rating.sigma))
    return after


def pair_results(matches: Sequence[Mapping[UUID, float]]) -> dict[tuple[UUID, UUID], float]:
    """``(i, j)`` → ``S_ij = (wins + ½ ties) / games`` of *i* against *j*, for every ordered pair that met in a match
    (``S_ji = 1 − S_ij``)."""
    index: dict[UUID, int] = {}  # players as small ints: an epoch of N ballots makes ~N³ pair updates
    points: dict[int, float] = {}
    games: dict[int, int] = {}
    for match in matches:
        items = [(index.setdefault(player, len(index)), value) for player, value in match.items()]
        for i, vi in items:
            for j, vj in items:
                if i == j:
                    continue
                key = (i << 32) | j
                points[key] = points.get(key, 0.0) + (1.0 if vi > vj else 0.5 if vi == vj else 0.0)
                games[key] = games.get(key, 0) + 1
    players = list(index)
    return {(players[key >> 32], players[key & 0xFFFFFFFF]): points[key] / n for key, n in games.items()}


def expected_score(rating: float, opponent: float) -> float:
    """Elo's expected result of ``rating`` against ``opponent``: ``1 / (1 + 10^((opponent − rating) / 400))``."""
    exponent = (opponent - rating) / 400.0
    if exponent > 300.0:  # 10**300 is beyond any real rating gap; avoid float overflow
        return 0.0
    return 1.0 / (1.0 + math.pow(10.0, exponent))


def elo_from_pairs(
    ratings: Mapping[UUID, float], results: Mapping[tuple[UUID, UUID], float], *, k: float = K_FACTOR
) -> dict[UUID, float]:
    """Elo after one epoch: ``R_i + k / (n − 1) · Σ_j (S_ij − E_ij)`` over the pairs that met, ``n`` the number of
    agents in ``results``. Everyone else keeps their rating.

    Guarantees: the sum is conserved; ``|after − before| <= k``; the result does not depend on mapping order.
    Raises ``ValueError`` for a player without a rating.
    """
    players = sorted({a for pair in results for a in pair}, key=str)
    missing = [str(a) for a in players if a not in ratings]
    if missing:
        raise ValueError(f"elo_from_pairs: players without a rating: {missing}")
    after = dict(ratings)
    n = len(players)
    if n < 2:
        return after
    against: dict[UUID, list[float]] = {}
    for (i, j), s in results.items():
        against.setdefault(i, []).append(s - expected_score(ratings[i], ratings[j]))
    for i in players:  # fsum is exactly rounded: the order of the terms does not matter
        after[i] = ratings[i] + k / (n - 1) * math.fsum(against.get(i, ()))
    return after


def elo_update(
    ratings: Mapping[UUID, float], scores: Mapping[UUID, float], *, k: float = K_FACTOR
) -> dict[UUID, float]:
    """Elo from one round robin on ``scores`` (one match: higher wins, equal draws) — ``elo_from_pairs`` of a single
    ranking; kept for fixtures that have totals but no ballots."""
    return elo_from_pairs(ratings, pair_results([scores]) if len(scores) >= 2 else {}, k=k)


def entry_rating(living: Sequence[Agent]) -> tuple[float, float, float]:
    """``(rating, sigma, elo)`` of a newcomer: the living agents' mean rating and mean Elo, with ``ENTRY_SIGMA``
    (``INITIAL_RATING``, ``INITIAL_SIGMA`` with nobody alive, as for a founding agent).

    Entering at the mean, not at 1500, keeps a newcomer from being the natural next victim while the survivors'
    ratings drift up (bench/newcomers.py measures it).
    """
    if not living:
        return INITIAL_RATING, INITIAL_SIGMA, INITIAL_RATING
    rating = math.fsum(a.rating for a in living) / len(living)
    elo = math.fsum(a.elo for a in living) / len(living)
    return rating, ENTRY_SIGMA, elo
