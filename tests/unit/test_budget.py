"""Context-window budgeting: drafts share one fair cap, short drafts stay whole, the total fits."""

from __future__ import annotations

from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacetime.errors import CapacityError
from spacetime.rules.budget import (
    EXCERPT_MARKER,
    MIN_EXCERPT_TOKENS,
    REPLY_OVERHEAD_TOKENS,
    REPLY_TOKENS_PER_ITEM,
    ballot_reply_tokens,
    drafts_budget,
    excerpt,
    fair_cap,
    fit_drafts,
)


def count_words(text: str) -> int:
    return len(text.split())


def keep_words(text: str, n: int) -> str:
    return " ".join(text.split()[:n])


def test_reply_budget() -> None:
    assert ballot_reply_tokens(0) == REPLY_OVERHEAD_TOKENS
    assert ballot_reply_tokens(5) == REPLY_OVERHEAD_TOKENS + 5 * REPLY_TOKENS_PER_ITEM
    assert REPLY_TOKENS_PER_ITEM >= 80
    with pytest.raises(ValueError):
        ballot_reply_tokens(-1)


def test_drafts_budget() -> None:
    assert drafts_budget(8192, 600, 532) == 7060
    with pytest.raises(CapacityError, match="context window"):
        drafts_budget(1000, 600, 400)


def test_everything_fits_whole() -> None:
    assert fit_drafts([], 0) is None
    assert fit_drafts([100, 200], 300) is None


def test_six_drafts_of_2048_in_an_8192_window() -> None:
    available = drafts_budget(8192, 600, ballot_reply_tokens(5))
    assert fit_drafts([2048] * 5, available) == available // 5  # a voter reviews the five others
    lengths = {uuid4(): 2048 for _ in range(6)}
    drafters = list(lengths)
    assert fair_cap(lengths, drafters, available) == available // 5
    assert fair_cap(lengths, [*drafters, uuid4()], available) == available // 6  # a voter without a draft sees six


def test_short_drafts_stay_whole_and_free_room_for_long_ones() -> None:
    cap = fit_drafts([100, 5000, 5000], 4100)
    assert cap == 2000
    assert min(100, cap) == 100


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(0, 5000), max_size=12), available=st.integers(0, 20000))
def test_fair_cap_is_the_largest_equal_cap_that_fits(lengths: list[int], available: int) -> None:
    cap = fit_drafts(lengths, available, min_tokens=0)
    if cap is None:
        assert sum(lengths) <= available
        return
    assert sum(min(n, cap) for n in lengths) <= available
    assert sum(min(n, cap + 1) for n in lengths) > available
    assert cap < max(lengths)  # somebody is actually cut


@settings(max_examples=100, deadline=None)
@given(lengths=st.lists(st.integers(0, 5000), min_size=1, max_size=12), available=st.integers(0, 20000))
def test_min_tokens_refuses_useless_excerpts(lengths: list[int], available: int) -> None:
    try:
        cap = fit_drafts(lengths, available)
    except CapacityError as err:
        assert "larger context window" in str(err)
        assert fit_drafts(lengths, available, min_tokens=0) < MIN_EXCERPT_TOKENS  # type: ignore[operator]
        return
    assert cap is None or cap >= MIN_EXCERPT_TOKENS


def test_fit_drafts_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        fit_drafts([-1], 10)
    with pytest.raises(ValueError):
        fit_drafts([1], -1)


@settings(max_examples=100, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 3000), min_size=1, max_size=8),
    forfeits=st.integers(0, 2),
    available=st.integers(500, 12000),
)
def test_fair_cap_fits_every_voters_review_set(lengths: list[int], forfeits: int, available: int) -> None:
    by_author = {uuid4(): n for n in lengths}
    voters = [*by_author, *(uuid4() for _ in range(forfeits))]
    try:
        cap = fair_cap(by_author, voters, available, min_tokens=1)
    except CapacityError:
        return
    for voter in voters:
        shown = [n for author, n in by_author.items() if author != voter]
        capped = shown if cap is None else [min(n, cap) for n in shown]
        assert sum(capped) <= available


def test_excerpt_keeps_short_texts_and_marks_cut_ones() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    assert excerpt(text, None, count_tokens=count_words, truncate=keep_words) == (text, False)
    assert excerpt(text, 100, count_tokens=count_words, truncate=keep_words) == (text, False)
    cut, excerpted = excerpt(text, 40, count_tokens=count_words, truncate=keep_words)
    assert excerpted
    assert cut.endswith(EXCERPT_MARKER)
    assert cut.startswith("w0 w1")
    assert count_words(cut) == 40
    tiny, excerpted = excerpt(text, 5, count_tokens=count_words, truncate=keep_words)
    assert excerpted and tiny == "w0 w1 w2 w3 w4"  # the marker alone would not fit: cut unmarked


@settings(max_examples=100, deadline=None)
@given(words=st.integers(0, 300), cap=st.integers(1, 300))
def test_excerpt_never_exceeds_the_cap(words: int, cap: int) -> None:
    text = " ".join("x" for _ in range(words))
    cut, excerpted = excerpt(text, cap, count_tokens=count_words, truncate=keep_words)
    assert count_words(cut) <= cap
    assert excerpted == (words > cap)
