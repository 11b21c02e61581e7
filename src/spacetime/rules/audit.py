"""The judging audit: is the judgment fair? Pure statistics over one epoch's votes or a whole book's.

Every figure is computed from ``AuditVote`` values (voter, target, insight score, display position, the target
draft's length in words, epoch number); ``audit_votes`` builds them from an ``EpochRecord``. Nothing here changes a
verdict: the audit reports, the UI warns in plain words.

* **Within-ballot normalisation.** A ballot is one voter's scores in one epoch. Its scores are replaced by their
  mid-ranks, mapped to ``[0, 1]``: ``(rank − 1) / (m − 1)`` for ``m`` scored drafts (ties share the mean rank, so
  a ballot's normalised scores always average 0.5). A judge's leniency or harshness therefore vanishes: position
  bias, length bias and bloc detection only see each judge's *ordering*. Ballots with one vote carry no ordering and
  are left out of those three.
* **Position bias** (``position_bias``): the mean normalised score by display position, and how often the
  first-shown draft was (one of) the ballot's top-scored; chance is ``k / m`` per ballot (``k`` drafts tied at the
  top, usually 1). The p-value is exact: the count of first-shown wins is Poisson-binomial under the null.
* **Agreement** (``agreement``): Krippendorff's alpha (``krippendorff`` package) over the voter × draft matrix of raw
  scores, interval level by default; a percentile bootstrap over drafts gives a 95 % interval, and when it includes
  0 the judges agree *no better than chance*.
* **Harsh and lenient judges** (``judge_offsets``): a voter's mean raw score minus the mean the other voters gave the
  same drafts; flagged when at least ``LEAN_MIN_POINTS`` points *and* ``LEAN_Z`` standard errors away from 0.
* **Length bias** (``length_bias``): Spearman's rho between a draft's length in words and the mean normalised score
  it received, with a permutation p-value.
* **Tied ballots** (``ties``): ballots that give every draft the same score, as written and as the verdict ranks
  them (G-Eval expectations where known); a warning when at least ``TIED_SHARE`` of ballots are tied as ranked.
* **Blocs** (``blocs``): for each pair of voters, the mean normalised score each gave the other minus what the same
  ballots gave the other drafts. The p-value is that of the permutation test which shuffles, within every ballot,
  which draft got which normalised score — computed exactly (see ``blocs``) rather than by sampling shuffles, so it
  resolves the tiny p-values a multiple-comparison correction needs. Holm's correction over all pairs; flagged
  when the adjusted p-value is below ``SIGNIFICANCE``.

Randomness (the bootstrap, the length permutations) comes from the ``random.Random`` passed in.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from uuid import UUID

import krippendorff
import numpy as np
import numpy.typing as npt

from spacetime.domain import EpochRecord

SIGNIFICANCE = 0.01
"""Every flag needs p < 0.01 (after Holm's correction for blocs): an audit runs after every epoch, so a looser level
would cry wolf every few books."""

LEAN_MIN_POINTS = 1.0
"""A judge is harsh or lenient only when its offset is at least one point on the 1–10 scale: the smallest step a
judge can express, and large enough to matter — a voter never judges its own draft, so a judge δ points harsh moves
its own draft δ / (n − 1) points up against the field of n drafts (0.2 points at δ = 1, n = 6)."""

LEAN_Z = 2.576
"""…and the offset is at least 2.576 standard errors from 0 (two-sided p < 0.01, normal approximation with the
residual spread pooled over all judges)."""

BOOTSTRAP_RESAMPLES = 1000
"""Bootstrap resamples of the drafts for alpha's 95 % interval."""

LENGTH_PERMUTATIONS = 2000
"""Random permutations for the length–score p-value."""

BLOC_PASSES = 6
"""Bloc passes at most (see ``blocs``): each accepts the most significant new pair, whose mutual votes then leave
the judges' offset fit; a pass that flags nothing new ends it (the last pass's new flags are kept too)."""

MIN_BLOC_VOTES = 4
"""A pair is tested only when its members scored each other at least this often in ballots with two votes or more
(fewer can never reach significance)."""

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]
"""What ``to_json`` returns: plain JSON values."""

_EPS = 1e-9
Key = tuple[int, UUID]
"""A ballot (epoch, voter) or a draft (epoch, author)."""


class AuditScope(StrEnum):
    EPOCH = "epoch"
    BOOK = "book"


class AlphaLevel(StrEnum):
    """Krippendorff's level of measurement for the scores."""

    INTERVAL = "interval"
    ORDINAL = "ordinal"


class Lean(StrEnum):
    HARSH = "harsh"
    LENIENT = "lenient"
    FAIR = "fair"


class WarningKind(StrEnum):
    CHANCE_AGREEMENT = "chance-agreement"
    POSITION_BIAS = "position-bias"
    HARSH_JUDGE = "harsh-judge"
    LENIENT_JUDGE = "lenient-judge"
    LENGTH_BIAS = "length-bias"
    BLOC = "bloc"
    TIED_BALLOTS = "tied-ballots"


@dataclass(frozen=True, slots=True)
class AuditVote:
    """One vote as the audit sees it."""

    voter: UUID
    target: UUID
    """Author of the draft scored."""
    score: float
    """The score the verdict ranked (1–10, no penalties): the G-Eval expectation where known, else the integer."""
    position: int = 0
    """1-based place of the draft in the voter's review order; 0 when unknown (left out of position bias)."""
    target_words: int = 0
    """Length of the target draft in words."""
    epoch: int = 0
    given: int | None = None
    """The integer ``insight_score`` as written, when ``score`` is a G-Eval expectation (``None``: ``score`` is it)."""

    @property
    def written(self) -> float:
        return self.score if self.given is None else float(self.given)


def used_score(insight_score: int, expected_score: float | None) -> float:
    """The audit's ``score`` of a vote: its G-Eval expectation to 0.1 point (a finer grain only slows alpha's
    bootstrap) when known, else its integer."""
    return float(insight_score) if expected_score is None else round(expected_score, 1)


@dataclass(frozen=True, slots=True)
class PositionMean:
    position: int
    mean_normalised: float
    """Mean within-ballot normalised score (0 = ranked last, 1 = ranked first) of drafts shown at this position."""
    votes: int


@dataclass(frozen=True, slots=True)
class PositionBias:
    by_position: tuple[PositionMean, ...]
    ballots: int
    """Ballots with known positions, two votes or more and a vote at position 1."""
    first_wins: int
    """Ballots whose first-shown draft was (one of) the top-scored."""
    first_win_share: float | None
    chance_share: float | None
    """The share expected by chance: mean of ``k / m`` (``k`` drafts tied at the top of ``m``)."""
    p_value: float | None
    """P(at least ``first_wins`` by chance), exact (Poisson-binomial); ``None`` without ballots."""
    flagged: bool


@dataclass(frozen=True, slots=True)
class Agreement:
    alpha: float | None
    """Krippendorff's alpha; ``None`` when undefined (see ``reason``)."""
    level: AlphaLevel
    ci_low: float | None
    ci_high: float | None
    """95 % percentile bootstrap interval over drafts."""
    chance_level: bool | None
    """The interval includes 0 (or alpha ≤ 0): the judges agree no better than chance. ``None`` when alpha is."""
    drafts: int
    """Drafts scored by at least two voters (the units alpha uses)."""
    votes: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Ties:
    """Ballots that tell the drafts apart by nothing: every draft got the same score."""

    ballots: int
    """Ballots with two votes or more."""
    written: int
    """…whose integer scores, as written, are all equal."""
    ranked: int
    """…whose scores as the verdict ranks them (G-Eval expectations where known) are all equal."""
    written_share: float | None
    ranked_share: float | None


@dataclass(frozen=True, slots=True)
class JudgeOffset:
    voter: UUID
    offset: float
    """Mean raw score given minus the mean the other voters gave the same drafts (negative = harsh)."""
    z: float | None
    """Offset in standard errors; ``None`` when the spread is undefined."""
    drafts: int
    lean: Lean


@dataclass(frozen=True, slots=True)
class LengthBias:
    rho: float | None
    """Spearman's rho between length in words and mean normalised score received; ``None`` when undefined."""
    p_value: float | None
    """Two-sided permutation p-value."""
    drafts: int
    flagged: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class BlocPair:
    a: UUID
    b: UUID
    effect: float
    """Mean normalised score a gave b and b gave a, minus the mean the same ballots gave the other drafts."""
    votes: int
    """Votes between the two (both directions) in ballots of two votes or more."""
    p_value: float
    """The larger of the two one-sided exact permutation p-values (see ``blocs``)."""
    p_adjusted: float
    """Holm-adjusted over the pairs that can reach significance (Tarone, see ``blocs``); 1 for a pair that cannot."""
    flagged: bool
    p_within_ballot: float = 1.0
    """Null: each ballot's scores shuffled among its drafts."""
    p_within_draft: float = 1.0
    """Null: each draft's offset-corrected raw scores shuffled among its judges (keeps the drafts' quality)."""
    p_min: float = 0.0
    """The smallest p-value the pair's votes could give at all (every partner's draft ranked top of its ballot)."""


@dataclass(frozen=True, slots=True)
class AuditWarning:
    kind: WarningKind
    text: str


@dataclass(frozen=True, slots=True)
class JudgingHealth:
    scope: AuditScope
    epochs: tuple[int, ...]
    ballots: int
    votes: int
    position: PositionBias
    agreement: Agreement
    judges: tuple[JudgeOffset, ...]
    length: LengthBias
    ties: Ties
    blocs: tuple[BlocPair, ...]
    """Every pair tested, most suspicious first (empty for an epoch: one epoch cannot show a bloc)."""
    bloc_groups: tuple[tuple[UUID, ...], ...]
    """Connected groups of flagged pairs (a clique of three shows as one group)."""
    warnings: tuple[AuditWarning, ...]

    @property
    def healthy(self) -> bool:
        return not self.warnings


# --- building blocks ------------------------------------------------------------------------------------------


def audit_votes(record: EpochRecord) -> tuple[AuditVote, ...]:
    """The audit's view of one stored epoch: every vote with its display position and the target's length."""
    words = {draft.agent_id: len(draft.text.split()) for draft in record.drafts}
    return tuple(
        AuditVote(
            voter=vote.voter_id,
            target=vote.target_id,
            score=used_score(vote.insight_score, vote.expected_score),
            position=vote.position,
            target_words=words.get(vote.target_id, 0),
            epoch=record.epoch_no,
            given=None if vote.expected_score is None else vote.insight_score,
        )
        for ballot in record.ballots
        for vote in ballot.votes
    )


def mid_ranks(values: Sequence[float]) -> tuple[float, ...]:
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] - values[order[start]] <= _EPS:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return tuple(ranks)


def normalise_ballot(scores: Sequence[float]) -> tuple[float, ...]:
    """Mid-ranks mapped to ``[0, 1]``; a single score (or all equal) maps to 0.5. Invariant to any increasing map."""
    if len(scores) < 2:
        return tuple(0.5 for _ in scores)
    return tuple((rank - 1) / (len(scores) - 1) for rank in mid_ranks(scores))


def _ballots(votes: Iterable[AuditVote]) -> dict[Key, list[AuditVote]]:
    """(epoch, voter) → that ballot's votes, one per target (a repeated target keeps its last vote)."""
    by_ballot: dict[Key, dict[UUID, AuditVote]] = defaultdict(dict)
    for vote in votes:
        by_ballot[(vote.epoch, vote.voter)][vote.target] = vote
    return {key: list(targets.values()) for key, targets in by_ballot.items()}


def _normalised(ballots: Mapping[Key, list[AuditVote]]) -> list[tuple[AuditVote, float]]:
    """Every vote of a ballot with two votes or more, with its within-ballot normalised score."""
    out: list[tuple[AuditVote, float]] = []
    for ballot in ballots.values():
        if len(ballot) >= 2:
            out.extend(zip(ballot, normalise_ballot([v.score for v in ballot]), strict=True))
    return out


def _name(voter: UUID, names: Mapping[UUID, str]) -> str:
    return names.get(voter, str(voter)[:8])


# --- 1. position bias -----------------------------------------------------------------------------------------


def _poisson_binomial_sf(probabilities: Sequence[float], observed: int) -> float:
    """P(X ≥ observed) for X a sum of independent Bernoulli(p_i)."""
    dist = np.zeros(len(probabilities) + 1)
    dist[0] = 1.0
    for p in probabilities:
        dist[1:] = dist[1:] * (1 - p) + dist[:-1] * p
        dist[0] *= 1 - p
    return float(min(1.0, max(0.0, dist[observed:].sum())))


def position_bias(votes: Iterable[AuditVote], *, significance: float = SIGNIFICANCE) -> PositionBias:
    """Do the first-shown drafts win more often than chance? (Votes with ``position == 0`` are left out.)"""
    ballots = _ballots(v for v in votes if v.position >= 1)
    sums: dict[int, float] = defaultdict(float)
    counts: dict[int, int] = defaultdict(int)
    chances: list[float] = []
    wins = 0
    for ballot in ballots.values():
        if len(ballot) < 2:
            continue
        normalised = normalise_ballot([v.score for v in ballot])
        for vote, value in zip(ballot, normalised, strict=True):
            sums[vote.position] += value
            counts[vote.position] += 1
        firsts = [i for i, vote in enumerate(ballot) if vote.position == 1]
        if len(firsts) != 1:
            continue
        top = max(v.score for v in ballot)
        tied = sum(1 for v in ballot if top - v.score <= _EPS)
        chances.append(tied / len(ballot))
        wins += top - ballot[firsts[0]].score <= _EPS
    by_position = tuple(PositionMean(p, sums[p] / counts[p], counts[p]) for p in sorted(counts))
    if not chances:
        return PositionBias(by_position, 0, 0, None, None, None, False)
    p_value = _poisson_binomial_sf(chances, wins)
    share, chance = wins / len(chances), sum(chances) / len(chances)
    return PositionBias(
        by_position, len(chances), wins, share, chance, p_value, p_value < significance and share > chance
    )


# --- 2. agreement ---------------------------------------------------------------------------------------------


def _alpha(counts: npt.NDArray[np.int64], domain: list[float], level: AlphaLevel) -> float | None:
    with np.errstate(divide="ignore", invalid="ignore"):
        try:
            value = float(
                krippendorff.alpha(value_counts=counts, value_domain=domain, level_of_measurement=level.value)
            )
        except (ValueError, ZeroDivisionError):
            return None
    return value if math.isfinite(value) else None


def interval_alphas(counts: npt.NDArray[np.int64], domain: Sequence[float],
                    rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:  # fmt: skip
    """Interval-level Krippendorff's alpha of many resamples at once: ``rows`` (R × U) are unit indices into
    ``counts`` (U × V value counts, every unit with two values or more); NaN where alpha is undefined.

    The same formula as ``krippendorff.alpha`` (coincidences ``o``, expected coincidences ``e``, squared differences
    ``d``; alpha = 1 − Σ o·d / Σ e·d), with each unit's coincidence matrix computed once and a resample's ``o``
    the sum of its units' — one matrix product instead of R library calls (tests compare them on every resample).
    """
    units, values = counts.shape
    c = counts.astype(np.float64)
    per_unit = (c[:, :, None] * c[:, None, :] - c[:, :, None] * np.eye(values)[None]) / (
        np.maximum(c.sum(axis=1), 2) - 1
    )[:, None, None]
    weights = np.zeros((rows.shape[0], units))
    np.add.at(weights, (np.arange(rows.shape[0])[:, None], rows), 1.0)
    # einsum's own loop, not BLAS: a BLAS thread pool spins on every core for a product this small
    o = np.einsum("ru,uk->rk", weights, per_unit.reshape(units, values * values)).reshape(-1, values, values)
    n_v = o.sum(axis=1)
    e = (n_v[:, :, None] * n_v[:, None, :] - n_v[:, :, None] * np.eye(values)[None]) / (
        n_v.sum(axis=1) - 1
    )[:, None, None]
    v = np.asarray(domain, dtype=np.float64)
    d = (v[:, None] - v[None, :]) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = 1 - (o * d).sum(axis=(1, 2)) / (e * d).sum(axis=(1, 2))
    return np.where(np.isfinite(alphas), alphas, np.nan)


def agreement(
    votes: Iterable[AuditVote],
    *,
    rng: random.Random,
    level: AlphaLevel = AlphaLevel.INTERVAL,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> Agreement:
    """Krippendorff's alpha over the voter × draft matrix of raw scores, with a bootstrap interval over drafts."""
    units: dict[Key, dict[UUID, float]] = defaultdict(dict)
    for vote in votes:
        units[(vote.epoch, vote.target)][vote.voter] = vote.score
    pairable = [scores for scores in units.values() if len(scores) >= 2]
    n_votes = sum(len(scores) for scores in pairable)
    if not pairable:
        return Agreement(None, level, None, None, None, 0, n_votes, "too few votes: no draft was scored twice")
    domain = sorted({s for scores in pairable for s in scores.values()})
    if len(domain) < 2:
        return Agreement(None, level, None, None, None, len(pairable), n_votes, "every score is the same")
    index = {value: i for i, value in enumerate(domain)}
    counts = np.zeros((len(pairable), len(domain)), dtype=np.int64)
    for row, scores in enumerate(pairable):
        for score in scores.values():
            counts[row, index[score]] += 1
    alpha = _alpha(counts, domain, level)
    if alpha is None:
        return Agreement(None, level, None, None, None, len(pairable), n_votes, "alpha is undefined for these scores")
    generator = np.random.default_rng(rng.getrandbits(64))
    samples = generator.integers(0, len(pairable), size=(resamples, len(pairable)))
    if level is AlphaLevel.INTERVAL:  # all resamples in one batch (the library's formula, see interval_alphas)
        batch = interval_alphas(counts, domain, samples)
        boots = [float(x) for x in batch[np.isfinite(batch)]]
    else:
        boots = [value for rows in samples if (value := _alpha(counts[rows], domain, level)) is not None]
    if len(boots) < resamples // 2 or len(pairable) < 2:
        return Agreement(alpha, level, None, None, alpha <= 0, len(pairable), n_votes, "too few drafts for an interval")
    low, high = (float(x) for x in np.quantile(boots, [0.025, 0.975]))
    return Agreement(alpha, level, low, high, low <= 0 or alpha <= 0, len(pairable), n_votes)


TIED_SHARE = 0.5
"""Warn when at least this share of ballots gives every draft the same score (as the verdict ranks them)."""


def ties(votes: Iterable[AuditVote]) -> Ties:
    """How many ballots score every draft the same, as written and as ranked."""
    ballots = [b for b in _ballots(votes).values() if len(b) >= 2]
    written = sum(1 for b in ballots if max(v.written for v in b) - min(v.written for v in b) <= _EPS)
    ranked = sum(1 for b in ballots if max(v.score for v in b) - min(v.score for v in b) <= _EPS)
    n = len(ballots)
    return Ties(n, written, ranked, written / n if n else None, ranked / n if n else None)


# --- 3. harsh and lenient judges ------------------------------------------------------------------------------


def judge_offsets(
    votes: Iterable[AuditVote], *, min_points: float = LEAN_MIN_POINTS, z_threshold: float = LEAN_Z
) -> tuple[JudgeOffset, ...]:
    """Each voter's mean raw score minus the others' mean on the same drafts, most extreme first."""
    units: dict[Key, dict[UUID, float]] = defaultdict(dict)
    for vote in votes:
        units[(vote.epoch, vote.target)][vote.voter] = vote.score
    diffs: dict[UUID, list[float]] = defaultdict(list)
    for scores in units.values():
        if len(scores) < 2:
            continue
        total = sum(scores.values())
        for voter, score in scores.items():
            diffs[voter].append(score - (total - score) / (len(scores) - 1))
    offsets = {voter: sum(d) / len(d) for voter, d in diffs.items()}
    residual = sum((x - offsets[v]) ** 2 for v, d in diffs.items() for x in d)
    dof = sum(len(d) for d in diffs.values()) - len(diffs)
    sigma = math.sqrt(residual / dof) if dof > 0 else 0.0
    out = []
    for voter, d in diffs.items():
        offset = offsets[voter]
        z = offset / (sigma / math.sqrt(len(d))) if sigma > _EPS else None
        strong = abs(offset) >= min_points and (z is None or abs(z) >= z_threshold) and len(d) >= 3
        lean = Lean.FAIR if not strong else Lean.HARSH if offset < 0 else Lean.LENIENT
        out.append(JudgeOffset(voter, offset, z, len(d), lean))
    return tuple(sorted(out, key=lambda j: (-abs(j.offset), str(j.voter))))


# --- 4. length bias -------------------------------------------------------------------------------------------


def _pearson(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Pearson correlation of ``x`` with every row of ``y`` (both already non-constant)."""
    xc = x - x.mean()
    yc = y - y.mean(axis=-1, keepdims=True)
    result: npt.NDArray[np.float64] = (yc @ xc) / (np.sqrt((yc**2).sum(axis=-1)) * math.sqrt(float(xc @ xc)))
    return result


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho (Pearson on mid-ranks); ``None`` for fewer than 3 points or a constant side."""
    if len(x) != len(y) or len(x) < 3:
        return None
    rx, ry = np.array(mid_ranks(x)), np.array(mid_ranks(y))
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return None
    return float(_pearson(rx, ry[None, :])[0])


def length_bias(
    votes: Iterable[AuditVote],
    *,
    rng: random.Random,
    permutations: int = LENGTH_PERMUTATIONS,
    significance: float = SIGNIFICANCE,
) -> LengthBias:
    """Spearman's rho between draft length and mean normalised score received, with a permutation p-value."""
    received: dict[Key, list[float]] = defaultdict(list)
    words: dict[Key, int] = {}
    for vote, value in _normalised(_ballots(votes)):
        received[(vote.epoch, vote.target)].append(value)
        words[(vote.epoch, vote.target)] = vote.target_words
    keys = sorted(received, key=lambda k: (k[0], str(k[1])))
    lengths = [float(words[k]) for k in keys]
    means = [sum(received[k]) / len(received[k]) for k in keys]
    rho = spearman(lengths, means)
    if rho is None:
        reason = "too few drafts" if len(keys) < 3 else "lengths or scores do not vary"
        return LengthBias(None, None, len(keys), False, reason)
    rx, ry = np.array(mid_ranks(lengths)), np.array(mid_ranks(means))
    generator = np.random.default_rng(rng.getrandbits(64))
    shuffled = generator.permuted(np.tile(ry, (permutations, 1)), axis=1)
    null = _pearson(rx, shuffled)
    p_value = float((1 + np.sum(np.abs(null) >= abs(rho) - _EPS)) / (1 + permutations))
    return LengthBias(rho, p_value, len(keys), p_value < significance)


# --- 5. blocs -------------------------------------------------------------------------------------------------


def _sum_distribution(
    ballot_values: Sequence[Sequence[float]],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Support and probabilities of Σ X_i, X_i uniform over the i-th multiset of normalised scores.

    A normalised score of an ``m``-vote ballot is ``h / (2(m − 1))`` with ``h`` an integer (mid-ranks are halves), so
    ballots of the same size are convolved exactly on the integers; sizes are then combined on the reals.
    """
    by_size: dict[int, list[Sequence[float]]] = defaultdict(list)
    for values in ballot_values:
        by_size[len(values)].append(values)
    support, probs = np.zeros(1), np.ones(1)
    for m, group in by_size.items():
        scale = 2 * (m - 1)
        dist = np.ones(1)
        for values in group:
            step = np.zeros(scale + 1)
            for v in values:
                step[round(v * scale)] += 1 / m
            dist = np.convolve(dist, step)
        group_support = np.arange(len(dist)) / scale
        keep = dist > 0
        sums = (support[:, None] + group_support[None, keep]).ravel()
        weights = (probs[:, None] * dist[None, keep]).ravel()
        rounded = np.round(sums, 9)
        merged, inverse = np.unique(rounded, return_inverse=True)
        support, probs = merged.astype(np.float64), np.bincount(inverse.ravel(), weights=weights).astype(np.float64)
    return support, probs


def blocs(votes: Iterable[AuditVote], *, significance: float = SIGNIFICANCE) -> tuple[BlocPair, ...]:
    """Pairs of voters who favour each other's drafts beyond chance, most suspicious first.

    Two tests, and a pair is flagged only when BOTH reject (``p_value`` = the larger of the two p-values, an
    intersection–union test, valid under either test's confound), after Holm's correction over the pairs, and the
    pair favours itself in both:

    * **within each ballot** (exact): scores normalised within each ballot (mid-ranks → [0, 1], so a judge's
      harshness is gone); S = Σ of the normalised scores a gave b's drafts and b gave a's drafts; null: each
      ballot's scores shuffled among its drafts, so the partner's score is a uniform draw from the ballot's
      multiset and S's distribution is their convolution — the limit of a permutation test with unboundedly many
      shuffles, which Holm's correction needs. Blind to what other ballots do, but not to quality: two good authors
      who rightly rate each other highly look like a bloc.
    * **within each draft** (normal approximation): raw scores minus each judge's offset (its mean score minus the
      other judges' mean on the same drafts: harshness removed, a constant shift absorbed exactly); null: which of
      a draft's judges gave which of its adjusted scores is shuffled, so the draft's quality is kept. Raw scores,
      not ranks: a judge's rank of a draft depends on which drafts its ballot holds (never its own), which would
      make two strong authors look allied; and a clique's inflated ranks would push outsiders down.

    ``effect`` = the pair's mean adjusted score for each other minus the mean adjusted score the same drafts
    received from all their judges (points on the 1–10 scale).

    **Which pairs count in the correction (Tarone 1990).** The within-ballot test is discrete: a pair with few votes
    between them cannot reach a small p-value whatever they do (4 votes on 4-draft ballots: at best 4⁻⁴ ≈ 0.004).
    Counting such pairs in Holm's correction only costs power, so the correction runs over the K pairs whose
    smallest achievable p-value is at most ``significance / K`` (K the smallest number for which that many pairs or
    fewer qualify); the others keep ``p_adjusted = 1``. The family-wise error stays below ``significance``.

    **One bloc at a time.** A bloc's bonus to each other looks like leniency to the offset fit, which then lowers
    every score its members gave *other* drafts — enough to make an innocent pair look allied. So the tests run in
    passes: each pass accepts the most significant newly flagged pair as a bloc, and the next pass fits the judges'
    offsets without the accepted blocs' mutual votes and tests again; it stops when a pass flags nothing new. An
    accepted pair keeps the figures of the pass that accepted it.
    """
    ballots = _ballots(votes)
    accepted: dict[frozenset[UUID], BlocPair] = {}
    result: tuple[BlocPair, ...] = ()
    for _ in range(BLOC_PASSES):
        result = _bloc_pass(ballots, _offsets(ballots, leave_out=frozenset(accepted)), significance)
        new = [p for p in result if p.flagged and frozenset((p.a, p.b)) not in accepted]
        if not new:
            break
        best = min(new, key=lambda p: (p.p_adjusted, p.p_value, -p.effect, str(p.a), str(p.b)))
        accepted[frozenset((best.a, best.b))] = best
    final = [accepted.get(frozenset((p.a, p.b)), p) for p in result]
    return tuple(sorted(final, key=lambda p: (p.p_adjusted, p.p_value, -p.effect, str(p.a), str(p.b))))


def _bloc_pass(
    ballots: Mapping[Key, Sequence[AuditVote]], offsets: Mapping[UUID, float], significance: float
) -> tuple[BlocPair, ...]:
    """One pass of the two bloc tests and Tarone–Holm, with the judges' offsets given."""
    adjusted: dict[tuple[int, UUID], list[float]] = defaultdict(list)
    scored: list[tuple[UUID, AuditVote, float, tuple[float, ...]]] = []
    for (_, voter), ballot in ballots.items():
        if len(ballot) < 2:
            continue
        normalised = normalise_ballot([v.score for v in ballot])
        for vote, value in zip(ballot, normalised, strict=True):
            adjusted[(vote.epoch, vote.target)].append(vote.score - offsets.get(voter, 0.0))
            scored.append((voter, vote, value, normalised))
    cells: dict[tuple[UUID, UUID], list[tuple[float, tuple[float, ...], float, tuple[float, ...]]]] = (
        defaultdict(list)
    )
    for voter, vote, value, ballot_values in scored:
        draft = tuple(adjusted[(vote.epoch, vote.target)])
        pair = (voter, vote.target) if str(voter) < str(vote.target) else (vote.target, voter)
        cells[pair].append((value, ballot_values, vote.score - offsets.get(voter, 0.0), draft))
    tested: list[tuple[UUID, UUID, float, int, float, float, float, bool, float]] = []
    for (a, b), pair_cells in cells.items():
        if len(pair_cells) < MIN_BLOC_VOTES:
            continue
        observed = sum(c[0] for c in pair_cells)
        ballot_mean = sum(sum(c[1]) / len(c[1]) for c in pair_cells)
        raw = sum(c[2] for c in pair_cells)
        draft_mean = sum(sum(c[3]) / len(c[3]) for c in pair_cells)
        draft_var = sum(statistics.pvariance(c[3]) for c in pair_cells)
        effect = (raw - draft_mean) / len(pair_cells)
        p_ballot = _upper_tail([c[1] for c in pair_cells], observed)
        p_draft = 0.5 * math.erfc((raw - draft_mean) / math.sqrt(2 * draft_var)) if draft_var > 0 else 1.0
        favours = observed > ballot_mean + 1e-9 and raw > draft_mean + 1e-9
        p_min = float(math.prod(c[1].count(max(c[1])) / len(c[1]) for c in pair_cells))
        tested.append((a, b, effect, len(pair_cells), max(p_ballot, p_draft), p_ballot, p_draft, favours, p_min))
    family = tarone_family([t[8] for t in tested], significance)
    # Holm over the family: the i-th smallest of K p-values is multiplied by K − i, adjusted values kept monotone
    tested.sort(key=lambda t: (t[4], -t[2], str(t[0]), str(t[1])))
    out: list[BlocPair] = []
    running = 0.0
    rank = 0
    for a, b, effect, n, p_value, p_ballot, p_draft, favours, p_min in tested:
        if p_min <= significance / family:
            running = max(running, min(1.0, (family - rank) * p_value))
            p_adjusted, rank = running, rank + 1
        else:
            p_adjusted = 1.0
        out.append(BlocPair(a, b, effect, n, p_value, p_adjusted, p_adjusted < significance and favours, p_ballot,
                            p_draft, p_min))  # fmt: skip
    out.sort(key=lambda p: (p.p_adjusted, p.p_value, -p.effect, str(p.a), str(p.b)))
    return tuple(out)


def tarone_family(p_mins: Sequence[float], significance: float) -> int:
    """Tarone's K: the smallest K ≥ 1 such that at most K of the tests can reach ``significance / K`` at all."""
    ordered = sorted(p_mins)
    for k in range(1, len(ordered) + 1):
        if sum(1 for p in ordered if p <= significance / k) <= k:
            return k
    return max(1, len(ordered))


def _offsets(
    ballots: Mapping[Key, Sequence[AuditVote]],
    *,
    leave_out: frozenset[frozenset[UUID]] = frozenset(),
    rounds: int = 500,
) -> dict[UUID, float]:
    """Each judge's offset h in the two-way fit score ≈ quality(draft) + h(judge) (least squares, by alternating
    means until it settles; mean offset 0). Adding a constant to one judge's scores moves its own offset by that
    constant and every score minus its judge's offset by one common amount, so the within-draft test is unchanged.
    Votes between the two members of a ``leave_out`` pair (a flagged bloc) are left out of the fit: a bloc's bonus
    is not leniency, and counting it as such would shift every other draft's adjusted scores."""
    votes = [(voter, (vote.epoch, vote.target), vote.score)
             for (_, voter), ballot in ballots.items() for vote in ballot
             if frozenset((voter, vote.target)) not in leave_out]  # fmt: skip
    if not votes:
        return {}
    offset = dict.fromkeys((v for v, _, _ in votes), 0.0)
    quality: dict[tuple[int, UUID], float] = {}
    for _ in range(rounds):
        sums: dict[tuple[int, UUID], list[float]] = defaultdict(list)
        for voter, draft, score in votes:
            sums[draft].append(score - offset[voter])
        quality = {draft: statistics.fmean(s) for draft, s in sums.items()}
        gaps: dict[UUID, list[float]] = defaultdict(list)
        for voter, draft, score in votes:
            gaps[voter].append(score - quality[draft])
        new = {voter: statistics.fmean(g) for voter, g in gaps.items()}
        centre = statistics.fmean(new.values())
        new = {voter: h - centre for voter, h in new.items()}
        moved = max(abs(new[v] - offset[v]) for v in new)
        offset = new
        if moved < 1e-12:
            break
    return offset


def _upper_tail(multisets: Sequence[tuple[float, ...]], observed: float) -> float:
    """P(Σ of one uniform draw from each multiset ≥ ``observed``)."""
    support, probs = _sum_distribution(list(multisets))
    return float(min(1.0, probs[support >= observed - 1e-7].sum()))


def bloc_groups(pairs: Iterable[BlocPair]) -> tuple[tuple[UUID, ...], ...]:
    """Voters linked by flagged pairs, as connected groups (each sorted by id; groups largest first)."""
    parent: dict[UUID, UUID] = {}

    def find(x: UUID) -> UUID:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for pair in pairs:
        if pair.flagged:
            parent[find(pair.a)] = find(pair.b)
    groups: dict[UUID, list[UUID]] = defaultdict(list)
    for voter in list(parent):
        groups[find(voter)].append(voter)
    return tuple(
        sorted((tuple(sorted(g, key=str)) for g in groups.values()), key=lambda g: (-len(g), [str(v) for v in g]))
    )


# --- 6. the summary -------------------------------------------------------------------------------------------


def _p(p_value: float) -> str:
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _warnings(
    position: PositionBias,
    agreement_: Agreement,
    judges: Sequence[JudgeOffset],
    length: LengthBias,
    tied: Ties,
    pairs: Sequence[BlocPair],
    groups: Sequence[tuple[UUID, ...]],
    names: Mapping[UUID, str],
) -> tuple[AuditWarning, ...]:
    out: list[AuditWarning] = []
    if tied.ranked_share is not None and tied.ranked_share >= TIED_SHARE:
        text = (f"{tied.ranked_share:.0%} of ballots give every draft the same score: those judges tell the drafts "
                "apart by nothing, and the verdict falls to penalties and tie-breaks")  # fmt: skip
        out.append(AuditWarning(WarningKind.TIED_BALLOTS, text))
    if agreement_.chance_level:
        text = f"judges agree no better than chance (Krippendorff's alpha = {agreement_.alpha:.2f})"
        out.append(AuditWarning(WarningKind.CHANCE_AGREEMENT, text))
    if position.flagged and position.first_win_share is not None and position.chance_share is not None:
        share, chance = position.first_win_share, position.chance_share
        text = f"first-shown drafts win {share:.0%} of ballots (chance {chance:.0%}, {_p(position.p_value or 0.0)})"
        out.append(AuditWarning(WarningKind.POSITION_BIAS, text))
    for judge in judges:
        if judge.lean is not Lean.FAIR:
            kind = WarningKind.HARSH_JUDGE if judge.lean is Lean.HARSH else WarningKind.LENIENT_JUDGE
            word = "lower" if judge.lean is Lean.HARSH else "higher"
            text = f"{_name(judge.voter, names)} is a {judge.lean.value} judge: scores {abs(judge.offset):.1f} points"
            out.append(AuditWarning(kind, f"{text} {word} than the others on the same drafts"))
    if length.flagged and length.rho is not None:
        trend = "longer" if length.rho > 0 else "shorter"
        text = f"{trend} drafts score higher (Spearman rho = {length.rho:.2f}, {_p(length.p_value or 0.0)})"
        out.append(AuditWarning(WarningKind.LENGTH_BIAS, text))
    for group in groups:
        members = set(group)
        best = min(p.p_adjusted for p in pairs if p.flagged and p.a in members)
        who = _join(sorted(_name(v, names) for v in group))
        out.append(AuditWarning(WarningKind.BLOC, f"{who} favour each other's drafts ({_p(best)}, corrected)"))
    return tuple(out)


def _audit(
    votes: Sequence[AuditVote],
    scope: AuditScope,
    rng: random.Random,
    names: Mapping[UUID, str],
    level: AlphaLevel,
) -> JudgingHealth:
    position = position_bias(votes)
    agreement_ = agreement(votes, rng=rng, level=level)
    judges = judge_offsets(votes)
    length = length_bias(votes, rng=rng)
    tied = ties(votes)
    pairs = blocs(votes) if scope is AuditScope.BOOK else ()
    groups = bloc_groups(pairs)
    return JudgingHealth(
        scope=scope,
        epochs=tuple(sorted({v.epoch for v in votes})),
        ballots=len(_ballots(votes)),
        votes=len(votes),
        position=position,
        agreement=agreement_,
        judges=judges,
        length=length,
        ties=tied,
        blocs=pairs,
        bloc_groups=groups,
        warnings=_warnings(position, agreement_, judges, length, tied, pairs, groups, names),
    )


def audit_epoch(
    votes: Sequence[AuditVote],
    *,
    rng: random.Random,
    names: Mapping[UUID, str] | None = None,
    level: AlphaLevel = AlphaLevel.INTERVAL,
) -> JudgingHealth:
    """The judging health of one epoch (no bloc test: one epoch cannot show one). ``names``: voter id → name."""
    if len({v.epoch for v in votes}) > 1:
        raise ValueError("audit_epoch takes the votes of one epoch; use audit_book for several")
    return _audit(votes, AuditScope.EPOCH, rng, names or {}, level)


def audit_book(
    votes: Sequence[AuditVote],
    *,
    rng: random.Random,
    names: Mapping[UUID, str] | None = None,
    level: AlphaLevel = AlphaLevel.INTERVAL,
) -> JudgingHealth:
    """The judging health of a book's history (votes of many epochs, told apart by ``AuditVote.epoch``)."""
    return _audit(votes, AuditScope.BOOK, rng, names or {}, level)


def to_json(value: object) -> JsonValue:
    """A plain JSON value from an audit value: dataclasses → objects, UUIDs → strings, enums → their values,
    tuples → lists, non-finite floats → ``None``. ``to_json(health)`` is what storage keeps."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Enum):
        return to_json(value.value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    raise TypeError(f"not an audit value: {type(value).__name__}")
