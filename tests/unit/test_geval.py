"""G-Eval scores: the probability-weighted mean of the number tokens a judge weighed, read from its tokens."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from spacetime.domain import TokenChoice
from spacetime.rules.ballot import expected_scores, parse_ballot
from spacetime.rules.geval import number_value, read_score, score_readings
from tests.factories import ballot_tokens

ALIASES = ["Anonymous_Philosopher_1", "Anonymous_Philosopher_2", "Anonymous_Philosopher_3"]


def alts(probabilities: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple((text, math.log(p)) for text, p in probabilities.items())


def test_the_expectation_weights_each_number_by_its_probability() -> None:
    tokens = [TokenChoice("7", alts({"6": 0.2, "7": 0.5, "8": 0.3})), TokenChoice(",")]
    reading = read_score(tokens, 0)
    assert reading is not None and reading.given == 7
    assert math.isclose(reading.expected, (6 * 0.2 + 7 * 0.5 + 8 * 0.3) / 1.0)
    assert math.isclose(reading.mass, 1.0)


def test_a_judge_that_writes_1_everywhere_still_says_which_draft_it_prefers() -> None:
    """SmolLM2's failure: the integer is 1 for every draft, the distribution behind it is not."""
    ballot = {a: {"insight_score": 1, "rationale": "ok"} for a in ALIASES}
    text = json.dumps(ballot)
    tokens = ballot_tokens(text, {0: {"1": 0.9, "2": 0.1, "0": 0.5}, 1: {"1": 0.5, "3": 0.5}, 2: {"1": 0.6, "2": 0.4}})
    readings = score_readings(tokens, ALIASES)
    assert [readings[a].given for a in ALIASES] == [1, 1, 1]
    e1, e2, e3 = (readings[a].expected for a in ALIASES)
    assert e2 > e3 > e1  # 2.0 > 1.4 > 1.1: the ordering the integers hide
    parsed = parse_ballot(text, ALIASES)
    assert expected_scores(parsed, readings) == {a: readings[a].expected for a in ALIASES}


def test_ten_written_as_two_tokens_is_read_as_ten() -> None:
    # the voter wrote "1" then "0"; at the "0" step, "0" had probability 0.8 (so 0.2 of the "1" mass meant 1)
    tokens = [TokenChoice("1", alts({"1": 0.6, "9": 0.4})), TokenChoice("0", alts({"0": 0.8})), TokenChoice(",")]
    reading = read_score(tokens, 0)
    assert reading is not None and reading.given == 10
    assert math.isclose(reading.expected, (10 * 0.6 * 0.8 + 1 * 0.6 * 0.2 + 9 * 0.4) / 1.0)


def test_a_1_not_taken_is_read_as_the_end_of_the_scale_nearer_the_given_score() -> None:
    high = read_score([TokenChoice("9", alts({"9": 0.5, "1": 0.5})), TokenChoice(",")], 0)
    low = read_score([TokenChoice("2", alts({"2": 0.5, "1": 0.5})), TokenChoice(",")], 0)
    assert high is not None and math.isclose(high.expected, 9.5)  # "1" → 10
    assert low is not None and math.isclose(low.expected, 1.5)  # "1" → 1


def test_numbers_in_rationales_and_unknown_keys_are_not_scores() -> None:
    ballot = {
        "Intruder": {"insight_score": 9, "rationale": "x"},
        ALIASES[0]: {"insight_score": 4, "rationale": 'scored 8 of 10, "insight_score": 2'},
        ALIASES[1]: {"rationale": "no score here"},
    }
    tokens = ballot_tokens(json.dumps(ballot), {0: {"9": 1.0}, 1: {"4": 0.5, "5": 0.5}, 2: {"2": 1.0}})
    readings = score_readings(tokens, ALIASES)
    assert set(readings) == {ALIASES[0]}
    assert readings[ALIASES[0]].given == 4 and math.isclose(readings[ALIASES[0]].expected, 4.5)


def test_no_alternatives_no_reading_and_a_mismatch_is_not_attached() -> None:
    text = json.dumps({ALIASES[0]: {"insight_score": 6, "rationale": "x"}})
    bare = [TokenChoice(t.text) for t in ballot_tokens(text, {})]
    assert score_readings(bare, ALIASES) == {}
    assert score_readings([], ALIASES) == {}
    readings = score_readings(ballot_tokens(text, {0: {"6": 0.5, "7": 0.5}}), ALIASES)
    other = parse_ballot(json.dumps({ALIASES[0]: {"insight_score": 3, "rationale": "x"}}), ALIASES[:1])
    assert expected_scores(other, readings) == {}  # the tokens say 6, the parsed answer says 3: not attached


def test_number_tokens() -> None:
    assert [number_value(t) for t in ("7", " 7", ": 10", "10", "x", "7,", "", "²")] == [7, 7, 10, 10] + [None] * 4


@given(
    st.integers(min_value=2, max_value=9),
    st.dictionaries(st.integers(min_value=2, max_value=9), st.floats(min_value=1e-4, max_value=1.0), max_size=8),
)
def test_the_expectation_is_a_score_and_moves_with_the_mass(chosen: int, others: dict[int, float]) -> None:
    weights = {str(k): v for k, v in others.items()} | {str(chosen): 1.0}
    total = sum(weights.values())
    probabilities = {k: v / total for k, v in weights.items()}
    reading = read_score([TokenChoice(str(chosen), alts(probabilities)), TokenChoice(",")], 0)
    assert reading is not None and 1.0 <= reading.expected <= 10.0
    assert min(int(k) for k in weights) - 1e-9 <= reading.expected <= max(int(k) for k in weights) + 1e-9
    # moving probability from the chosen number to a higher one never lowers the expectation
    up = dict(probabilities)
    up[str(chosen)] /= 2
    up["9"] = up.get("9", 0.0) + probabilities[str(chosen)] / 2
    moved = read_score([TokenChoice(str(chosen), alts(up)), TokenChoice(",")], 0)
    assert moved is not None and moved.expected >= reading.expected - 1e-9
