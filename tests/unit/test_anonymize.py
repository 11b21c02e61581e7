"""Blind review: aliases never leak an author, every voter sees every other draft once, in its own order."""

from __future__ import annotations

import random
import re
from collections import Counter
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacetime.domain import NAME_MAX, BallotLayout
from spacetime.errors import CapacityError
from spacetime.rules.anonymize import (
    ALIAS_RE,
    MASKS,
    allowed_masks,
    assign_aliases,
    review_orders,
    review_plans,
    shared_orders,
)

ALIAS_FORMAT = re.compile(r"^Anonymous_([A-Z][a-z]+)_([1-9][0-9]?)$")


def ids(n: int) -> list[UUID]:
    return [uuid4() for _ in range(n)]


def mask_of(alias: str) -> str:
    m = ALIAS_RE.match(alias)
    assert m is not None, alias
    return m.group(1)


def test_about_thirty_letter_only_masks() -> None:
    assert 25 <= len(MASKS) <= 40
    assert len(set(MASKS)) == len(MASKS)
    assert all(m.isalpha() and m[0].isupper() for m in MASKS)
    assert "Philosopher" in MASKS


@settings(max_examples=60, deadline=None)
@given(count=st.integers(0, 99), seed=st.integers())
def test_aliases_are_well_formed_and_unique(count: int, seed: int) -> None:
    authors = ids(count)
    aliases = assign_aliases(authors, random.Random(seed))
    assert list(aliases) == authors
    values = list(aliases.values())
    assert len(set(values)) == count
    numbers = set()
    for alias in values:
        m = ALIAS_FORMAT.match(alias)
        assert m, alias
        assert m.group(1) in MASKS
        assert 1 <= int(m.group(2)) <= 99
        assert len(alias) <= NAME_MAX
        numbers.add(m.group(2))
    assert len(numbers) == count  # numbers are distinct too, so an alias's number alone identifies it
    if count <= len(MASKS):
        assert len({mask_of(a) for a in values}) == count


def test_forbidden_roster_words_never_become_masks() -> None:
    roster = ["Physicist", "Physics", "Philosopher", "Philosophy", "Astronomy", "The Alchemist", "Navigation"]
    for seed in range(200):
        aliases = assign_aliases(ids(7), random.Random(seed), forbidden=roster)
        masks = {mask_of(a) for a in aliases.values()}
        assert not masks & {"Philosopher", "Astronomer", "Alchemist", "Navigator"}


def test_forbidden_matching_rules() -> None:
    allowed = set(allowed_masks(["scribe"]))  # case-insensitive equality
    assert "Scribe" not in allowed and "Oracle" in allowed
    assert "Astronomer" not in allowed_masks(["Radio astronomy"])  # shared 5-letter stem, inside a phrase
    assert "Gardener" not in allowed_masks(["Garden"])  # containment
    assert "Cartographer" in allowed_masks(["Art"])  # short words ban only by equality
    assert set(allowed_masks()) == set(MASKS)


@settings(max_examples=60, deadline=None)
@given(forbidden=st.lists(st.sampled_from(MASKS), max_size=20), seed=st.integers(), count=st.integers(1, 9))
def test_no_alias_contains_a_forbidden_word(forbidden: list[str], seed: int, count: int) -> None:
    variants = [w.lower() for w in forbidden] + [w.upper() + "Y" for w in forbidden[:3]]
    aliases = assign_aliases(ids(count), random.Random(seed), forbidden=variants)
    for alias in aliases.values():
        for word in forbidden:
            assert word.lower() not in alias.lower()


def test_aliases_depend_only_on_rng_and_count() -> None:
    a = assign_aliases(ids(6), random.Random(42))
    b = assign_aliases(ids(6), random.Random(42))
    assert list(a.values()) == list(b.values())
    assert a != b  # different authors, same masks in the same positions
    assert list(assign_aliases(ids(6), random.Random(43)).values()) != list(a.values())


def test_mapping_is_a_random_permutation() -> None:
    author = uuid4()
    first_masks = Counter(mask_of(assign_aliases([author, uuid4()], random.Random(s))[author]) for s in range(600))
    assert set(first_masks) == set(MASKS)  # every mask reachable for any author
    assert max(first_masks.values()) < 60  # roughly uniform (expected 20 each)


def test_assign_aliases_errors() -> None:
    a = uuid4()
    with pytest.raises(ValueError):
        assign_aliases([a, a], random.Random(0))
    with pytest.raises(CapacityError):
        assign_aliases(ids(100), random.Random(0))
    with pytest.raises(CapacityError):
        assign_aliases(ids(2), random.Random(0), forbidden=MASKS)
    assert assign_aliases([], random.Random(0), forbidden=MASKS) == {}


def test_more_drafts_than_masks_still_unique() -> None:
    aliases = assign_aliases(ids(40), random.Random(1), forbidden=MASKS[:25])
    values = list(aliases.values())
    assert len(set(values)) == 40
    assert {mask_of(v) for v in values} <= set(MASKS[25:])


@settings(max_examples=60, deadline=None)
@given(drafters=st.integers(0, 9), extra_voters=st.integers(0, 3), seed=st.integers())
def test_every_voter_sees_every_other_draft_once(drafters: int, extra_voters: int, seed: int) -> None:
    authors = ids(drafters)
    aliases = assign_aliases(authors, random.Random(seed))
    voters = authors + ids(extra_voters)  # extra voters forfeited their draft but still judge
    orders = review_orders(voters, aliases, random.Random(seed))
    assert list(orders) == voters
    for voter, order in orders.items():
        assert aliases.get(voter) not in order
        expected = sorted(alias for author, alias in aliases.items() if author != voter)
        assert sorted(order) == expected
        assert len(order) == len(set(order))


def test_orders_are_shuffled_per_voter_and_reproducible() -> None:
    authors = ids(6)
    aliases = assign_aliases(authors, random.Random(0))
    a = review_orders(authors, aliases, random.Random(7))
    assert a == review_orders(authors, aliases, random.Random(7))
    voter = uuid4()  # a voter without a draft sees all six: compare those orders across seeds
    firsts = Counter(review_orders([voter], aliases, random.Random(s))[voter][0] for s in range(3000))
    assert set(firsts) == set(aliases.values())
    assert all(380 < n < 620 for n in firsts.values())  # first place spread evenly (expected 500)
    orders = {review_orders([voter, uuid4()], aliases, random.Random(s))[voter] for s in range(50)}
    assert len(orders) > 40


def test_review_orders_rejects_duplicate_voters() -> None:
    a = uuid4()
    with pytest.raises(ValueError):
        review_orders([a, a], {}, random.Random(0))


@settings(max_examples=80, deadline=None)
@given(drafters=st.integers(0, 12), extra_voters=st.integers(0, 3), seed=st.integers())
def test_shared_layout_shows_every_draft_in_two_reversed_orders(drafters: int, extra_voters: int, seed: int) -> None:
    authors = ids(drafters)
    aliases = assign_aliases(authors, random.Random(seed))
    voters = authors + ids(extra_voters)  # extra voters forfeited their draft but still judge
    plans = shared_orders(voters, aliases, random.Random(seed))
    assert list(plans) == voters
    rows = list(dict.fromkeys(p.shown for p in plans.values()))
    assert all(sorted(row) == sorted(aliases.values()) for row in rows)  # every draft, once
    if drafters > 1 and len(voters) > 1:
        assert len(rows) == 2 and rows[0] == tuple(reversed(rows[1]))
    for voter, plan in plans.items():
        assert plan.own == aliases.get(voter)  # the voter's own draft is shown, named, never scored
        assert plan.own not in plan.scored
        assert sorted(plan.scored) == sorted(a for author, a in aliases.items() if author != voter)
        assert [plan.position(a) for a in plan.shown] == list(range(1, drafters + 1))
    # contiguous blocks of voters per order, sizes ⌈V/2⌉ and ⌊V/2⌋
    shown = [plans[v].shown for v in voters]
    changes = sum(1 for a, b in zip(shown, shown[1:], strict=False) if a != b)
    assert changes <= 1
    sizes = sorted(Counter(shown).values()) or [0]
    assert sizes[-1] - sizes[0] <= 1 and sum(sizes) == len(voters)


@settings(max_examples=60, deadline=None)
@given(drafters=st.integers(2, 12), voters_half=st.integers(1, 8), seed=st.integers())
def test_shared_layout_balances_every_drafts_mean_position(drafters: int, voters_half: int, seed: int) -> None:
    """With an even number of voters every draft's mean display position is (D + 1) / 2 exactly; with an odd
    number it is within (D − 1) / (2V) of it."""
    authors = ids(drafters)
    aliases = assign_aliases(authors, random.Random(seed))
    for count in (2 * voters_half, 2 * voters_half + 1):
        voters = (authors + ids(count))[:count]
        plans = shared_orders(voters, aliases, random.Random(seed))
        centre = (drafters + 1) / 2
        for alias in aliases.values():
            mean = sum(p.position(alias) for p in plans.values()) / count
            bound = 0.0 if count % 2 == 0 else (drafters - 1) / (2 * count)
            assert abs(mean - centre) <= bound + 1e-9


def test_shared_layout_is_reproducible_and_its_order_random() -> None:
    authors = ids(6)
    aliases = assign_aliases(authors, random.Random(0))
    assert shared_orders(authors, aliases, random.Random(3)) == shared_orders(authors, aliases, random.Random(3))
    firsts = Counter(shared_orders(authors, aliases, random.Random(s))[authors[0]].shown[0] for s in range(3000))
    assert set(firsts) == set(aliases.values())
    assert all(380 < n < 620 for n in firsts.values())  # first place spread evenly (expected 500)
    with pytest.raises(ValueError):
        shared_orders([authors[0], authors[0]], aliases, random.Random(0))


def test_review_plans_dispatch_on_the_layout() -> None:
    authors = ids(5)
    aliases = assign_aliases(authors, random.Random(0))
    shuffled = review_plans(authors, aliases, random.Random(1), BallotLayout.SHUFFLED)
    assert all(p.own is None and aliases[v] not in p.shown and p.scored == p.shown for v, p in shuffled.items())
    shared = review_plans(authors, aliases, random.Random(1), BallotLayout.SHARED)
    assert all(p.own == aliases[v] and len(p.shown) == 5 for v, p in shared.items())


def test_the_layout_is_a_book_key_shared_by_default_and_round_tripped() -> None:
    from spacetime.book import parse_book
    from spacetime.errors import ConfigError

    assert parse_book({}).ballot_layout is BallotLayout.SHARED
    chosen = parse_book({"ballot_layout": "shuffled"})
    assert chosen.ballot_layout is BallotLayout.SHUFFLED
    assert parse_book(chosen.to_json()).ballot_layout is BallotLayout.SHUFFLED  # what a resume reads back
    with pytest.raises(ConfigError, match=r"ballot_layout must be shared or shuffled, not 'forward'") as err:
        parse_book({"ballot_layout": "forward"}, where="b.toml")
    assert "\n" not in str(err.value) and str(err.value).startswith("b.toml: ")
    with pytest.raises(ConfigError, match="ballot_layout must be shared or shuffled"):
        parse_book({"ballot_layout": ["shared"]})
