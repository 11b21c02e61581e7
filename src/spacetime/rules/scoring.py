"""Scoring: from ballots to each draft's *normalised insight*, penalties and epoch total (docs/rules.md § 4).

Every ballot is read on its own scale, so that no judge's leniency or harshness carries over to the verdict:

1. **Adjust** each vote once, on the 1–10 scale the votes use: ``adjusted = insight − TRUNCATION_PENALTY`` (5) when
   the target draft hit the token cap (the spec's mandatory −5 for "lack of brevity"), else ``insight``.
2. **Rank within the ballot**: the adjusted scores of one ballot are ranked (mid-ranks for ties) and the ranks
   normalised to ``[0, 1]`` (``(rank − 1) / (m − 1)`` over the ``m`` drafts of the ballot). Only ballots that
   scored at least two drafts are *counted*: a lone score has no scale to be read on.
3. A draft's **normalised insight** = ``1 + 9 × mean share`` over the counted ballots that judged it (1–10 scale).
4. **Lateness** is not part of any judgment: a *straggler* — a draft whose service time exceeds
   ``STRAGGLER_FACTOR`` (2) × the epoch's median — loses a fixed ``STRAGGLER_PENALTY`` (0.5) from its total;
   anything inside that dead band costs nothing, so service-time jitter never decides a game.
5. **Total** = normalised insight − lateness penalty (the truncation is already inside every adjusted vote: it is
   applied exactly once). The total picks the chapter; the ratings come from the within-ballot rankings alone.

Because only within-ballot ranks are used, adding a constant to every score of one voter — or any strictly
increasing transform of them — changes nothing, and a voter who scores every other draft 1 cannot lift its own.
``bootstrap`` resamples whole ballots to give each draft a 95 % interval.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple
from uuid import UUID

from spacetime.domain import Draft, DraftScore, Vote

TRUNCATION_PENALTY = 5.0
"""Subtracted once from every vote on a truncated draft, before ranking."""
STRAGGLER_FACTOR = 2.0
"""Dead band of lateness: a draft is a straggler only when slower than this many times the epoch's median."""
STRAGGLER_PENALTY = 0.5
"""What a straggler loses from its total (normalised insight, 1–10 scale); never enters the ratings."""
BOOTSTRAP_REPLICATES = 200
"""Resamples of the ballots for the 95 % intervals and the verdict confidence."""

Ballot = dict[UUID, float]
"""One counted ballot: target author id → adjusted score (higher is better)."""


class Penalties(NamedTuple):
    """A draft's penalties: truncation (inside each vote, 1–10 scale) and lateness (on the total)."""

    truncation: float
    lateness: float

    @property
    def total(self) -> float:
        """What each vote row records as ``latency_penalty``."""
        return self.truncation + self.lateness


def lateness(
    latency_s: float, median_s: float, *, factor: float = STRAGGLER_FACTOR, penalty: float = STRAGGLER_PENALTY
) -> float:
    """``penalty`` when ``latency > factor × median``, else 0; 0 when ``median <= 0`` or a value is not finite."""
    if not (math.isfinite(latency_s) and math.isfinite(median_s)) or median_s <= 0:
        return 0.0
    return penalty if latency_s > factor * median_s else 0.0


def draft_penalties(
    drafts: Sequence[Draft],
    *,
    truncation_penalty: float = TRUNCATION_PENALTY,
    straggler_penalty: float = STRAGGLER_PENALTY,
) -> dict[UUID, Penalties]:
    """Author id → ``Penalties(truncation, lateness)`` for each draft of the epoch.

    Guarantees: truncation is ``truncation_penalty`` exactly when ``draft.truncated``, else 0; lateness is either 0
    or ``straggler_penalty``, and 0 for every draft at or under twice the median latency.
    """
    if not drafts:
        return {}
    median = statistics.median(d.latency_s for d in drafts)
    return {
        d.agent_id: Penalties(
            truncation_penalty if d.truncated else 0.0, lateness(d.latency_s, median, penalty=straggler_penalty)
        )
        for d in drafts
    }


def adjusted_ballots(
    drafts: Sequence[Draft], votes: Sequence[Vote], penalties: Mapping[UUID, tuple[float, float]]
) -> list[Ballot]:
    """The counted ballots (two or more drafts scored), in voter-id order: target → ``insight − truncation``.

    ``penalties`` maps author id → ``(truncation, lateness)`` as ``draft_penalties`` returns (missing = none).
    Raises ``ValueError`` for two drafts by one author, a vote on a draft not given, a self-vote, or two votes by
    one voter on one draft.
    """
    authors = {d.agent_id for d in drafts}
    if len(authors) != len(drafts):
        raise ValueError("score_drafts: two drafts by one author")
    by_voter: dict[UUID, Ballot] = {}
    for vote in votes:
        if vote.target_id not in authors:
            raise ValueError(f"score_drafts: vote on unknown draft {vote.target_id}")
        if vote.voter_id == vote.target_id:
            raise ValueError(f"score_drafts: self-vote by {vote.voter_id}")
        ballot = by_voter.setdefault(vote.voter_id, {})
        if vote.target_id in ballot:
            raise ValueError(f"score_drafts: duplicate vote {(vote.voter_id, vote.target_id)}")
        truncation = penalties.get(vote.target_id, (0.0, 0.0))[0]
        ballot[vote.target_id] = vote.score - truncation
    return [by_voter[v] for v in sorted(by_voter, key=str) if len(by_voter[v]) >= 2]


def rank_shares(ballot: Mapping[UUID, float]) -> dict[UUID, float]:
    """Target → its normalised mid-rank in ``[0, 1]`` within one ballot (0 = lowest, 1 = highest; 0.5 if alone)."""
    m = len(ballot)
    if m == 1:
        return dict.fromkeys(ballot, 0.5)
    shares = {}
    for target, value in ballot.items():
        below = sum(1 for other in ballot.values() if other < value)
        equal = sum(1 for other in ballot.values() if other == value)  # itself included
        mid_rank = below + (equal + 1) / 2  # 1-based mid-rank
        shares[target] = (mid_rank - 1) / (m - 1)
    return shares


def normalised_insight(ballots: Sequence[Mapping[UUID, float]]) -> dict[UUID, float]:
    """Target → ``1 + 9 × mean rank share`` over the ballots that judged it (only targets judged at least once)."""
    return _insight_of_shares([rank_shares(ballot) for ballot in ballots])


def _insight_of_shares(per_ballot: Sequence[Mapping[UUID, float]]) -> dict[UUID, float]:
    shares: dict[UUID, list[float]] = {}
    for ballot in per_ballot:
        for target, share in ballot.items():
            shares.setdefault(target, []).append(share)
    return {t: 1.0 + 9.0 * math.fsum(s) / len(s) for t, s in shares.items()}


def score_drafts(
    drafts: Sequence[Draft], votes: Sequence[Vote], penalties: Mapping[UUID, tuple[float, float]]
) -> dict[UUID, DraftScore]:
    """Author id → ``DraftScore`` for every draft, in draft order (intervals collapsed on the point estimate until
    ``with_intervals`` widens them).

    ``insight`` is the normalised insight (0 with no counted vote), ``total = insight − lateness``, ``votes`` the
    counted votes, ``mean_insight`` the mean raw score of those votes (for the record). Raises as
    ``adjusted_ballots``.
    """
    ballots = adjusted_ballots(drafts, votes, penalties)
    insight = normalised_insight(ballots)
    counted: dict[UUID, int] = {}
    for ballot in ballots:
        for target in ballot:
            counted[target] = counted.get(target, 0) + 1
    raw: dict[UUID, list[int]] = {}
    voters_counted = _counted_voters(votes)
    for vote in votes:
        if vote.voter_id in voters_counted:
            raw.setdefault(vote.target_id, []).append(vote.insight_score)
    scores: dict[UUID, DraftScore] = {}
    for draft in drafts:
        truncation, late = penalties.get(draft.agent_id, (0.0, 0.0))
        point = insight.get(draft.agent_id, 0.0)
        received = raw.get(draft.agent_id, [])
        scores[draft.agent_id] = DraftScore(
            agent_id=draft.agent_id,
            mean_insight=math.fsum(received) / len(received) if received else 0.0,
            truncation_penalty=truncation,
            lateness_penalty=late,
            total=point - late,
            votes=counted.get(draft.agent_id, 0),
            insight=point,
            ci_low=point,
            ci_high=point,
        )
    return scores


def _counted_voters(votes: Sequence[Vote]) -> set[UUID]:
    per_voter: dict[UUID, int] = {}
    for vote in votes:
        per_voter[vote.voter_id] = per_voter.get(vote.voter_id, 0) + 1
    return {v for v, n in per_voter.items() if n >= 2}


def bootstrap(
    ballots: Sequence[Mapping[UUID, float]], rng: random.Random, *, replicates: int = BOOTSTRAP_REPLICATES
) -> list[dict[UUID, float]]:
    """``replicates`` resamples *by ballot* (whole ballots drawn with replacement, as many as there are): the
    normalised insight of every draft judged in each. Empty when there is no ballot."""
    if not ballots:
        return []
    n = len(ballots)
    # Each ballot's rank shares once, targets as small ints (a resample only regroups them); the same draws, the
    # same per-target fsum, the same key order as ``normalised_insight`` of the resampled ballots.
    targets: dict[UUID, int] = {}
    shares = [
        [(targets.setdefault(target, len(targets)), share) for target, share in rank_shares(ballot).items()]
        for ballot in ballots
    ]
    ids = list(targets)
    out: list[dict[UUID, float]] = []
    for _ in range(replicates):
        per_target: list[list[float]] = [[] for _ in ids]
        seen: list[int] = []
        for _ in range(n):
            for t, share in shares[rng.randrange(n)]:
                if not per_target[t]:
                    seen.append(t)
                per_target[t].append(share)
        out.append({ids[t]: 1.0 + 9.0 * math.fsum(per_target[t]) / len(per_target[t]) for t in seen})
    return out


def interval(values: Sequence[float], point: float, *, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``values`` at ``level``, widened if needed to contain ``point`` (``(point, point)``
    when there are no values)."""
    if not values:
        return point, point
    ordered = sorted(values)
    tail = (1.0 - level) / 2.0
    low = ordered[max(0, math.floor(tail * len(ordered)))]
    high = ordered[min(len(ordered) - 1, math.ceil((1.0 - tail) * len(ordered)) - 1)]
    return min(low, point), max(high, point)


def with_intervals(
    scores: Mapping[UUID, DraftScore], replicates: Sequence[Mapping[UUID, float]]
) -> dict[UUID, DraftScore]:
    """``scores`` with ``ci_low``/``ci_high`` set from the bootstrap ``replicates`` (drafts with no counted vote
    keep a zero-width interval)."""
    out = {}
    for agent, score in scores.items():
        if score.votes == 0:
            out[agent] = score
            continue
        low, high = interval([r[agent] for r in replicates if agent in r], score.insight)
        out[agent] = replace(score, ci_low=low, ci_high=high)
    return out
