"""Blind review: the masks drafts wear during judgment and the order each voter sees them in.

Pure: randomness comes in as a ``random.Random``; the same seed and inputs give the same result.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from uuid import UUID

from spacetime.domain import NAME_MAX, BallotLayout, ReviewPlan
from spacetime.errors import CapacityError

ALIAS_PREFIX = "Anonymous"
"""Every alias reads ``Anonymous_<Mask>_<n>``."""

ALIAS_NUMBER_MAX = 99
"""``n`` is drawn from 1..99 and is unique within an epoch, so an epoch holds at most 99 drafts."""

MASKS: tuple[str, ...] = (
    "Philosopher", "Alchemist", "Cartographer", "Astronomer", "Scribe", "Navigator",
    "Archivist", "Oracle", "Wanderer", "Lamplighter", "Weaver", "Mariner",
    "Herald", "Chronicler", "Sculptor", "Gardener", "Falconer", "Locksmith",
    "Beekeeper", "Glassblower", "Clockmaker", "Bellringer", "Ferryman", "Shepherd",
    "Pilgrim", "Hermit", "Minstrel", "Tinker", "Cobbler", "Potter",
)  # fmt: skip
"""The built-in mask words (letters only, so an alias can be parsed back into mask and number)."""

_STEM = 5
"""Two words sharing their first five letters (``Astronom``-er / -y) count as the same word."""

_CONTAIN_MIN = 4
"""A forbidden word shorter than this bans a mask only when equal to it (``Art`` does not ban ``Cartographer``)."""

ALIAS_PATTERN = rf"{ALIAS_PREFIX}_([A-Za-z]+)_(\d+)"
"""The grammar of an alias, capturing its mask and number (the one definition: ballots and memory use it too)."""

ALIAS_RE = re.compile(rf"^{ALIAS_PATTERN}$")
"""Matches an alias and captures its mask and number."""


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.casefold())


def _collides(mask: str, word: str) -> bool:
    m = mask.casefold()
    if m == word:
        return True
    if len(word) >= _CONTAIN_MIN and (word in m or m in word):
        return True
    return len(word) >= _STEM and len(m) >= _STEM and word[:_STEM] == m[:_STEM]


def allowed_masks(forbidden: Iterable[str] = ()) -> tuple[str, ...]:
    """The mask words that cannot leak an author, in the built-in order.

    A mask is dropped when, compared case-insensitively with any word of any ``forbidden`` string (persona names,
    disciplines), it is equal to it, one contains the other (for words of 4+ letters), or both share their first
    five letters (``Astronomer`` vs ``Astronomy``). The rule over-excludes on purpose: a lost mask costs nothing.
    """
    words = {w for f in forbidden for w in _words(f)}
    return tuple(m for m in MASKS if not any(_collides(m, w) for w in words))


def assign_aliases(author_ids: Sequence[UUID], rng: random.Random, *, forbidden: Iterable[str] = ()) -> dict[UUID, str]:
    """Give each draft of this epoch a fresh random alias ``Anonymous_<Mask>_<n>``.

    Guarantees: aliases are unique, at most ``NAME_MAX`` characters, numbers ``n`` in 1..99 are pairwise distinct,
    masks are pairwise distinct while there are enough allowed masks, and no mask collides with a ``forbidden``
    word (see ``allowed_masks``). The aliases drawn depend only on ``rng`` and ``len(author_ids)``, never on who
    the authors are. The result keeps the order of ``author_ids``.

    Raises ``ValueError`` on duplicate ids, ``CapacityError`` when more than 99 drafts are given or every mask
    collides with the roster's names.
    """
    if len(set(author_ids)) != len(author_ids):
        raise ValueError("assign_aliases: duplicate author ids")
    count = len(author_ids)
    if count > ALIAS_NUMBER_MAX:
        raise CapacityError(f"An epoch can judge at most {ALIAS_NUMBER_MAX} drafts, got {count}: shrink the roster.")
    masks = allowed_masks(forbidden)
    if count and not masks:
        raise CapacityError(
            "Every built-in alias mask collides with a persona name or discipline; rename a persona so drafts can "
            "be masked."
        )
    numbers = rng.sample(range(1, ALIAS_NUMBER_MAX + 1), count)
    # distinct masks while they last (easier for a judge to keep apart); numbers keep aliases unique regardless
    chosen = rng.sample(masks, count) if count <= len(masks) else [rng.choice(masks) for _ in range(count)]
    aliases = [f"{ALIAS_PREFIX}_{mask}_{n}" for mask, n in zip(chosen, numbers, strict=True)]
    assert all(len(a) <= NAME_MAX for a in aliases)
    return dict(zip(author_ids, aliases, strict=True))


def review_orders(
    voter_ids: Sequence[UUID], aliases: Mapping[UUID, str], rng: random.Random
) -> dict[UUID, tuple[str, ...]]:
    """For each voter, the aliases of every draft except its own, in an order shuffled for that voter alone.

    Guarantees: a voter never sees its own draft; a voter without a draft (its burst call forfeited) sees all
    drafts; every other draft appears exactly once. Orders are drawn independently per voter, in the order of
    ``voter_ids``, because judges favour the answer shown first. Raises ``ValueError`` on duplicate voters.
    """
    if len(set(voter_ids)) != len(voter_ids):
        raise ValueError("review_orders: duplicate voter ids")
    orders: dict[UUID, tuple[str, ...]] = {}
    for voter in voter_ids:
        shown = [alias for author, alias in aliases.items() if author != voter]
        rng.shuffle(shown)
        orders[voter] = tuple(shown)
    return orders


SHARED_ROWS = 2
"""The shared layout's orders per epoch: a random order of every draft and its reverse."""


def shared_orders(
    voter_ids: Sequence[UUID], aliases: Mapping[UUID, str], rng: random.Random
) -> dict[UUID, ReviewPlan]:
    """Every voter is shown every draft, in one of two orders: a random order of all drafts, or its reverse.

    Guarantees: the two orders are used by ⌈V/2⌉ and ⌊V/2⌋ voters (which order gets the extra voter is drawn), so
    each draft's display positions over the voters average (D + 1) / 2 exactly when V is even and within
    (D − 1) / (2V) of it when V is odd, and the first-shown and last-shown places go to the same two drafts, half
    the voters each. Voters take the orders in contiguous blocks of ``voter_ids`` (the first block, then the
    second), so a backend that serves calls one after the other sees equal prefixes back to back. A voter's own
    draft is in its order (``ReviewPlan.own``) but never scored; a voter without a draft scores them all. Raises
    ``ValueError`` on duplicate voters.
    """
    if len(set(voter_ids)) != len(voter_ids):
        raise ValueError("shared_orders: duplicate voter ids")
    base = list(aliases.values())
    rng.shuffle(base)
    rows = (tuple(base), tuple(reversed(base)))
    first = rng.randrange(SHARED_ROWS)
    count = len(voter_ids)
    plans: dict[UUID, ReviewPlan] = {}
    for i, voter in enumerate(voter_ids):
        row = (first + (i * SHARED_ROWS) // max(count, 1)) % SHARED_ROWS
        plans[voter] = ReviewPlan(shown=rows[row], own=aliases.get(voter))
    return plans


def review_plans(
    voter_ids: Sequence[UUID], aliases: Mapping[UUID, str], rng: random.Random, layout: BallotLayout
) -> dict[UUID, ReviewPlan]:
    """Each voter's ``ReviewPlan`` under ``layout``: ``shared_orders`` or ``review_orders`` (per-voter shuffles)."""
    if layout is BallotLayout.SHARED:
        return shared_orders(voter_ids, aliases, rng)
    return {voter: ReviewPlan(shown=order) for voter, order in review_orders(voter_ids, aliases, rng).items()}
