"""What the Reaper's parts share: the newcomer being prepared, the book's census, the claims on personas and the
figures it keeps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol
from uuid import UUID

from spacetime.domain import Agent, NewcomerSource, Persona
from spacetime.engine.seats import Seat
from spacetime.rules.rating import entry_rating


@dataclass(frozen=True, slots=True)
class Newcomer:
    """A persona ready to enter: its seat (with a pre-generated agent id) is built, nothing is stored yet."""

    persona: Persona
    seat: Seat
    source: NewcomerSource
    prepared_s: float
    note: str | None = None
    embedding: Embedding | None = None

    @property
    def agent(self) -> Agent:
        return self.seat.agent

    def entering(self, epoch_no: int, living: Sequence[Agent]) -> Newcomer:
        """The same newcomer, entering after epoch ``epoch_no`` (its ``born_epoch``) among ``living``: rated at
        their mean, as of this seating (``rules.rating.entry_rating``)."""
        rating, sigma, elo = entry_rating(living)
        agent = replace(self.seat.agent, born_epoch=epoch_no, rating=rating, sigma=sigma, elo=elo)
        return replace(self, seat=replace(self.seat, agent=agent))


Embedding = tuple[str, list[float]]
"""A persona's embedded description: (embedder name, vector)."""


class MakeNewcomer(Protocol):
    def __call__(self, persona: Persona, source: NewcomerSource, t0: float, note: str | None = None,
                 embedding: Embedding | None = None) -> Newcomer: ...  # fmt: skip


@dataclass
class ReaperStats:
    stalls_ms: list[float] = field(default_factory=list)
    """Per boundary with a newcomer: how long the epoch loop waited on the Reaper (ms), i.e. the time spent in
    ``epoch_committed`` plus the time spent in the next ``ready``."""
    committed_ms: list[float] = field(default_factory=list)
    """The ``epoch_committed`` part of each stall (memory notes; no I/O)."""
    arrivals: int = 0
    swaps_applied: int = 0
    swaps_rejected: int = 0
    bred: int = 0
    bred_fallback: int = 0


@dataclass
class Census:
    """What the Reaper knows of its book's people."""

    epochs: int = 0
    """Epochs committed."""
    names: dict[UUID, str] = field(default_factory=dict)
    """Every agent of the book, living or dead: id → name."""
    barred: set[str] = field(default_factory=set)
    """Personas that may not enter: every agent's (a persona plays a book once), and any that lost a seat to a
    race with another book or a swap."""


class Claims:
    """Who may still enter: not a persona that played in the book (``census.barred``), nor one a pending swap
    brings in (``awaited``), nor — for another newcomer — one already prepared and not seated yet."""

    def __init__(self, census: Census, awaited: Callable[[], set[str]]) -> None:
        self.census = census
        self.awaited = awaited
        self._claimed: dict[str, str] = {}
        """Name → discipline of the newcomers prepared (or being prepared) and not seated yet."""

    def usable(self, persona: Persona) -> bool:
        """Can still enter this book (never played here, not awaited by an operator swap)."""
        return persona.name not in self.census.barred and persona.name not in self.awaited()

    def free(self, persona: Persona) -> bool:
        """Usable and not already prepared as another newcomer."""
        return self.usable(persona) and persona.name not in self._claimed

    def claim(self, persona: Persona) -> Persona:
        self._claimed[persona.name] = persona.discipline
        return persona

    def release(self, persona: Persona) -> None:
        self._claimed.pop(persona.name, None)

    def names(self) -> set[str]:
        """Names no newly bred persona may take (besides every stored persona's)."""
        return self.awaited() | set(self._claimed)

    def disciplines(self) -> set[str]:
        return set(self._claimed.values())
