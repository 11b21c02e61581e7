"""Scoring: from votes and penalties to each draft's epoch score.

A draft's *total* is the mean insight score it received minus its penalties:

* truncation: ``TRUNCATION_PENALTY`` (5.0) when the draft hit the token cap (the spec's mandatory −5 for
  "lack of brevity");
* lateness: ``min(1, max(0, (latency − median) / median)) · lateness_weight`` where ``median`` is the median service
  time of this epoch's drafts; a draft twice as slow as the median or slower takes the full weight. Lateness is 0
  for every draft when the median is 0.

A draft that received no votes (every voter who could judge it abstained) gets ``mean_insight = 0``,
``votes = 0`` and ``total = −(truncation + lateness)``; its total carries no judgment, so ``rated_totals`` leaves it
out of the Elo update and the collapse prefers drafts with votes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import NamedTuple
from uuid import UUID

from spacetime.domain import Draft, DraftScore, Vote

TRUNCATION_PENALTY = 5.0
LATENESS_WEIGHT = 1.0


class Penalties(NamedTuple):
    """A draft's penalties, in points subtracted from its mean insight score."""

    truncation: float
    lateness: float

    @property
    def total(self) -> float:
        """What each vote row records as ``latency_penalty``."""
        return self.truncation + self.lateness


def lateness(latency_s: float, median_s: float) -> float:
    """``min(1, max(0, (latency − median) / median))``; 0 when ``median <= 0`` or either value is not finite."""
    if not (math.isfinite(latency_s) and math.isfinite(median_s)) or median_s <= 0:
        return 0.0
    return min(1.0, max(0.0, (latency_s - median_s) / median_s))


def draft_penalties(
    drafts: Sequence[Draft],
    *,
    truncation_penalty: float = TRUNCATION_PENALTY,
    lateness_weight: float = LATENESS_WEIGHT,
) -> dict[UUID, Penalties]:
    """Author id → ``Penalties(truncation, lateness)`` for each draft of the epoch.

    Guarantees: truncation is ``truncation_penalty`` exactly when ``draft.truncated``, else 0; lateness lies in
    ``[0, lateness_weight]``, is 0 for any draft at or under the median latency, and grows with latency.
    """
    if not drafts:
        return {}
    median = statistics.median(d.latency_s for d in drafts)
    return {
        d.agent_id: Penalties(
            truncation_penalty if d.truncated else 0.0,
            lateness(d.latency_s, median) * lateness_weight,
        )
        for d in drafts
    }


def score_drafts(
    drafts: Sequence[Draft], votes: Sequence[Vote], penalties: Mapping[UUID, tuple[float, float]]
) -> dict[UUID, DraftScore]:
    """Author id → ``DraftScore`` for every draft, in draft order.

    ``total = mean insight received − truncation − lateness`` (``mean_insight = 0`` with no votes, see module doc).
    ``penalties`` maps author id → ``(truncation, lateness)`` as ``draft_penalties`` returns (missing = no penalty).
    Raises ``ValueError`` for two drafts by one author, a vote on a draft not given, a self-vote, or two votes by
    one voter on one draft.
    """
    by_target: dict[UUID, list[int]] = {d.agent_id: [] for d in drafts}
    if len(by_target) != len(drafts):
        raise ValueError("score_drafts: two drafts by one author")
    seen: set[tuple[UUID, UUID]] = set()
    for vote in votes:
        if vote.target_id not in by_target:
            raise ValueError(f"score_drafts: vote on unknown draft {vote.target_id}")
        if vote.voter_id == vote.target_id:
            raise ValueError(f"score_drafts: self-vote by {vote.voter_id}")
        pair = (vote.voter_id, vote.target_id)
        if pair in seen:
            raise ValueError(f"score_drafts: duplicate vote {pair}")
        seen.add(pair)
        by_target[vote.target_id].append(vote.insight_score)
    scores: dict[UUID, DraftScore] = {}
    for draft in drafts:
        received = by_target[draft.agent_id]
        truncation, late = penalties.get(draft.agent_id, (0.0, 0.0))
        mean = math.fsum(received) / len(received) if received else 0.0
        scores[draft.agent_id] = DraftScore(
            agent_id=draft.agent_id,
            mean_insight=mean,
            truncation_penalty=truncation,
            lateness_penalty=late,
            total=mean - truncation - late,
            votes=len(received),
        )
    return scores


def rated_totals(scores: Mapping[UUID, DraftScore]) -> dict[UUID, float]:
    """Author id → total for the drafts that received at least one vote: the input of ``elo_update``."""
    return {agent: s.total for agent, s in scores.items() if s.votes > 0}
