"""The reports of ``spacetime.adapters.pg.reports`` as the terminal shows them (rich tables and trees) and as
``--json`` prints them (plain values; the keys are part of the CLI's interface)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from spacetime.adapters.pg.reports import (
    BookStatus,
    BookUsage,
    CatalogEntry,
    EntryKind,
    EpochUsage,
    Judging,
    LineageEntry,
    PersonaState,
    RosterEntry,
)
from spacetime.domain import Agent, AgentStatus, PersonaOrigin
from spacetime.rules.audit import to_json as audit_json
from spacetime.rules.cost import Spend, spend, usage_text

console = Console()

JsonObject = dict[str, object]


# --------------------------------------------------------------------------- status
def print_status(reports: Sequence[BookStatus]) -> None:
    if not reports:
        console.print("No books yet: `spacetime run` starts one.")
        return
    for report in reports:
        table = Table(
            title=f"{report.book.name} — {report.epochs} epoch(s), {report.chapters} chapter(s)"
            + (f" — fleet: {report.fleet}" if report.fleet else ""),
            caption=report.book.topic,
        )
        for column in ("agent", "discipline", "status", "rating", "born", "died", "replaced"):
            table.add_column(column, justify="right" if column in ("rating", "born", "died") else "left")
        for entry in report.roster:
            agent = entry.agent
            table.add_row(
                agent.name,
                agent.persona.discipline,
                agent.status.value,
                f"{agent.rating:.1f}",
                str(agent.born_epoch),
                "" if agent.died_epoch is None else str(agent.died_epoch),
                entry.replaced or "",
            )
        console.print(table)
        if report.usage is not None and report.usage.epochs:
            last = report.usage.epochs[-1]
            console.print(f"usage: {usage_text(report.usage.spent)} · last epoch ({last.epoch_no}): "
                          f"{usage_text(last.spent)}", highlight=False)  # fmt: skip


def _agent_json(agent: Agent, cause_of_death: str | None) -> JsonObject:
    """The keys every agent row of the ``--json`` outputs starts with, in this order."""
    return {
        "agent_id": str(agent.agent_id),
        "name": agent.name,
        "discipline": agent.persona.discipline,
        "status": agent.status.value,
        "rating": agent.rating,
        "born_epoch": agent.born_epoch,
        "died_epoch": agent.died_epoch,
        "cause_of_death": cause_of_death,
    }


def roster_json(entry: RosterEntry) -> JsonObject:
    agent = entry.agent
    return {
        **_agent_json(agent, entry.cause_of_death),
        "model": agent.model,
        "replaced": entry.replaced,
        "origin": agent.persona.origin.value,
        "parents": list(agent.persona.parents),
    }


def status_json(report: BookStatus) -> JsonObject:
    """One book of ``spacetime status --json``."""
    return {
        "book": report.book.name,
        "topic": report.book.topic,
        "epochs": report.epochs,
        "chapters": report.chapters,
        "fleet": report.fleet,
        "roster": [roster_json(e) for e in report.roster],
        "lineage": [lineage_json(e) for e in report.lineage],
        "judging": None if report.judging is None else judging_json(report.judging),
        "usage": None if report.usage is None else usage_json(report.usage),
    }


def spend_json(spent: Spend) -> JsonObject:
    """Tokens and cost of some calls (``cost``: US dollars on the priced endpoints, ``null`` when none)."""
    u = spent.usage
    return {
        "calls": u.calls,
        "prompt_tokens": u.prompt_tokens,
        "cached_tokens": u.cached_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "cost": None if spent.cost is None else round(spent.cost, 6),
    }


def usage_json(usage: BookUsage) -> JsonObject:
    """A book's tokens and cost: in all, by kind of call, by endpoint, epoch by epoch, the last epoch, the budget."""
    endpoints = sorted({line.endpoint for line in usage.lines})

    def epoch(e: EpochUsage) -> JsonObject:
        return {"epoch": e.epoch_no, **spend_json(e.spent),
                "by_kind": {k.value: spend_json(v) for k, v in usage.by_kind(e.lines).items()}}  # fmt: skip

    budget = usage.budget
    return {
        **spend_json(usage.spent),
        "by_kind": {k.value: spend_json(v) for k, v in usage.by_kind().items()},
        "by_endpoint": {name: spend_json(spend([x for x in usage.lines if x.endpoint == name], usage.prices))
                        for name in endpoints},  # fmt: skip
        "epochs": [epoch(e) for e in usage.epochs],
        "last_epoch": epoch(usage.epochs[-1]) if usage.epochs else None,
        "budget": None if budget is None else {"max_tokens_total": budget.max_tokens_total,
                                               "max_cost": budget.max_cost},  # fmt: skip
    }


def judging_json(judging: Judging) -> JsonObject:
    """How a book has been judged: the audit, its warnings in plain words, the flagged drafts."""
    health = audit_json(judging.health)
    return {
        "healthy": judging.health.healthy,
        "warnings": [w.text for w in judging.health.warnings],
        "last_verdict_confidence": judging.last_verdict_confidence,
        "flagged_drafts": [{"epoch": f.epoch_no, "author": f.author, "flags": list(f.flags)} for f in judging.flagged],
        "audit": health,
    }


# --------------------------------------------------------------------------- lineage
def lineage_json(entry: LineageEntry) -> JsonObject:
    agent = entry.agent
    return {
        **_agent_json(agent, entry.cause_of_death),
        "replaced": entry.replaced,
        "replaced_agent_id": None if entry.replaced_agent_id is None else str(entry.replaced_agent_id),
        "via": entry.via.value,
        "source": entry.source,
        "origin": agent.persona.origin.value,
        "parents": list(agent.persona.parents),
        "stall_ms": entry.stall_ms,
    }


def _lineage_label(entry: LineageEntry) -> str:
    agent = entry.agent
    head = f"[bold]{escape(agent.name)}[/] ({escape(agent.persona.discipline)})"
    if agent.persona.origin is PersonaOrigin.BRED:
        head += f" · bred from {escape(' × '.join(agent.persona.parents))}"
        head += " (fallback)" if entry.source == "bred-fallback" else ""
    elif entry.via is EntryKind.SWAP:
        head += " · swapped in by the operator"
    elif entry.via is not EntryKind.FOUNDER:
        head += f" · from the {entry.source if entry.source != 'builtin' else 'reserve'}"
    life = f"enters after epoch {agent.born_epoch}" if agent.born_epoch else "founder"
    if agent.status is AgentStatus.ALIVE:
        life += f" · [green]alive[/] · {agent.rating:.1f}"
    else:
        cause = escape(entry.cause_of_death or "eliminated")
        life += f" · [red]dies at epoch {agent.died_epoch}[/] ({cause}) · {agent.rating:.1f}"
    return f"{head} — {life}"


def print_lineage(entries: Sequence[LineageEntry], book: str) -> None:
    tree = Tree(f"[bold]{escape(book)}[/] — lineage")
    nodes: dict[UUID | None, Tree] = {}
    for entry in entries:  # in order of entry: a replaced agent is always listed before its replacement
        parent = nodes.get(entry.replaced_agent_id, tree)
        nodes[entry.agent.agent_id] = parent.add(_lineage_label(entry))
    Console().print(tree)


# --------------------------------------------------------------------------- personas
def persona_json(entry: CatalogEntry) -> JsonObject:
    persona = entry.persona
    return {
        "name": persona.name,
        "discipline": persona.discipline,
        "voice": persona.voice,
        "origin": persona.origin.value,
        "parents": list(persona.parents),
        "bred_in": entry.bred_in,
        "state": None if entry.state is None else entry.state.value,
        "died_epoch": entry.died_epoch,
    }


def print_personas(entries: Sequence[CatalogEntry], book: str | None) -> None:
    table = Table(title="personas" + (f" — book {book!r}" if book else ""))
    for column in ("name", "discipline", "origin", "parents", *(("in book",) if book else ())):
        table.add_column(column)
    for e in entries:
        state = "" if e.state is None else e.state.value
        if e.state is PersonaState.DEAD and e.died_epoch is not None:
            state = f"dead (epoch {e.died_epoch})"
        parents = " × ".join(e.persona.parents) + (f" (in {e.bred_in})" if e.bred_in else "")
        table.add_row(e.persona.name, e.persona.discipline, e.persona.origin.value, parents,
                      *((state,) if book else ()))  # fmt: skip
    Console().print(table)
