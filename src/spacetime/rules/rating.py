"""Elo ratings after each epoch, hand-written (PyPI has no well-kept Elo library; the formula is ten lines).

Each epoch is read as a round robin among the agents whose drafts were scored: for every pair, the agent with the
higher total wins (1), the lower loses (0), totals within ``TIE_EPSILON`` draw (0.5). Expected results use the
logistic curve on the 400-point scale. All deltas come from the pre-epoch ratings (the games are simultaneous), and
each agent's delta is averaged over its ``n − 1`` games, so one epoch moves a rating by at most ``K_FACTOR``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from uuid import UUID

INITIAL_RATING = 1500.0
"""Rating of an agent entering a book."""
K_FACTOR = 32.0
"""The most one epoch can move a rating."""
TIE_EPSILON = 1e-9
"""Totals closer than this are a draw."""


def expected_score(rating: float, opponent: float) -> float:
    """Elo's expected result of ``rating`` against ``opponent``: ``1 / (1 + 10^((opponent − rating) / 400))``."""
    exponent = (opponent - rating) / 400.0
    if exponent > 300.0:  # 10**300 is beyond any real rating gap; avoid float overflow
        return 0.0
    return 1.0 / (1.0 + math.pow(10.0, exponent))


def outcome(total: float, other: float) -> float:
    """1 for a win, 0.5 for a draw (within ``TIE_EPSILON``), 0 for a loss."""
    if abs(total - other) <= TIE_EPSILON:
        return 0.5
    return 1.0 if total > other else 0.0


def elo_update(
    ratings: Mapping[UUID, float], scores: Mapping[UUID, float], *, k: float = K_FACTOR
) -> dict[UUID, float]:
    """Ratings after one epoch, for every agent in ``ratings``.

    ``scores`` maps each scored agent to its epoch total (``scoring.rated_totals``). For a scored agent ``i`` among
    ``n >= 2``: ``after_i = before_i + k / (n − 1) · Σ_j (S_ij − E_ij)``. Agents not in ``scores`` (forfeits,
    unjudged drafts) keep their rating; with fewer than two scored agents nothing changes.

    Guarantees: the sum of ratings is conserved (up to float rounding); the result does not depend on mapping
    order (sums are exact-rounded with ``math.fsum``); ``|after − before| <= k``; of two equally rated agents, the
    one with the strictly higher total ends strictly higher. Raises ``ValueError`` for a scored agent with no rating.
    """
    missing = [agent for agent in scores if agent not in ratings]
    if missing:
        raise ValueError(f"elo_update: scored agents without a rating: {missing}")
    after = dict(ratings)
    players = list(scores)
    n = len(players)
    if n < 2:
        return after
    for i in players:
        surprise = math.fsum(
            outcome(scores[i], scores[j]) - expected_score(ratings[i], ratings[j]) for j in players if j != i
        )
        after[i] = ratings[i] + k / (n - 1) * surprise
    return after
