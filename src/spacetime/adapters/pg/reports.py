"""Read-only reports of the store as typed values: a book's status, its lineage, the persona catalogue, the swap
list and the Reaper's log. The CLI turns them into its tables and its ``--json`` output; nothing here is shaped
for a screen.

Ratings are rounded to 2 decimals and stalls to 3, as reported since the first version of ``spacetime status``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from spacetime.adapters.pg.rows import PERSONA_COLUMNS, USAGE_COLUMNS, agent_from_row, persona_from_row, usage_from_row
from spacetime.book import parse_book
from spacetime.domain import (
    Agent,
    Book,
    Budget,
    CallKind,
    NewcomerSource,
    Persona,
    Price,
    ReplacementKind,
    UsageLine,
)
from spacetime.errors import ConfigError
from spacetime.rules.audit import AuditVote, JudgingHealth, audit_book, used_score
from spacetime.rules.cost import Spend, by_kind, merged, spend

if TYPE_CHECKING:
    from spacetime.adapters.pg.store import Store


class SwapStatus(StrEnum):
    """``swap_requests.status``."""

    PENDING = "pending"
    APPLIED = "applied"
    REJECTED = "rejected"


class EntryKind(StrEnum):
    """How an agent entered its book: the ``ReplacementKind`` logged for its entry (``elimination``, ``swap``,
    ``top-up``), else ``founder`` (seated when the book began) or ``replacement`` (seated with no logged event)."""

    FOUNDER = "founder"
    REPLACEMENT = "replacement"
    ELIMINATION = "elimination"
    SWAP = "swap"
    TOP_UP = "top-up"


class PersonaState(StrEnum):
    """A persona's state in one book (``None`` where it has none)."""

    ALIVE = "alive"
    DEAD = "dead"
    PENDING = "pending"
    """A pending operator swap will bring it in."""
    RESERVE = "reserve"
    """In the book's reserve pool (known from the book's configuration, not from this module's queries)."""


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One agent of ``spacetime status``."""

    agent: Agent
    """Its rating rounded to 2 decimals."""
    cause_of_death: str | None
    replaced: str | None
    """The name of the agent it replaced."""


@dataclass(frozen=True, slots=True)
class LineageEntry:
    """One agent of a book's lineage: whom it replaced, at which epoch, how, and its persona's parents."""

    agent: Agent
    """Its rating rounded to 2 decimals."""
    cause_of_death: str | None
    replaced: str | None
    """The name of the agent it replaced."""
    replaced_agent_id: UUID | None
    via: EntryKind
    source: str
    """Where it came from: the logged source (``reserve``, ``bred``, ``bred-fallback``, ``operator``), else its
    persona's origin."""
    stall_ms: float | None
    """How long the book's loop waited for it (rounded to 3 decimals), when logged."""


@dataclass(frozen=True, slots=True)
class BookStatus:
    book: Book
    epochs: int
    chapters: int
    roster: tuple[RosterEntry, ...]
    """The living first, then by rating (best first) and name."""
    lineage: tuple[LineageEntry, ...]
    """In order of entry: a replaced agent always comes before its replacement."""
    judging: Judging | None = None
    """How the book has been judged (``None`` before its first epoch)."""
    fleet: str | None = None
    """A submitted book's state in the fleet (waiting, playing, paused, cancelled, done, failed); ``None`` for a
    book played by ``spacetime run`` only."""
    usage: BookUsage | None = None
    """The tokens (and cost) of the book's model calls; ``None`` when not read."""


@dataclass(frozen=True, slots=True)
class EpochUsage:
    """What one epoch's calls used (``EpochRecord.usage``) and cost."""

    epoch_no: int
    lines: tuple[UsageLine, ...]
    spent: Spend


@dataclass(frozen=True, slots=True)
class BookUsage:
    """What a book's calls used: its totals by kind of call and endpoint, what they cost at the book's prices,
    epoch by epoch, and its budget."""

    lines: tuple[UsageLine, ...]
    spent: Spend
    epochs: tuple[EpochUsage, ...]
    """Epochs stored with their usage, in order (an epoch played before usage was recorded has none)."""
    budget: Budget | None = None
    prices: Mapping[str, Price] = dataclasses.field(default_factory=dict)

    def by_kind(self, lines: Sequence[UsageLine] | None = None) -> dict[CallKind, Spend]:
        """Usage and cost per kind of call (of ``lines``, default the book's)."""
        found = self.lines if lines is None else lines
        return {kind: spend([x for x in found if x.kind is kind], self.prices) for kind in by_kind(found)}


@dataclass(frozen=True, slots=True)
class FlaggedDraft:
    """A draft whose text addressed the reviewers: neutralised before review, never eligible for the canon."""

    epoch_no: int
    author: str
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Judging:
    """The judging of a book: the audit of every stored vote, the flagged drafts, and how sure the last verdict was."""

    health: JudgingHealth
    flagged: tuple[FlaggedDraft, ...]
    last_verdict_confidence: float | None
    """Share of ballot bootstraps in which the last epoch's winner stays the winner (``None``: not recorded)."""


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One persona of ``spacetime personas``."""

    persona: Persona
    bred_in: str | None
    """The name of the book it was bred in."""
    state: PersonaState | None
    died_epoch: int | None
    """When it died in the book asked about."""


@dataclass(frozen=True, slots=True)
class SwapEntry:
    swap_id: UUID
    status: SwapStatus
    reason: str | None
    applied_epoch: int | None
    requested_at: datetime
    out_name: str
    in_name: str


@dataclass(frozen=True, slots=True)
class ReaperLogEntry:
    """One row of ``reaper_events`` with the agents' names."""

    epoch_no: int
    kind: ReplacementKind
    out_name: str | None
    in_name: str
    source: NewcomerSource
    prepared_s: float | None
    stall_ms: float | None
    note: str | None


def _agent(row: Mapping[str, Any]) -> Agent:
    agent = agent_from_row(row)
    return dataclasses.replace(agent, rating=round(agent.rating, 2))


# --------------------------------------------------------------------------- status and lineage
_ROSTER = f"""
SELECT a.agent_id, a.name, a.rating, a.status, a.born_epoch, a.died_epoch, a.model, a.cause_of_death,
       r.name AS replaced, {PERSONA_COLUMNS}
FROM agents a JOIN personas p USING (persona_id) LEFT JOIN agents r ON r.agent_id = a.replaced_agent_id
WHERE a.book_id = %s ORDER BY (a.status = 'alive') DESC, a.rating DESC, a.name
"""

_LINEAGE = f"""
SELECT a.agent_id, a.name, a.rating, a.status, a.born_epoch, a.died_epoch, a.model, a.cause_of_death,
       a.replaced_agent_id, r.name AS replaced, {PERSONA_COLUMNS}, e.kind, e.source, e.stall_ms
FROM agents a JOIN personas p USING (persona_id) LEFT JOIN agents r ON r.agent_id = a.replaced_agent_id
LEFT JOIN LATERAL (SELECT kind, source, stall_ms FROM reaper_events x WHERE x.in_agent_id = a.agent_id
                   ORDER BY created_at LIMIT 1) e ON true
WHERE a.book_id = %s ORDER BY a.born_epoch, a.created_at, a.name
"""


async def book_status(store: Store, book: Book) -> BookStatus:
    """Epochs, chapters, the roster (living and dead) and the lineage of one book."""
    counts = (
        await store.rows(
            "SELECT (SELECT count(*) FROM simulation_epochs WHERE book_id = %(b)s) AS epochs, "
            "(SELECT count(*) FROM chapters WHERE book_id = %(b)s) AS chapters",
            {"b": book.book_id},
        )
    )[0]
    roster = tuple(
        RosterEntry(_agent(r), r["cause_of_death"], r["replaced"]) for r in await store.rows(_ROSTER, (book.book_id,))
    )
    return BookStatus(book, counts["epochs"], counts["chapters"], roster, tuple(await lineage(store, book.book_id)),
                      await judging(store, book) if counts["epochs"] else None,
                      usage=await book_usage(store, book))  # fmt: skip


EPOCH_USAGE = f"SELECT epoch_no, {USAGE_COLUMNS} FROM epoch_usage WHERE book_id = %(b)s ORDER BY epoch_no"
"""A book's usage rows, epoch by epoch (parameter ``b`` = the book id), read by ``book_usage`` here and by the
deck's reader, mapped by ``usage_of``."""


def usage_of(book: Book, rows: Sequence[Mapping[str, Any]]) -> BookUsage:
    """A book's ``BookUsage`` from its ``EPOCH_USAGE`` rows, priced by its stored settings."""
    per_epoch: dict[int, list[UsageLine]] = {}
    for r in rows:
        per_epoch.setdefault(int(r["epoch_no"]), []).append(usage_from_row(r))
    try:
        config = parse_book(dict(book.config), where=f"stored settings of book {book.name!r}")
        prices, budget = config.prices, config.budget
    except ConfigError:  # settings stored by another version: the tokens without their cost
        prices, budget = {}, None
    epochs = tuple(EpochUsage(n, merged(lines), spend(lines, prices)) for n, lines in sorted(per_epoch.items()))
    every = merged(line for e in epochs for line in e.lines)
    return BookUsage(every, spend(every, prices), epochs, budget, prices)


async def book_usage(store: Store, book: Book) -> BookUsage:
    """What the book's calls used, in all and epoch by epoch."""
    return usage_of(book, await store.rows(EPOCH_USAGE, {"b": book.book_id}))


AUDIT_VOTES = (
    "SELECT e.epoch_no, v.voter_agent_id, v.target_agent_id, v.insight_score, v.expected_score, "
    "coalesce(v.display_position, 0) AS position, "
    "cardinality(regexp_split_to_array(btrim(coalesce(d.text, '')), '\\s+')) AS words "
    "FROM simulation_epochs e JOIN peer_votes v USING (epoch_id) "
    "LEFT JOIN drafts d ON d.epoch_id = e.epoch_id AND d.agent_id = v.target_agent_id "
    "WHERE e.book_id = %(b)s ORDER BY e.epoch_no"
)
"""Every stored vote of a book as the audit reads it (epoch, display position, the target's length in words)."""
AGENT_NAMES = "SELECT agent_id, name FROM agents WHERE book_id = %(b)s"
FLAGGED_DRAFTS = (
    "SELECT e.epoch_no, a.name, d.flags FROM drafts d JOIN simulation_epochs e USING (epoch_id) "
    "JOIN agents a ON a.agent_id = d.agent_id WHERE e.book_id = %(b)s AND cardinality(d.flags) > 0 "
    "ORDER BY e.epoch_no, a.name"
)
LAST_CONFIDENCE = (
    "SELECT verdict_confidence FROM simulation_epochs WHERE book_id = %(b)s ORDER BY epoch_no DESC LIMIT 1"
)
"""The queries of a book's judging, run by ``judging`` here and by the deck's reader (sync), mapped by
``judging_of``; parameter ``b`` = the book id."""


def judging_of(book: Book, votes: Sequence[Mapping[str, Any]], names: Sequence[Mapping[str, Any]],
               flagged: Sequence[Mapping[str, Any]], last: Sequence[Mapping[str, Any]]) -> Judging:  # fmt: skip
    """The rows of ``AUDIT_VOTES``, ``AGENT_NAMES``, ``FLAGGED_DRAFTS`` and ``LAST_CONFIDENCE`` → ``Judging``
    (the audit seeded by the book's id: the same votes always give the same figures)."""
    audit = [AuditVote(r["voter_agent_id"], r["target_agent_id"], used_score(r["insight_score"], r["expected_score"]),
                       r["position"], r["words"] or 0, r["epoch_no"], r["insight_score"]) for r in votes]  # fmt: skip
    health = audit_book(audit, rng=random.Random(book.book_id.int), names={r["agent_id"]: r["name"] for r in names})
    return Judging(
        health,
        tuple(FlaggedDraft(r["epoch_no"], r["name"], tuple(r["flags"])) for r in flagged),
        last[0]["verdict_confidence"] if last else None,
    )


async def judging(store: Store, book: Book) -> Judging:
    """How ``book`` has been judged: the audit of every stored vote, its flagged drafts, the last verdict's
    confidence."""
    b = {"b": book.book_id}
    return judging_of(book, await store.rows(AUDIT_VOTES, b), await store.rows(AGENT_NAMES, b),
                      await store.rows(FLAGGED_DRAFTS, b), await store.rows(LAST_CONFIDENCE, b))  # fmt: skip


async def lineage(store: Store, book_id: UUID) -> list[LineageEntry]:
    """Every agent of the book in order of entry: whom it replaced, at which epoch, how, and its persona's parents."""
    return [
        LineageEntry(
            agent=_agent(r),
            cause_of_death=r["cause_of_death"],
            replaced=r["replaced"],
            replaced_agent_id=r["replaced_agent_id"],
            via=EntryKind(r["kind"]) if r["kind"] else
                EntryKind.FOUNDER if r["replaced_agent_id"] is None else EntryKind.REPLACEMENT,
            source=r["source"] or r["origin"],
            stall_ms=None if r["stall_ms"] is None else round(r["stall_ms"], 3),
        )  # fmt: skip
        for r in await store.rows(_LINEAGE, (book_id,))
    ]


# --------------------------------------------------------------------------- personas
async def persona_catalog(store: Store, book_id: UUID | None = None) -> list[CatalogEntry]:
    """Every stored persona with its origin, parents and (with ``book_id``) its state in that book:
    ``alive``, ``dead``, ``pending`` (a swap will bring it in) or ``None``."""
    rows = await store.rows(
        "SELECT p.name, p.discipline, p.voice, p.system_prompt, p.origin, p.parents, b.name AS bred_in, "
        "a.status AS state, a.died_epoch, EXISTS (SELECT 1 FROM swap_requests s WHERE s.in_persona_id = "
        "p.persona_id AND s.book_id = %(b)s AND s.status = 'pending') AS pending "
        "FROM personas p LEFT JOIN books b ON b.book_id = p.book_id "
        "LEFT JOIN agents a ON a.persona_id = p.persona_id AND a.book_id = %(b)s "
        "ORDER BY p.created_at, p.name",
        {"b": book_id},
    )
    return [
        CatalogEntry(
            persona=persona_from_row(r, name="name"),
            bred_in=r["bred_in"],
            state=(PersonaState.ALIVE if r["state"] == "alive" else PersonaState.DEAD if r["state"] else
                   PersonaState.PENDING if r["pending"] else None),
            died_epoch=r["died_epoch"],
        )  # fmt: skip
        for r in rows
    ]


# --------------------------------------------------------------------------- swaps and the Reaper's log
async def swaps(store: Store, book_id: UUID) -> list[SwapEntry]:
    """Every operator swap of the book, oldest first."""
    rows = await store.rows(
        "SELECT s.swap_id, s.status, s.reason, s.applied_epoch, s.requested_at, a.name AS out_name, "
        "p.name AS in_name FROM swap_requests s JOIN agents a ON a.agent_id = s.out_agent_id "
        "JOIN personas p ON p.persona_id = s.in_persona_id WHERE s.book_id = %s ORDER BY s.requested_at",
        (book_id,),
    )
    return [
        SwapEntry(r["swap_id"], SwapStatus(r["status"]), r["reason"], r["applied_epoch"], r["requested_at"],
                  r["out_name"], r["in_name"])  # fmt: skip
        for r in rows
    ]


async def reaper_events(store: Store, book_id: UUID) -> list[ReaperLogEntry]:
    """The Reaper's log of the book (one entry per newcomer), in order."""
    rows = await store.rows(
        "SELECT r.epoch_no, r.kind, o.name AS out_name, i.name AS in_name, r.source, r.prepared_s, r.stall_ms, "
        "r.note FROM reaper_events r LEFT JOIN agents o ON o.agent_id = r.out_agent_id "
        "JOIN agents i ON i.agent_id = r.in_agent_id WHERE r.book_id = %s ORDER BY r.epoch_no, r.created_at",
        (book_id,),
    )
    return [
        ReaperLogEntry(r["epoch_no"], ReplacementKind(r["kind"]), r["out_name"], r["in_name"],
                       NewcomerSource(r["source"]), r["prepared_s"], r["stall_ms"], r["note"])  # fmt: skip
        for r in rows
    ]
