"""Context-window budgeting for the ballot prompt.

A voter reviews every other draft in one call. When the judge model's window is small (say 8192 tokens) the drafts
may not all fit whole; then every draft is cut to the same *fair cap* (drafts shorter than the cap stay whole) and
the voter is told it reads an excerpt. Pure: tokenizers come in as callables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from uuid import UUID

from spacetime.errors import CapacityError

MIN_EXCERPT_TOKENS = 32
"""Below this many tokens per draft an excerpt says too little to judge: the budget is refused instead."""

REPLY_TOKENS_PER_ITEM = 100
"""Reply budget per reviewed draft: the alias key, the score and a rationale of at most ~300 characters."""

REPLY_OVERHEAD_TOKENS = 32
"""Reply budget for the JSON braces and a little slack."""

EXCERPT_MARKER = "\n[… excerpt: the rest of this draft was cut to fit the review window]"
"""Appended to a cut draft so the judge knows it reads an excerpt (which is not the author's fault)."""


def ballot_reply_tokens(n_items: int) -> int:
    """Tokens to reserve for a ballot reply scoring ``n_items`` drafts: ``32 + 100 · n_items``."""
    if n_items < 0:
        raise ValueError("ballot_reply_tokens: n_items must be >= 0")
    return REPLY_OVERHEAD_TOKENS + REPLY_TOKENS_PER_ITEM * n_items


def drafts_budget(context_window: int, fixed_prompt_tokens: int, reply_tokens: int) -> int:
    """Tokens left for the draft texts of one ballot prompt.

    ``fixed_prompt_tokens`` is the prompt rendered with empty draft texts (system prompt, rubric, alias headers,
    spotlight delimiters, excerpt markers); ``reply_tokens`` usually ``ballot_reply_tokens(n)``. Raises
    ``CapacityError`` when nothing is left.
    """
    available = context_window - fixed_prompt_tokens - reply_tokens
    if available <= 0:
        raise CapacityError(
            f"The judge model's context window ({context_window} tokens) cannot hold the ballot prompt "
            f"({fixed_prompt_tokens} tokens) and its reply ({reply_tokens} tokens): use a model with a larger window."
        )
    return available


def fit_drafts(lengths: Sequence[int], available: int, *, min_tokens: int = MIN_EXCERPT_TOKENS) -> int | None:
    """The fair cap: the largest equal per-draft token cap under which the drafts fit in ``available`` tokens.

    Returns ``None`` when every draft fits whole. Otherwise returns ``cap`` such that
    ``sum(min(l, cap) for l in lengths) <= available`` and ``cap + 1`` would not fit ("water filling": short drafts
    stay whole, every longer draft is cut to the same cap). Raises ``CapacityError`` when ``cap < min_tokens``.
    """
    if any(length < 0 for length in lengths):
        raise ValueError("fit_drafts: token lengths must be >= 0")
    if available < 0:
        raise ValueError("fit_drafts: available must be >= 0")
    if sum(lengths) <= available:
        return None
    remaining = available
    ordered = sorted(lengths)
    for i, length in enumerate(ordered):
        left = len(ordered) - i
        if length * left > remaining:
            cap = remaining // left
            break
        remaining -= length
    else:  # pragma: no cover - unreachable: the sum did not fit
        raise AssertionError("fit_drafts: water filling ran out")
    if cap < min_tokens:
        raise CapacityError(
            f"The judge model's window leaves {available} tokens for {len(lengths)} drafts: under {min_tokens} "
            "tokens each. Use a judge model with a larger context window, a smaller roster or a lower draft token cap."
        )
    return cap


def fair_cap(
    lengths: Mapping[UUID, int],
    voter_ids: Sequence[UUID],
    available: int,
    *,
    min_tokens: int = MIN_EXCERPT_TOKENS,
    shown_own: bool = False,
) -> int | None:
    """One cap for the whole epoch, so that a draft is cut the same way in every ballot.

    ``lengths`` maps author id → draft length in tokens. Each voter is shown every draft but its own (a voter
    without a draft is shown them all), or every draft when ``shown_own`` (the shared layout); the result is the
    smallest ``fit_drafts`` cap over the voters' review sets, so every voter's set fits in ``available``. ``None``
    when every set fits whole. Raises ``CapacityError`` as ``fit_drafts`` does.
    """
    caps = [
        fit_drafts([n for author, n in lengths.items() if shown_own or author != voter], available,
                   min_tokens=min_tokens)
        for voter in voter_ids
    ]
    numeric = [c for c in caps if c is not None]
    return min(numeric) if numeric else None


def excerpt(
    text: str,
    cap: int | None,
    *,
    count_tokens: Callable[[str], int],
    truncate: Callable[[str, int], str],
    marker: str = EXCERPT_MARKER,
) -> tuple[str, bool]:
    """Cut ``text`` to about ``cap`` tokens, marking the cut; returns ``(text, excerpted)``.

    ``count_tokens(text)`` counts tokens and ``truncate(text, n)`` keeps the first ``n`` tokens, both with the judge
    model's tokenizer. A text of at most ``cap`` tokens (or ``cap is None``) comes back unchanged with ``False``.
    Otherwise the result is the first ``cap - count_tokens(marker)`` tokens plus ``marker`` (or just ``cap``
    tokens, unmarked, if the marker alone would not fit); its token count is ``cap`` give or take a token at the
    seam, as tokenizers are not exactly additive.
    """
    if cap is None or count_tokens(text) <= cap:
        return text, False
    body = cap - count_tokens(marker)
    if body < 1:
        return truncate(text, cap), True
    return truncate(text, body).rstrip() + marker, True
