"""The collapse: which draft becomes the next chapter, and which agent is eliminated (docs/rules.md § 6)."""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple
from uuid import UUID

from spacetime.domain import Agent, CollapseDecision, Draft, DraftScore, RatingChange, Vote
from spacetime.errors import EpochUnjudged
from spacetime.rules.rating import Skill, elo_from_pairs, pair_results, plackett_luce_update, with_forfeits
from spacetime.rules.scoring import (
    BOOTSTRAP_REPLICATES,
    Penalties,
    adjusted_ballots,
    bootstrap,
    draft_penalties,
    score_drafts,
    with_intervals,
)


def _pick(tied: list[UUID], rng: random.Random) -> UUID:
    """A uniform choice among ``tied``, independent of the order it came in."""
    return rng.choice(sorted(tied, key=str)) if len(tied) > 1 else tied[0]


def eligible(scores: Mapping[UUID, DraftScore], flagged: Collection[UUID] = frozenset()) -> list[DraftScore]:
    """The drafts that may win: those with at least one counted vote and not ``flagged`` — or, when every judged
    draft is flagged, all judged drafts."""
    judged = [s for s in scores.values() if s.votes > 0]
    return [s for s in judged if s.agent_id not in flagged] or judged


def pick_winner(
    scores: Mapping[UUID, DraftScore],
    rng: random.Random,
    *,
    strength: Mapping[UUID, float] | None = None,
    flagged: Collection[UUID] = frozenset(),
) -> UUID:
    """Author of the draft with the highest total among the ``eligible`` drafts (never a flagged one unless all
    judged drafts are flagged).

    Ties on total break by higher ``strength`` (the rating after the epoch; missing = −inf), then uniformly at
    random with ``rng``. Raises ``ValueError`` when no draft has a counted vote.
    """
    pool = eligible(scores, flagged)
    if not pool:
        raise ValueError("pick_winner: no draft has a counted vote")
    power = strength or {}

    def key(s: DraftScore) -> tuple[float, float]:
        return s.total, power.get(s.agent_id, float("-inf"))

    best = max(key(s) for s in pool)
    return _pick([s.agent_id for s in pool if key(s) == best], rng)


def verdict_confidence(
    replicates: Sequence[Mapping[UUID, float]],
    lateness: Mapping[UUID, float],
    winner: UUID,
    *,
    flagged: Collection[UUID] = frozenset(),
) -> float:
    """Share of bootstrap ``replicates`` (draft → normalised insight) in which ``winner`` still has the highest
    total (insight − lateness) among the eligible drafts judged in that replicate; a tie among *k* counts 1/k.
    1.0 when there is no replicate."""
    if not replicates:
        return 1.0
    wins = 0.0
    for replicate in replicates:
        totals = {a: v - lateness.get(a, 0.0) for a, v in replicate.items()}
        pool = {a: t for a, t in totals.items() if a not in flagged} or totals
        if winner not in pool:
            continue
        best = max(pool.values())
        if pool[winner] == best:
            wins += 1.0 / sum(1 for t in pool.values() if t == best)
    return wins / len(replicates)


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
    *,
    flagged: Collection[UUID] = frozenset(),
) -> CollapseDecision:
    """Winner (``pick_winner``, ties by ``ratings_after``, never a ``flagged`` draft unless all judged drafts are) and
    loser (``pick_loser``) of the epoch.

    The winner's author is spared: with two or more living agents the loser is always someone else, so the agent
    whose chapter was just committed is never eliminated in the same breath. Winner and loser coincide only when
    a single agent is alive. The winner is drawn before the loser from the same ``rng``.
    """
    winner = pick_winner(scores, rng, strength=ratings_after, flagged=flagged)
    loser = pick_loser(ratings_after, living, scores, rng, spare=winner)
    return CollapseDecision(winner_id=winner, loser_id=loser)


class Verdict(NamedTuple):
    """Everything the rules decide from one epoch's drafts and votes."""

    scores: dict[UUID, DraftScore]
    """Author id → score, with its bootstrap interval."""
    ratings: tuple[RatingChange, ...]
    """One per agent at the table, in ``agents`` order."""
    decision: CollapseDecision
    confidence: float
    """``verdict_confidence`` of the winner."""


def judge(
    drafts: Sequence[Draft],
    votes: Sequence[Vote],
    agents: Sequence[Agent],
    rng: random.Random,
    *,
    flagged: Collection[UUID] = frozenset(),
    penalties: Mapping[UUID, Penalties] | None = None,
    replicates: int = BOOTSTRAP_REPLICATES,
) -> Verdict:
    """The whole verdict of an epoch: scores (``scoring``), ratings (``rating``), winner and loser (``collapse``).

    ``agents`` are the living agents at the table (an agent among them with no draft forfeited: it is ranked last
    in every counted ballot). The bootstrap draws from its own generator seeded from ``rng``, then ``collapse``
    draws its tie-breaks from ``rng``. Raises ``EpochUnjudged`` when no ballot is counted (the Director retries the
    epoch).
    """
    penalties = draft_penalties(drafts) if penalties is None else penalties
    pairs = {a: (p.truncation, p.lateness) for a, p in penalties.items()}
    ballots = adjusted_ballots(drafts, votes, pairs)
    if not ballots:
        raise EpochUnjudged(len(drafts))
    boot = random.Random(rng.getrandbits(64))
    samples = bootstrap(ballots, boot, replicates=replicates) if replicates > 0 else []
    scores = with_intervals(score_drafts(drafts, votes, pairs), samples)
    drafted = {d.agent_id for d in drafts}
    forfeits = [a.agent_id for a in agents if a.agent_id not in drafted]
    matches = with_forfeits(ballots, forfeits)
    skills = plackett_luce_update({a.agent_id: Skill(a.rating, a.sigma) for a in agents}, matches)
    elo = elo_from_pairs({a.agent_id: a.elo for a in agents}, pair_results(matches))
    after = {a: s.mu for a, s in skills.items()}
    decision = collapse(scores, after, [a.agent_id for a in agents], rng, flagged=flagged)
    lateness = {a: p.lateness for a, p in penalties.items()}
    confidence = verdict_confidence(samples, lateness, decision.winner_id, flagged=flagged)
    changes = tuple(
        RatingChange(
            a.agent_id,
            a.rating,
            skills[a.agent_id].mu,
            sigma_before=a.sigma,
            sigma_after=skills[a.agent_id].sigma,
            elo_before=a.elo,
            elo_after=elo[a.agent_id],
        )
        for a in agents
    )
    return Verdict(scores, changes, decision, confidence)
