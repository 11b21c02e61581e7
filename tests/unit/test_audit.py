"""The judging audit (``spacetime.rules.audit``) on seeded simulated books: each epoch every agent drafts (a hidden
quality), every agent scores every other draft (quality + noise, rounded to 1–10) in a shuffled order; biases are
planted on top (a first-position bonus, a harsh judge, a clique, a length preference)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from uuid import UUID, uuid4

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacetime.domain import Ballot, BallotStatus, CollapseDecision, Draft, EpochRecord, FinishReason, Vote
from spacetime.rules.audit import (
    AuditScope,
    AuditVote,
    Lean,
    WarningKind,
    _sum_distribution,
    agreement,
    audit_book,
    audit_epoch,
    audit_votes,
    bloc_groups,
    blocs,
    judge_offsets,
    length_bias,
    normalise_ballot,
    position_bias,
    spearman,
    tarone_family,
    ties,
    to_json,
)


@dataclass(frozen=True)
class Plant:
    clique: int = 0
    """The first ``clique`` agents give each other's drafts +``clique_bonus``."""
    clique_bonus: float = 3.0
    first_bonus: float = 0.0
    """Added to the score of the first-shown draft of every ballot."""
    lean: float = 0.0
    """Added to every score the first agent gives (negative = harsh)."""
    per_100_words: float = 0.0
    """Added per 100 words of the draft's length."""
    quality_sd: float = 1.5
    noise_sd: float = 1.2


def simulate(rng: random.Random, agents: int = 6, epochs: int = 10, plant: Plant = Plant()) -> tuple[
        list[UUID], list[AuditVote]]:  # fmt: skip
    ids = [UUID(int=rng.getrandbits(128)) for _ in range(agents)]
    clique = set(ids[: plant.clique])
    votes: list[AuditVote] = []
    for epoch in range(epochs):
        quality = {a: rng.gauss(6, plant.quality_sd) for a in ids}
        words = {a: rng.randint(200, 1200) for a in ids}
        for voter in ids:
            order = [a for a in ids if a != voter]
            rng.shuffle(order)
            for position, target in enumerate(order, 1):
                score = quality[target] + rng.gauss(0, plant.noise_sd) + plant.per_100_words * words[target] / 100
                score += plant.clique_bonus if voter in clique and target in clique else 0.0
                score += plant.first_bonus if position == 1 else 0.0
                score += plant.lean if voter == ids[0] else 0.0
                votes.append(AuditVote(voter, target, float(min(10, max(1, round(score)))), position, words[target],
                                       epoch))  # fmt: skip
    return ids, votes


def shifted(votes: Sequence[AuditVote], voter: UUID, by: float) -> list[AuditVote]:
    return [replace(v, score=v.score + by) if v.voter == voter else v for v in votes]


# --- normalisation ------------------------------------------------------------------------------------------------

scores = st.lists(st.integers(1, 10).map(float), min_size=2, max_size=12)


@given(scores, st.floats(0.1, 10), st.floats(-20, 20))
def test_normalised_scores_lie_in_0_1_average_a_half_and_ignore_affine_changes(
    values: list[float], scale: float, shift: float
) -> None:
    normalised = normalise_ballot(values)
    assert all(0 <= x <= 1 for x in normalised)
    assert sum(normalised) / len(normalised) == pytest.approx(0.5)
    assert normalise_ballot([scale * v + shift for v in values]) == pytest.approx(normalised)
    assert normalise_ballot([1.0, 5.0, 5.0, 9.0]) == (0.0, 0.5, 0.5, 1.0)
    assert normalise_ballot([4.0]) == (0.5,)


# --- 1. position bias ---------------------------------------------------------------------------------------------


def test_a_planted_first_position_bonus_is_detected() -> None:
    _, votes = simulate(random.Random(11), agents=6, epochs=10, plant=Plant(first_bonus=2.0))
    bias = position_bias(votes)
    assert bias.flagged and bias.p_value is not None and bias.p_value < 0.001
    assert bias.ballots == 60 and bias.chance_share is not None and 0.2 <= bias.chance_share < 0.3
    assert bias.first_win_share is not None and bias.first_win_share > 0.5
    means = {p.position: p.mean_normalised for p in bias.by_position}
    assert means[1] == max(means.values())


def test_unbiased_ballots_are_rarely_flagged_for_position() -> None:
    rng = random.Random(12)
    flagged = sum(position_bias(simulate(rng, agents=6, epochs=10)[1]).flagged for _ in range(100))
    assert flagged <= 3  # nominal 1 %; seeded: 0 of 100


def test_position_bias_ignores_unknown_positions_and_single_votes() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    bias = position_bias([AuditVote(a, b, 5.0, 0), AuditVote(a, c, 7.0, 0), AuditVote(b, a, 9.0, 1)])
    assert bias.ballots == 0 and bias.p_value is None and not bias.flagged


# --- 2. agreement -------------------------------------------------------------------------------------------------


def test_identical_judges_agree_perfectly() -> None:
    _, votes = simulate(random.Random(21), agents=6, epochs=4, plant=Plant(noise_sd=0.0))
    result = agreement(votes, rng=random.Random(0))
    assert result.alpha == pytest.approx(1.0)
    assert result.chance_level is False and result.ci_low is not None and result.ci_low > 0.9


def test_random_judges_agree_at_chance_level() -> None:
    _, votes = simulate(random.Random(22), agents=7, epochs=10, plant=Plant(quality_sd=0.0, noise_sd=3.0))
    result = agreement(votes, rng=random.Random(0))
    assert result.alpha is not None and abs(result.alpha) < 0.1
    assert result.chance_level is True and result.ci_low is not None and result.ci_low <= 0 <= (result.ci_high or 0)


def test_agreeing_judges_are_not_chance() -> None:
    _, votes = simulate(random.Random(23), agents=6, epochs=10)  # quality sd 1.5, noise sd 1.2
    result = agreement(votes, rng=random.Random(0))
    assert result.alpha is not None and 0.3 < result.alpha < 0.8 and result.chance_level is False


def test_alpha_is_none_with_a_reason_when_undefined() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    equal = agreement([AuditVote(a, c, 7.0), AuditVote(b, c, 7.0), AuditVote(a, b, 7.0)], rng=random.Random(0))
    assert equal.alpha is None and equal.chance_level is None and equal.reason == "every score is the same"
    lonely = agreement([AuditVote(a, c, 7.0), AuditVote(b, a, 3.0)], rng=random.Random(0))
    assert lonely.alpha is None and lonely.reason is not None and "too few votes" in lonely.reason
    assert agreement([], rng=random.Random(0)).alpha is None


# --- 3. harsh and lenient judges ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("lean", "expected"), [(-3.0, Lean.HARSH), (3.0, Lean.LENIENT)])
def test_a_harsh_or_lenient_judge_is_found(lean: float, expected: Lean) -> None:
    ids, votes = simulate(random.Random(31), agents=6, epochs=5, plant=Plant(lean=lean, quality_sd=1.0))
    judges = {j.voter: j for j in judge_offsets(votes)}
    assert judges[ids[0]].lean is expected and judges[ids[0]].offset == pytest.approx(lean, abs=0.8)
    assert all(judges[v].lean is Lean.FAIR for v in ids[1:])


def test_fair_judges_are_rarely_flagged() -> None:
    rng = random.Random(32)
    flagged = sum(any(j.lean is not Lean.FAIR for j in judge_offsets(simulate(rng)[1])) for _ in range(50))
    assert flagged <= 2


# --- 4. length bias -----------------------------------------------------------------------------------------------


def test_length_bias_is_found_when_judges_prefer_long_drafts() -> None:
    _, votes = simulate(random.Random(41), plant=Plant(per_100_words=0.4))
    result = length_bias(votes, rng=random.Random(0))
    assert result.flagged and result.rho is not None and result.rho > 0.4 and result.drafts == 60
    neutral = length_bias(simulate(random.Random(42))[1], rng=random.Random(0))
    assert not neutral.flagged and neutral.rho is not None and abs(neutral.rho) < 0.3


def test_spearman_is_none_when_undefined() -> None:
    assert spearman([1, 2], [3, 4]) is None
    assert spearman([1, 2, 3], [5, 5, 5]) is None
    assert spearman([1, 2, 3], [1, 4, 9]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


# --- 5. blocs -----------------------------------------------------------------------------------------------------

BOOKS = 40
"""Seeded books per clique size and roster, 10 epochs each. A pair is flagged only when both tests (within ballots,
within drafts) reject it. Seeded figures (N = 5 / 6 / 7): a 2-clique is flagged exactly (that pair, nothing else)
in 37 / 39 / 39 of 40 books; a 3-clique has at least one of its pairs flagged in 3 / 28 / 39 of 40 and is found
whole in 0 / 12 / 33 — in a roster of 5 a 3-clique is the majority of every member's judges, and from the votes alone
"three authors like each other's drafts" cannot be told from "three authors write better drafts than the other two
admit"; no pair outside a clique is ever flagged; clique-free books: 0 of 150 flag anything."""


@pytest.mark.parametrize("agents", [5, 6, 7])
def test_a_planted_pair_is_detected(agents: int) -> None:
    rng = random.Random(51 + agents)
    found = 0
    for _ in range(BOOKS):
        ids, votes = simulate(rng, agents=agents, epochs=10, plant=Plant(clique=2))
        flagged = {frozenset((p.a, p.b)) for p in blocs(votes) if p.flagged}
        found += flagged == {frozenset(ids[:2])}
    assert found >= 0.85 * BOOKS, found


@pytest.mark.parametrize(("agents", "some_at_least", "whole_at_least"), [(5, 2, 0), (6, 24, 8), (7, 35, 28)])
def test_a_planted_clique_of_three_is_detected(agents: int, some_at_least: int, whole_at_least: int) -> None:
    rng = random.Random(61 + agents)
    some_pair = grouped = wrong = 0
    for _ in range(BOOKS):
        ids, votes = simulate(rng, agents=agents, epochs=10, plant=Plant(clique=3))
        pairs = blocs(votes)
        clique = set(ids[:3])
        flagged = [p for p in pairs if p.flagged]
        some_pair += any(p.a in clique and p.b in clique for p in flagged)
        grouped += set(ids[:3]) in [set(g) for g in bloc_groups(pairs)]
        wrong += any(not (p.a in clique and p.b in clique) for p in flagged)
    assert some_pair >= some_at_least, some_pair
    assert grouped >= whole_at_least, grouped
    assert wrong == 0, wrong


def test_clique_free_books_are_almost_never_flagged() -> None:
    rng = random.Random(71)
    flagged = 0
    for i in range(150):
        _, votes = simulate(rng, agents=5 + i % 3, epochs=10)
        flagged += any(p.flagged for p in blocs(votes))
    assert flagged <= 0.01 * 150, flagged  # seeded: 0 of 150


def test_the_exact_p_value_matches_a_monte_carlo_permutation_test() -> None:
    ids, votes = simulate(random.Random(81), agents=5, epochs=6, plant=Plant(clique=2, clique_bonus=1.0))
    pair = next(p for p in blocs(votes) if {p.a, p.b} == set(ids[:2]))
    ballots: dict[tuple[int, UUID], list[AuditVote]] = {}
    for v in votes:
        ballots.setdefault((v.epoch, v.voter), []).append(v)
    cells = []  # (normalised scores of the ballot, index of the partner)
    for (_, voter), ballot in ballots.items():
        for i, v in enumerate(ballot):
            if {voter, v.target} == set(ids[:2]):
                cells.append((np.array(normalise_ballot([x.score for x in ballot])), i))
    observed = sum(values[i] for values, i in cells)
    generator = np.random.default_rng(0)
    shuffles = 20000
    null = sum(generator.permuted(np.tile(values, (shuffles, 1)), axis=1)[:, i] for values, i in cells)
    monte_carlo = (1 + np.sum(null >= observed - 1e-9)) / (1 + shuffles)
    assert pair.p_within_ballot == pytest.approx(monte_carlo, abs=0.01)
    assert pair.p_value == max(pair.p_within_ballot, pair.p_within_draft)


def test_the_sum_distribution_is_exact_for_mixed_ballot_sizes() -> None:
    support, probs = _sum_distribution([(0.0, 1.0), (0.0, 0.5, 1.0)])
    assert dict(zip(support.round(6), probs, strict=True)) == pytest.approx(
        {0.0: 1 / 6, 0.5: 1 / 6, 1.0: 2 / 6, 1.5: 1 / 6, 2.0: 1 / 6}
    )


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.integers(4, 6), st.booleans())
def test_a_constant_added_to_one_judge_changes_neither_blocs_nor_position_bias(
    seed: int, shift: int, agents: int, clique: bool
) -> None:
    ids, votes = simulate(random.Random(seed), agents=agents, epochs=6, plant=Plant(clique=2 if clique else 0))
    moved = shifted(votes, ids[-1], float(shift))
    assert position_bias(moved) == position_bias(votes)
    before = {(p.a, p.b): (p.p_value, p.p_adjusted, p.effect, p.flagged) for p in blocs(votes)}
    after = {(p.a, p.b): (p.p_value, p.p_adjusted, p.effect, p.flagged) for p in blocs(moved)}
    assert after.keys() == before.keys()
    for pair, value in before.items():  # the two-way fit settles to 1e-12, not to the last bit
        assert after[pair] == pytest.approx(value, rel=1e-6, abs=1e-9)


# --- 6. the summary -----------------------------------------------------------------------------------------------


def test_a_book_with_a_clique_and_a_first_position_bonus_warns_in_plain_words() -> None:
    ids, votes = simulate(random.Random(91), agents=6, epochs=10, plant=Plant(clique=2, first_bonus=2.0))
    names = dict(zip(ids, ["Politician", "Financier", "Physicist", "Poet", "Chef", "Monk"], strict=True))
    health = audit_book(votes, rng=random.Random(0), names=names)
    assert health.scope is AuditScope.BOOK and health.epochs == tuple(range(10)) and health.ballots == 60
    kinds = {w.kind for w in health.warnings}
    assert {WarningKind.BLOC, WarningKind.POSITION_BIAS} <= kinds and not health.healthy
    texts = " | ".join(w.text for w in health.warnings)
    assert "Financier and Politician favour each other's drafts (p" in texts
    assert "first-shown drafts win" in texts and "(chance 2" in texts
    assert health.bloc_groups == (tuple(sorted(ids[:2], key=str)),)


def test_an_epoch_audit_has_no_blocs_and_refuses_several_epochs() -> None:
    _, votes = simulate(random.Random(92), agents=6, epochs=2)
    health = audit_epoch([v for v in votes if v.epoch == 1], rng=random.Random(0))
    assert health.scope is AuditScope.EPOCH and health.blocs == () and health.votes == 30
    with pytest.raises(ValueError):
        audit_epoch(votes, rng=random.Random(0))
    empty = audit_book([], rng=random.Random(0))
    assert empty.agreement.alpha is None and empty.blocs == () and empty.judges == ()


def test_chance_agreement_is_said_plainly() -> None:
    _, votes = simulate(random.Random(93), agents=7, epochs=10, plant=Plant(quality_sd=0.0, noise_sd=3.0))
    health = audit_book(votes, rng=random.Random(0))
    assert any(w.text.startswith("judges agree no better than chance") for w in health.warnings)


def test_the_audit_is_reproducible_and_stores_as_plain_json() -> None:
    _, votes = simulate(random.Random(94), agents=5, epochs=4, plant=Plant(clique=2))
    first = audit_book(votes, rng=random.Random(7))
    assert audit_book(votes, rng=random.Random(7)) == first
    stored = to_json(first)
    assert isinstance(stored, dict) and stored["scope"] == "book"
    assert json.loads(json.dumps(stored, allow_nan=False)) == stored
    lonely = to_json(audit_book([], rng=random.Random(0)))
    assert isinstance(lonely, dict) and isinstance(lonely["agreement"], dict)
    assert lonely["agreement"]["alpha"] is None and lonely["agreement"]["reason"]


def test_votes_are_read_from_an_epoch_record() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    drafts = tuple(Draft(x, "one two three" * (i + 1), FinishReason.STOP, 1, 1, 1.0) for i, x in enumerate((a, b, c)))
    ballot = Ballot(a, BallotStatus.OK, (Vote(a, b, 7, "fine", position=2), Vote(a, c, 4, "meh", position=1)))
    record = EpochRecord(uuid4(), 3, (a, b, c), drafts, {}, (ballot,), (), (), CollapseDecision(b, c), "T", "text")
    votes = audit_votes(record)
    assert [(v.voter, v.target, v.score, v.position, v.target_words, v.epoch) for v in votes] == [
        (a, b, 7.0, 2, 5, 3), (a, c, 4.0, 1, 7, 3)]  # fmt: skip


def test_votes_carry_the_g_eval_score_and_the_integer_written() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    drafts = tuple(Draft(x, "words", FinishReason.STOP, 1, 1, 1.0) for x in (a, b, c))
    ballot = Ballot(a, BallotStatus.OK, (Vote(a, b, 5, "", expected_score=6.437), Vote(a, c, 5, "")))
    record = EpochRecord(uuid4(), 1, (a, b, c), drafts, {}, (ballot,), (), (), CollapseDecision(b, c), "T", "text")
    first, second = audit_votes(record)
    assert (first.score, first.given, first.written) == (6.4, 5, 5.0)  # the expectation to 0.1, the integer kept
    assert (second.score, second.given, second.written) == (5.0, None, 5.0)


def test_tied_ballots_are_counted_as_written_and_as_ranked_and_warned_about() -> None:
    voters = [uuid4() for _ in range(4)]

    def book(expected: bool) -> list[AuditVote]:
        return [AuditVote(v, t, (1.0 + 0.3 * j) if expected else 1.0, epoch=e, given=1 if expected else None)
                for e in range(3) for v in voters
                for j, t in enumerate(x for x in voters if x != v)]  # fmt: skip

    tied = audit_book(book(expected=False), rng=random.Random(0))
    assert (tied.ties.ballots, tied.ties.written, tied.ties.ranked) == (12, 12, 12)
    assert tied.ties.ranked_share == 1.0
    assert any(w.kind is WarningKind.TIED_BALLOTS and w.text.startswith("100% of ballots give every draft the same")
               for w in tied.warnings)  # fmt: skip
    read = audit_book(book(expected=True), rng=random.Random(0))
    assert (read.ties.written, read.ties.ranked, read.ties.written_share) == (12, 0, 1.0)
    assert not any(w.kind is WarningKind.TIED_BALLOTS for w in read.warnings)
    assert ties([]).ballots == 0 and ties([]).ranked_share is None


def test_tarones_family_leaves_out_pairs_that_cannot_reach_significance() -> None:
    # three pairs that could reach 1e-6, twenty with at best 0.004 (4 votes on 4-draft ballots): the family is 3,
    # where Holm over all 23 would multiply the best p-value by 23
    assert tarone_family([1e-6] * 3 + [4.0**-4] * 20, 0.01) == 3
    assert tarone_family([4.0**-4] * 2, 0.01) == 2  # both can reach 0.005
    assert tarone_family([0.5] * 5, 0.01) == 1  # nobody can: the loop ends at the first K that holds
    assert tarone_family([], 0.01) == 1


@given(st.lists(st.floats(min_value=1e-12, max_value=1.0), max_size=40), st.sampled_from([0.01, 0.05]))
def test_tarones_family_is_the_smallest_k_that_holds(p_mins: list[float], level: float) -> None:
    k = tarone_family(p_mins, level)
    assert 1 <= k <= max(1, len(p_mins))
    assert sum(1 for p in p_mins if p <= level / k) <= k
    assert all(sum(1 for p in p_mins if p <= level / j) > j for j in range(1, k))


def test_pairs_outside_the_family_are_never_flagged_and_their_p_min_is_exact() -> None:
    _, votes = simulate(random.Random(97), agents=6, epochs=3, plant=Plant(clique=2))
    pairs = blocs(votes)
    family = tarone_family([p.p_min for p in pairs], 0.01)
    for pair in pairs:
        assert 0.0 < pair.p_min <= pair.p_within_ballot + 1e-12
        if pair.p_min > 0.01 / family:
            assert pair.p_adjusted == 1.0 and not pair.flagged
        else:
            assert pair.p_adjusted >= min(1.0, pair.p_value)


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.lists(st.integers(1, 10), min_size=2, max_size=6), min_size=1, max_size=12),
    seed=st.integers(0, 2**32 - 1),
)
def test_batched_interval_alpha_equals_the_library_on_every_resample(data: list[list[int]], seed: int) -> None:
    """The audit's bootstrap computes interval alpha for all resamples at once: each value is the library's."""
    import krippendorff

    from spacetime.rules.audit import interval_alphas

    domain = sorted({v for unit in data for v in unit})
    counts = np.zeros((len(data), len(domain)), dtype=np.int64)
    for row, unit in enumerate(data):
        for v in unit:
            counts[row, domain.index(v)] += 1
    samples = np.random.default_rng(seed).integers(0, len(data), size=(25, len(data)))
    batch = interval_alphas(counts, domain, samples)
    assert batch.shape == (25,)
    for rows, got in zip(samples, batch, strict=True):
        if len(domain) < 2:
            assert np.isnan(got)
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            want = float(krippendorff.alpha(value_counts=counts[rows], value_domain=domain,
                                            level_of_measurement="interval"))  # fmt: skip
        if np.isfinite(want):
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
        else:
            assert np.isnan(got)
