"""Scores read from the judge's own uncertainty (G-Eval): the probability-weighted mean of the score tokens.

A small model asked for an integer 1–10 often writes the same integer for every draft (SmolLM2-135M wrote 1 for all
of them), yet the probabilities it gave the other numbers at that point still tell the drafts apart. Where the
backend returns log-probabilities (the embedded llama.cpp model always; OpenAI-compatible servers when asked, see
``top_logprobs``), each ballot entry's score is also read as

    E[score] = Σ v · p(v) / Σ p(v)      over the number tokens v ∈ 1..10 the model weighed at the score's place

(Liu et al. 2023, "G-Eval"). The integer stays the spec's ``insight_score``; the expectation is recorded beside it
(``Vote.expected_score``) and is what the verdict ranks when present.

Two-digit 10. Tokenizers that split digits write 10 as ``1`` then ``0``. When the voter wrote ``1``, the
probability of ``0`` at the next step splits the ``1`` mass between 1 and 10; when it wrote another number, the
``1`` alternative is read as the end of the scale nearer that number (1 for a given score ≤ 5, 10 above): a judge's
score distribution is unimodal in practice, and the next-step probability of the path not taken is not known.

Pure: token texts and log-probabilities in, numbers out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from spacetime.domain import TokenChoice

SCORE_MIN = 1
SCORE_MAX = 10
_NUMBER_TOKEN = re.compile(r"[\s:]*(\d{1,2})")
_KEY = re.compile(r'"((?:[^"\\]|\\.){1,120})"\s*:\s*\{')
_SCORE = re.compile(r'"insight_score"\s*:\s*(\d{1,2})(?!\d)')


@dataclass(frozen=True, slots=True)
class ScoreReading:
    """What the tokens say about one ballot entry."""

    given: int
    """The integer the voter wrote (read from the tokens, for a consistency check against the parsed ballot)."""
    expected: float
    """The probability-weighted mean score, in ``[1, 10]``."""
    mass: float
    """Total probability of the number tokens weighed (how much of the model's choice they cover), in ``(0, 1]``."""


def number_value(token: str) -> int | None:
    """The number a token writes (``"7"``, ``" 7"``, ``": 10"``), or ``None``."""
    match = _NUMBER_TOKEN.fullmatch(token)
    return int(match.group(1)) if match else None


def _probabilities(alternatives: Sequence[tuple[str, float]]) -> dict[int, float]:
    out: dict[int, float] = {}
    for text, logprob in alternatives:
        value = number_value(text)
        if value is not None and math.isfinite(logprob):
            out[value] = out.get(value, 0.0) + math.exp(min(logprob, 0.0))
    return out


def read_score(tokens: Sequence[TokenChoice], index: int) -> ScoreReading | None:
    """The reading of the score whose first token is ``tokens[index]`` (``None`` without usable alternatives)."""
    first = tokens[index]
    lead = number_value(first.text)
    if lead is None or not first.alternatives:
        return None
    after = tokens[index + 1] if index + 1 < len(tokens) else None
    ten_path = lead == 1 and after is not None and after.text.startswith("0")
    given = 10 if ten_path else lead
    if not SCORE_MIN <= given <= SCORE_MAX:
        return None
    if lead == 1 and after is not None and after.alternatives:
        q0 = _probabilities(after.alternatives).get(0, 0.0)
        q0 = min(max(q0, 0.0), 1.0)
    elif lead == 1:
        q0 = 1.0 if ten_path else 0.0
    else:
        q0 = 0.0 if given <= 5 else 1.0  # the "1" not taken: the end of the scale nearer the given score
    weights: dict[int, float] = {}
    for value, p in _probabilities(first.alternatives).items():
        if value == 1:
            weights[1] = weights.get(1, 0.0) + p * (1.0 - q0)
            weights[10] = weights.get(10, 0.0) + p * q0
        elif SCORE_MIN <= value <= SCORE_MAX:
            weights[value] = weights.get(value, 0.0) + p
    mass = sum(weights.values())
    if mass <= 0.0:
        return None
    expected = sum(v * p for v, p in weights.items()) / mass
    return ScoreReading(given, min(max(expected, float(SCORE_MIN)), float(SCORE_MAX)), min(mass, 1.0))


def score_readings(tokens: Sequence[TokenChoice], aliases: Sequence[str]) -> dict[str, ScoreReading]:
    """Alias → the reading of its ``insight_score`` in a JSON ballot written token by token.

    The ballot is located in the tokens' own text: each ``"insight_score": <n>`` belongs to the nearest expected
    alias key (``"<alias>": {``) before it; a score whose key is not an expected alias, or whose number does not
    start a token, is skipped. The first reading of an alias wins."""
    if not tokens or not aliases:
        return {}
    starts: list[int] = []
    parts: list[str] = []
    offset = 0
    for token in tokens:
        starts.append(offset)
        parts.append(token.text)
        offset += len(token.text)
    text = "".join(parts)
    expected = set(aliases)
    keys = [(m.start(), m.group(1)) for m in _KEY.finditer(text) if m.group(1) in expected]
    out: dict[str, ScoreReading] = {}
    for match in _SCORE.finditer(text):
        owner = next((alias for start, alias in reversed(keys) if start < match.start()), None)
        if owner is None or owner in out:
            continue
        index = _token_at(starts, match.start(1))
        if number_value(tokens[index].text) is None:  # the number shares a token with other text: unreadable
            continue
        reading = read_score(tokens, index)
        if reading is not None:
            out[owner] = reading
    return out


def _token_at(starts: Sequence[int], char: int) -> int:
    """Index of the token covering character ``char`` (``starts`` ascending, from 0)."""
    low, high = 0, len(starts) - 1
    while low < high:
        mid = (low + high + 1) // 2
        if starts[mid] <= char:
            low = mid
        else:
            high = mid - 1
    return low
