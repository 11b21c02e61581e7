"""The daemon's queue: what the Director's hooks hand it, done off the loop in order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from spacetime.domain import EpochRecord, ReaperEvent
from spacetime.engine.reaper.values import Newcomer
from spacetime.engine.seats import Seat

Arrivals = list[tuple[Newcomer, UUID | None]]
"""Newcomers seated in the database, each with the agent it replaced (``None``: a top-up without a known death)."""


@dataclass
class Eliminated:
    """An epoch committed: note it, seat the loser's successor(s), archive the loser."""

    epoch_no: int
    loser_id: UUID
    seat: Seat | None
    needed: int
    record: EpochRecord
    loser_notes: list[dict[str, Any]]
    done: asyncio.Future[Arrivals]


@dataclass
class TopUp:
    """A resumed book short of agents: seat newcomers for the deaths that have none."""

    epoch_no: int
    replaces: list[UUID | None]
    done: asyncio.Future[Arrivals]


@dataclass
class Archive:
    """Archive a dead agent (closing its runner, if it was seated)."""

    agent_id: UUID
    seat: Seat | None


@dataclass
class Log:
    events: list[ReaperEvent]


STOP = object()
"""Asks the daemon to end once the jobs queued before it are done."""
