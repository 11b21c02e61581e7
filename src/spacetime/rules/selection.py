"""The collapse: which draft becomes the next chapter, and which agent is eliminated."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from uuid import UUID

from spacetime.domain import CollapseDecision, DraftScore


def _pick(tied: list[UUID], rng: random.Random) -> UUID:
    """A uniform choice among ``tied``, independent of the order it came in."""
    return rng.choice(sorted(tied, key=str)) if len(tied) > 1 else tied[0]


def pick_winner(scores: Mapping[UUID, DraftScore], rng: random.Random) -> UUID:
    """Author of the draft with the highest total among drafts with at least one vote (any draft if none has one).

    Ties on total break by higher ``mean_insight``, then uniformly at random with ``rng``. Raises ``ValueError``
    when there is no draft.
    """
    if not scores:
        raise ValueError("pick_winner: no drafts to choose from")
    pool = [s for s in scores.values() if s.votes > 0] or list(scores.values())
    best = max((s.total, s.mean_insight) for s in pool)
    return _pick([s.agent_id for s in pool if (s.total, s.mean_insight) == best], rng)


def pick_loser(
    ratings_after: Mapping[UUID, float],
    living: Sequence[UUID],
    scores: Mapping[UUID, DraftScore],
    rng: random.Random,
    *,
    spare: UUID | None = None,
) -> UUID:
    """The living agent with the lowest rating after this epoch (agents that forfeited included).

    Ties break by lower epoch total (an agent with no draft ranks below every draft), then uniformly at random.
    ``spare`` (the winner) is never picked unless it is the only living agent. Raises ``ValueError`` when
    ``living`` is empty or an agent in it has no rating.
    """
    if not living:
        raise ValueError("pick_loser: nobody is alive")
    missing = [a for a in living if a not in ratings_after]
    if missing:
        raise ValueError(f"pick_loser: living agents without a rating: {missing}")
    pool = [a for a in dict.fromkeys(living) if a != spare] or list(living[:1])

    def key(agent: UUID) -> tuple[float, float]:
        score = scores.get(agent)
        return ratings_after[agent], (score.total if score is not None else float("-inf"))

    worst = min(key(a) for a in pool)
    return _pick([a for a in pool if key(a) == worst], rng)


def collapse(
    scores: Mapping[UUID, DraftScore],
    ratings_after: Mapping[UUID, float],
    living: Sequence[UUID],
    rng: random.Random,
) -> CollapseDecision:
    """Winner (``pick_winner``) and loser (``pick_loser``) of the epoch.

    The winner's author is spared: with two or more living agents the loser is always someone else, so the agent
    whose chapter was just committed is never eliminated in the same breath. Winner and loser coincide only when
    a single agent is alive. The winner is drawn before the loser from the same ``rng``.
    """
    winner = pick_winner(scores, rng)
    loser = pick_loser(ratings_after, living, scores, rng, spare=winner)
    return CollapseDecision(winner_id=winner, loser_id=loser)
