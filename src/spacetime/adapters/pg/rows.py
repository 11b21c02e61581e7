"""Rows → domain values, written once: every query of ``spacetime.adapters.pg`` that returns a persona, an agent or
a book maps its row here (``dict_row`` rows; persona columns may be prefixed, e.g. ``p_name`` for a join with
``agents`` whose own ``name`` column comes first)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spacetime.domain import INITIAL_SIGMA, Agent, AgentStatus, Book, CallKind, Persona, PersonaOrigin, Usage, UsageLine

PERSONA_COLUMNS = "p.name AS p_name, p.discipline, p.voice, p.system_prompt, p.origin, p.parents"
"""The persona columns ``persona_from_row`` reads, for a query joining ``personas p``."""


def persona_from_row(row: Mapping[str, Any], *, name: str = "p_name") -> Persona:
    """The persona of a row holding ``PERSONA_COLUMNS`` (``name`` = the column holding the persona's name)."""
    return Persona(
        name=row[name],
        discipline=row["discipline"],
        voice=row["voice"],
        system_prompt=row["system_prompt"],
        origin=PersonaOrigin(row["origin"]),
        parents=tuple(row["parents"] or ()),
    )


def agent_from_row(row: Mapping[str, Any]) -> Agent:
    """An agent from a row of ``agents a`` joined with ``PERSONA_COLUMNS`` (an agent stored before ratings had
    an uncertainty gets the default σ, and its rating as its Elo)."""
    return Agent(
        agent_id=row["agent_id"],
        persona=persona_from_row(row),
        rating=row["rating"],
        status=AgentStatus(row["status"]),
        born_epoch=row["born_epoch"],
        died_epoch=row["died_epoch"],
        model=row["model"],
        sigma=INITIAL_SIGMA if row.get("sigma") is None else row["sigma"],
        elo=row["rating"] if row.get("elo") is None else row["elo"],
    )


def book_from_row(row: Mapping[str, Any]) -> Book:
    """A book from a ``books`` row."""
    return Book(row["book_id"], row["name"], row["topic"], row["outline"], row["config"])


USAGE_COLUMNS = "kind, endpoint, calls, prompt_tokens, cached_tokens, completion_tokens"
"""The columns of ``epoch_usage`` (or their sums, under the same names) ``usage_from_row`` reads."""


def usage_from_row(row: Mapping[str, Any]) -> UsageLine:
    """A line of usage from a row holding ``USAGE_COLUMNS``."""
    usage = Usage(int(row["calls"]), int(row["prompt_tokens"]), int(row["cached_tokens"]),
                  int(row["completion_tokens"]))  # fmt: skip
    return UsageLine(CallKind(row["kind"]), row["endpoint"], usage)
