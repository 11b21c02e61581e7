"""What the engine reports while it plays (for the terminal, logs and tests). Plain values, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from spacetime.domain import Usage


@dataclass(frozen=True, slots=True)
class EpochStarted:
    book: str
    epoch_no: int
    agents: tuple[str, ...]
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class DraftStarted:
    agent: str


@dataclass(frozen=True, slots=True)
class DraftDone:
    agent: str
    tokens: int
    truncated: bool
    latency_s: float


@dataclass(frozen=True, slots=True)
class DraftForfeited:
    agent: str
    reason: str


@dataclass(frozen=True, slots=True)
class EmbeddingsSkipped:
    """The embedder failed for good: the epoch goes on, its drafts and chapter stored without vectors (retrieval
    then falls back to the previous chapter alone)."""

    reason: str


@dataclass(frozen=True, slots=True)
class JudgmentStarted:
    voters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BallotDone:
    voter: str
    status: str
    votes: int


@dataclass(frozen=True, slots=True)
class EpochRetry:
    epoch_no: int
    drafts: int
    wait_s: float


@dataclass(frozen=True, slots=True)
class EpochCommitted:
    epoch_no: int
    epoch_id: UUID
    winner: str
    loser: str
    chapter_title: str
    wall_s: float
    completion_tokens: int
    warnings: tuple[str, ...] = ()
    """The epoch's judging audit in plain words (judges agreeing no better than chance, tied ballots …)."""
    usage: Usage = Usage()
    """The tokens the book's calls used for this epoch (see ``EpochRecord.usage``)."""
    cost: float | None = None
    """What they cost in US dollars on the priced endpoints (``None``: no priced endpoint was used)."""


@dataclass(frozen=True, slots=True)
class BudgetReached:
    """The book has used its budget (``[budget]``): it stops at this epoch boundary; ``line`` says so."""

    book: str
    line: str


@dataclass(frozen=True, slots=True)
class AgentEntered:
    name: str
    replaced: str | None
    origin: str
    epoch_no: int


@dataclass(frozen=True, slots=True)
class SuccessionFailed:
    """The Reaper could not seat a successor at this boundary: the book goes on with ``living`` agents, and the
    next elimination seats as many newcomers as the book is short."""

    reason: str
    living: int


Event = (
    EpochStarted
    | DraftStarted
    | DraftDone
    | DraftForfeited
    | EmbeddingsSkipped
    | JudgmentStarted
    | BallotDone
    | EpochRetry
    | EpochCommitted
    | BudgetReached
    | AgentEntered
    | SuccessionFailed
)
Listener = Callable[[Event], None]


def ignore(_: Event) -> None:
    """The default listener."""
