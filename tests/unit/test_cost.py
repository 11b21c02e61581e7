"""Tokens and cost (``spacetime.rules.cost``): usage adds up, cost is never negative and grows with tokens, a budget
stops a book exactly at the first epoch boundary where its spending has reached it (never without a budget), and the
book file's ``[endpoints.NAME.price]`` / ``[budget]`` are read or refused with one line naming the key."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spacetime.book import parse_book
from spacetime.domain import Budget, CallKind, Completion, FinishReason, Price, Usage, UsageLine
from spacetime.errors import ConfigError
from spacetime.rules.cost import (
    BudgetLimit,
    Spend,
    budget_line,
    budget_stop,
    by_kind,
    cost,
    dollars,
    merged,
    spend,
    total,
    usage_text,
)

counts = st.integers(min_value=0, max_value=10**9)
money = st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False)


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    prompt = draw(counts)
    return Usage(draw(st.integers(0, 10**6)), prompt, draw(st.integers(0, prompt)), draw(counts))


@st.composite
def prices(draw: st.DrawFn) -> Price:
    return Price(draw(money), draw(money), draw(st.none() | money))


lines = st.builds(UsageLine, st.sampled_from(list(CallKind)), st.sampled_from(["a", "b", "embedded"]), usages())


def test_usage_of_a_completion_and_its_sums() -> None:
    done = Completion("x", FinishReason.STOP, 120, 30, 0.1, cached_tokens=100)
    assert Usage.of(done) == Usage(1, 120, 100, 30)
    assert Usage.of(Completion("x", FinishReason.STOP, 10, 3, 0.1, cached_tokens=50)).cached_tokens == 10  # capped
    assert Usage(1, 10, 5, 2) + Usage(2, 5, 0, 1) == Usage(3, 15, 5, 3)
    assert Usage(1, 10, 4, 2).total_tokens == 12 and Usage(1, 10, 4, 2).uncached_tokens == 6
    with pytest.raises(ValueError, match="never negative"):
        Usage(prompt_tokens=-1)


def test_cost_per_million_with_the_cached_price() -> None:
    usage = Usage(3, 2_000_000, 1_000_000, 500_000)
    assert cost(usage, Price(input=0.15, output=0.6, cached_input=0.075)) == pytest.approx(0.15 + 0.075 + 0.3)
    assert cost(usage, Price(input=0.15, output=0.6)) == pytest.approx(0.3 + 0.3)  # cached at the input price
    assert cost(Usage(), Price(1.0, 1.0)) == 0.0


def test_spend_prices_only_the_priced_endpoints() -> None:
    found = [UsageLine(CallKind.DRAFT, "vllm", Usage(1, 1_000_000, 0, 0)),
             UsageLine(CallKind.EMBEDDING, "embedded", Usage(1, 500, 0, 0))]  # fmt: skip
    spent = spend(found, {"vllm": Price(input=2.0, output=0.0)})
    assert spent.usage == Usage(2, 1_000_500, 0, 0) and spent.cost == pytest.approx(2.0)
    assert spend(found, {}).cost is None  # nothing priced: no cost at all, not $0
    assert spend([], {"vllm": Price(1.0, 1.0)}) == Spend(Usage(), None)


def test_merged_and_by_kind() -> None:
    a = UsageLine(CallKind.BALLOT, "x", Usage(1, 10, 0, 1))
    b = UsageLine(CallKind.DRAFT, "y", Usage(1, 20, 5, 2))
    c = UsageLine(CallKind.DRAFT, "x", Usage(2, 30, 0, 3))
    assert merged([a, b, c, b]) == (
        UsageLine(CallKind.DRAFT, "x", Usage(2, 30, 0, 3)),
        UsageLine(CallKind.DRAFT, "y", Usage(2, 40, 10, 4)),
        a,
    )
    assert by_kind([a, b, c]) == {CallKind.DRAFT: Usage(3, 50, 5, 5), CallKind.BALLOT: Usage(1, 10, 0, 1)}


@settings(max_examples=200, deadline=None)
@given(st.lists(lines, max_size=12))
def test_totals_do_not_depend_on_grouping(found: list[UsageLine]) -> None:
    assert total(merged(found)) == total(found)
    assert sum(by_kind(found).values(), Usage()) == total(found)


@settings(max_examples=300, deadline=None)
@given(usages(), usages(), prices())
def test_cost_is_never_negative_and_grows_with_tokens(a: Usage, more: Usage, price: Price) -> None:
    assert cost(a, price) >= 0
    assert cost(a + more, price) >= cost(a, price) - 1e-9
    assert cost(a + more, price) == pytest.approx(cost(a, price) + cost(more, price), rel=1e-9, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=30), st.integers(1, 100_000))
def test_a_token_budget_stops_exactly_at_the_first_boundary_reached(epochs: list[int], limit: int) -> None:
    """A book plays while what its stored epochs used is below the limit: the first epoch boundary at which the
    running total has reached it is where it stops, and never earlier."""
    budget = Budget(max_tokens_total=limit)
    played, spent = 0, Usage()
    for tokens in epochs:
        stop = budget_stop(budget, Spend(spent, None))
        if stop is not None:
            assert stop.limit is BudgetLimit.TOKENS and stop.spent >= limit and stop.allowed == limit
            break
        spent += Usage(1, tokens, 0, 0)
        played += 1
    totals = [sum(epochs[:i]) for i in range(len(epochs) + 1)]
    first = next((i for i, t in enumerate(totals) if t >= limit), None)
    assert played == (len(epochs) if first is None or first >= len(epochs) else first)


@settings(max_examples=200, deadline=None)
@given(usages(), st.none() | money)
def test_no_budget_never_stops(used: Usage, dollars_spent: float | None) -> None:
    assert budget_stop(None, Spend(used, dollars_spent)) is None
    assert budget_stop(Budget(), Spend(used, dollars_spent)) is None


def test_a_cost_budget_and_its_line() -> None:
    budget = Budget(max_cost=10.0)
    assert budget_stop(budget, Spend(Usage(1, 10, 0, 0), 9.99)) is None
    assert budget_stop(budget, Spend(Usage(1, 10, 0, 0), None)) is None  # nothing priced spent: nothing counted
    stop = budget_stop(budget, Spend(Usage(1, 10, 0, 0), 12.345))
    assert stop is not None and stop.limit is BudgetLimit.COST
    assert budget_line("x", stop, 7) == 'book "x": cost budget reached ($12.35 of $10.00) after epoch 7'
    tokens = budget_stop(Budget(1_000_000, 1.0), Spend(Usage(9, 1_234_000, 0, 567), 5.0))
    assert tokens is not None and tokens.limit is BudgetLimit.TOKENS  # the token limit is looked at first
    assert budget_line("x", tokens, 7) == 'book "x": token budget reached (1,234,567 of 1,000,000 tokens) after epoch 7'


def test_money_and_usage_text() -> None:
    assert (dollars(0), dollars(0.0042), dollars(1234.5)) == ("$0.00", "$0.0042", "$1,234.50")
    spent = Spend(Usage(14, 12_000, 3_000, 345), 0.0123)
    assert usage_text(spent) == "12,345 tokens (3,000 cached) in 14 call(s), $0.01"
    assert usage_text(Spend(Usage(2, 10, 0, 5), None)) == "15 tokens in 2 call(s)"


# --------------------------------------------------------------------------- the book file
VLLM = {"kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}


def test_prices_and_budget_are_read_and_stored() -> None:
    config = parse_book({
        "model": "vllm",
        "endpoints": {"vllm": {**VLLM, "price": {"input": 0.15, "cached_input": 0.075, "output": 0.6}},
                      "embedded": {"price": {"input": 0.01}}},
        "budget": {"max_tokens_total": 1_000_000, "max_cost": 2},
    })  # fmt: skip
    assert config.prices == {"vllm": Price(0.15, 0.6, 0.075), "embedded": Price(0.01, 0.0)}
    assert config.budget == Budget(1_000_000, 2.0)
    assert "price" not in str(config.endpoints["vllm"])  # a price is not part of the endpoint's identity
    again = parse_book(config.to_json())  # the stored settings read back the same
    assert (again.prices, again.budget, again.endpoints) == (config.prices, config.budget, config.endpoints)
    plain = parse_book({})
    assert (plain.prices, plain.budget) == ({}, None) and "budget" not in plain.to_json()


@pytest.mark.parametrize(("raw", "needle"), [
    ({"endpoints": {"vllm": {**VLLM, "price": {"input": -1}}}}, "endpoints.vllm.price.input must be a number of US "
                                                                "dollars, 0 or more, not -1"),
    ({"endpoints": {"vllm": {**VLLM, "price": {"input": "cheap"}}}}, "endpoints.vllm.price.input must be a number"),
    ({"endpoints": {"vllm": {**VLLM, "price": {"inptu": 1}}}}, "endpoints.vllm.price takes input, cached_input, "
                                                               "output (US dollars per million tokens), not inptu"),
    ({"endpoints": {"vllm": {**VLLM, "price": 3}}}, "endpoints.vllm.price must be a dict"),
    ({"budget": {"max_tokens_total": 0}}, "budget.max_tokens_total must be a whole number of tokens, at least 1"),
    ({"budget": {"max_tokens_total": 1.5}}, "budget.max_tokens_total must be a whole number"),
    ({"budget": {"max_cost": 0}}, "budget.max_cost must be a number of US dollars, more than 0, not 0"),
    ({"budget": {"max_tokens": 5}}, "[budget] takes max_tokens_total and/or max_cost, not max_tokens"),
    ({"budget": 5}, "budget must be a dict"),
    ({"budget": {"max_cost": 1.0}}, "budget.max_cost needs a price: add [endpoints.NAME.price]"),
])  # fmt: skip
def test_bad_prices_and_budgets_are_one_line_naming_the_key(raw: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_book(raw, where="b.toml")
    message = str(err.value)
    assert message.startswith("b.toml: ") and needle in message and "\n" not in message, message
