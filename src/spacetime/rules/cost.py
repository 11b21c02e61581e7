"""Tokens and cost: what a book's model calls used, what that cost on the priced endpoints, and whether the book's
budget lets it play another epoch. Pure functions over ``Usage`` / ``UsageLine`` / ``Price`` / ``Budget``.

A price is per million tokens: prompt tokens the server had to read at ``input``, those it took from its prefix
cache at ``cached_input`` (``input`` when not given), completion tokens at ``output``. An endpoint without a price
costs nothing here (its tokens still count against a token budget).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from spacetime.domain import Budget, CallKind, Price, Usage, UsageLine

PER = 1_000_000
"""Prices are per this many tokens."""


def cost(usage: Usage, price: Price) -> float:
    """US dollars ``usage`` costs at ``price`` (never negative: prices and counts are not)."""
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    cached_price = price.input if price.cached_input is None else price.cached_input
    return (usage.uncached_tokens * price.input + cached * cached_price + usage.completion_tokens * price.output) / PER


def total(lines: Iterable[UsageLine]) -> Usage:
    """Every line added up."""
    out = Usage()
    for line in lines:
        out += line.usage
    return out


def merged(lines: Iterable[UsageLine]) -> tuple[UsageLine, ...]:
    """One line per (kind, endpoint), in ``CallKind`` order then by endpoint."""
    sums: dict[tuple[CallKind, str], Usage] = {}
    for line in lines:
        key = (line.kind, line.endpoint)
        sums[key] = sums.get(key, Usage()) + line.usage
    order = list(CallKind)
    ranked = sorted(sums.items(), key=lambda item: (order.index(item[0][0]), item[0][1]))
    return tuple(UsageLine(kind, endpoint, usage) for (kind, endpoint), usage in ranked)


def by_kind(lines: Iterable[UsageLine]) -> dict[CallKind, Usage]:
    """Usage per kind of call (kinds with no call are left out), in ``CallKind`` order."""
    sums: dict[CallKind, Usage] = {}
    for line in merged(lines):
        sums[line.kind] = sums.get(line.kind, Usage()) + line.usage
    return sums


@dataclass(frozen=True, slots=True)
class Spend:
    """What some calls used and cost."""

    usage: Usage
    cost: float | None
    """US dollars on the priced endpoints; ``None`` when none of the calls was on a priced endpoint."""


def spend(lines: Iterable[UsageLine], prices: Mapping[str, Price]) -> Spend:
    """The usage of ``lines`` and its cost at ``prices`` (endpoint name → price)."""
    found = tuple(lines)
    priced = [line for line in found if line.endpoint in prices]
    dollars = sum((cost(line.usage, prices[line.endpoint]) for line in priced), 0.0) if priced else None
    return Spend(total(found), dollars)


class BudgetLimit(StrEnum):
    TOKENS = "tokens"
    COST = "cost"


@dataclass(frozen=True, slots=True)
class BudgetStop:
    """A budget a book has reached: which limit, how much was spent, the limit."""

    limit: BudgetLimit
    spent: float
    allowed: float


def budget_stop(budget: Budget | None, spent: Spend) -> BudgetStop | None:
    """Whether a book that has ``spent`` this much may not start another epoch: the first limit of ``budget``
    reached (spent ≥ limit; the token limit is looked at first), else ``None``. No budget never stops."""
    if budget is None:
        return None
    if budget.max_tokens_total is not None and spent.usage.total_tokens >= budget.max_tokens_total:
        return BudgetStop(BudgetLimit.TOKENS, spent.usage.total_tokens, budget.max_tokens_total)
    if budget.max_cost is not None and (spent.cost or 0.0) >= budget.max_cost:
        return BudgetStop(BudgetLimit.COST, spent.cost or 0.0, budget.max_cost)
    return None


def dollars(value: float) -> str:
    """``$12.35``; below a cent, four decimals (``$0.0042``)."""
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def budget_line(book: str, stop: BudgetStop, epochs: int) -> str:
    """The one line a book stopped by its budget ends with."""
    if stop.limit is BudgetLimit.TOKENS:
        what = f"token budget reached ({int(stop.spent):,} of {int(stop.allowed):,} tokens)"
    else:
        what = f"cost budget reached ({dollars(stop.spent)} of {dollars(stop.allowed)})"
    return f'book "{book}": {what} after epoch {epochs}'


def usage_text(spent: Spend) -> str:
    """``12,345 tokens (3,000 cached) in 14 calls, $0.0123``: a short account for progress lines and status."""
    u = spent.usage
    cached = f" ({u.cached_tokens:,} cached)" if u.cached_tokens else ""
    money = "" if spent.cost is None else f", {dollars(spent.cost)}"
    return f"{u.total_tokens:,} tokens{cached} in {u.calls:,} call(s){money}"
