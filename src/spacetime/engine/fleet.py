"""Many books on many machines: ``spacetime submit`` / ``worker`` / ``pause`` / ``resume`` / ``cancel``.

A submitted book is a row of ``book_jobs`` (how many epochs it should reach, whether it may go on) and ONE epoch
workflow enqueued on DBOS's ``spacetime-books`` queue. A worker — any process pointed at the same database with
its own executor id — takes it, plays the epoch (``hosting.Host``), and the workflow enqueues the next epoch
unless the book is paused, cancelled or done. See docs/scale-out.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from spacetime.adapters.pg.connect import prepare
from spacetime.adapters.pg.jobs import JobState
from spacetime.adapters.pg.store import Store, open_store
from spacetime.book import EndpointSpec
from spacetime.config import Settings
from spacetime.domain import Book
from spacetime.engine.durable import Durable, EpochRun, Fleet, QueuedModel, fleet_client
from spacetime.engine.events import EpochCommitted, Listener, ignore
from spacetime.engine.hosting import Host, stored_config
from spacetime.engine.models import SharedModels
from spacetime.engine.play import BookPlan, _find_or_create
from spacetime.engine.trust import EndpointTrust
from spacetime.errors import ConfigError
from spacetime.ports import ChatModel

log = logging.getLogger("spacetime.fleet")


class FleetState(StrEnum):
    """What ``spacetime status`` says of a fleet book."""

    WAITING = "waiting"
    PLAYING = "playing"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Submitted:
    name: str
    first_epoch: int
    target_epoch: int


def endpoint_limits(book: Book) -> list[int]:
    config = stored_config(book.config, book.name, book.topic, book.outline)
    return [spec.concurrency for spec in config.endpoints.values()]


async def submit(
    settings: Settings, plans: Sequence[BookPlan], *, epochs: int, max_tokens: int | None, seed: int | None
) -> list[Submitted]:
    """Create (or find) each planned book, ask for ``epochs`` more epochs of it and enqueue its next epoch.
    Every plan is checked before anything is enqueued."""
    for plan in plans:
        if plan.error is not None:
            raise plan.error
    url = prepare(settings)
    done: list[Submitted] = []
    async with open_store(url, max_size=2) as store:
        found = []
        for plan in plans:
            book, _config = await _find_or_create(store, plan.name, plan.config, max_tokens=max_tokens, seed=seed,
                                                  seed_offset=plan.seed_offset)  # fmt: skip
            found.append(book)
        fleet = await asyncio.to_thread(Fleet, url)
        try:
            limits = sorted({k for book in found for k in endpoint_limits(book)})
            await asyncio.to_thread(fleet.ensure_queues, limits)
            for book in found:
                played = await store.epoch_count(book.book_id)
                target = played + epochs
                await store.jobs.submit(book.book_id, target)
                await asyncio.to_thread(fleet.enqueue_epoch, book.book_id, played + 1)
                done.append(Submitted(book.name, played + 1, target))
        finally:
            fleet.close()
    return done


async def control(settings: Settings, name: str, action: JobState) -> str:
    """Pause, resume (``QUEUED``) or cancel a fleet book; the line to print."""
    url = prepare(settings)
    async with open_store(url, max_size=2) as store:
        book = await store.get_book(name)
        if book is None:
            raise ConfigError(f"no book named {name!r}: `spacetime status` lists the books")
        job = await store.jobs.get(book.book_id)
        if job is None:
            raise ConfigError(f"book {name!r} was not submitted to the fleet: `spacetime submit` it first")
        if action is JobState.QUEUED and job.state is JobState.CANCELLED:
            raise ConfigError(f"book {name!r} was cancelled: `spacetime submit` it again to play more epochs")
        played = await store.epoch_count(book.book_id)
        fleet = await asyncio.to_thread(Fleet, url)
        try:
            if action is JobState.QUEUED:
                if played >= job.target_epoch:
                    return f"book {name!r} already has its {job.target_epoch} epochs"
                await store.jobs.set_state(book.book_id, JobState.QUEUED)
                await asyncio.to_thread(fleet.ensure_queues, endpoint_limits(book))
                await asyncio.to_thread(fleet.enqueue_epoch, book.book_id, played + 1)
                return f"resumed {name!r} at epoch {played + 1} of {job.target_epoch}"
            await store.jobs.set_state(book.book_id, action)
            if action is JobState.CANCELLED:
                await asyncio.to_thread(fleet.cancel, book.book_id)
                return f"cancelled {name!r} after {played} epoch(s); its chapters stay"
            return f"pausing {name!r}: the epoch in flight finishes, then it waits for `spacetime resume`"
        finally:
            fleet.close()


def fleet_state(job_state: JobState | None, runs: Sequence[EpochRun]) -> FleetState | None:
    """A fleet book's state from its job and its epoch workflows (``None``: never submitted)."""
    if job_state is None:
        return None
    statuses = {r.status for r in runs}
    if "PENDING" in statuses:
        return FleetState.PLAYING
    if job_state is JobState.QUEUED:
        if "ENQUEUED" in statuses or "DELAYED" in statuses:
            return FleetState.WAITING
        latest = max(runs, key=lambda r: r.epoch_no, default=None)
        return FleetState.FAILED if latest is not None and latest.status == "ERROR" else FleetState.WAITING
    return {JobState.PAUSED: FleetState.PAUSED, JobState.CANCELLED: FleetState.CANCELLED,
            JobState.DONE: FleetState.DONE}[job_state]  # fmt: skip


async def fleet_states(store: Store, url: str) -> dict[UUID, FleetState]:
    """Book id → fleet state, for every submitted book."""
    jobs = await store.jobs.all()
    if not jobs:
        return {}
    fleet = await asyncio.to_thread(Fleet, url)
    try:
        runs = await asyncio.to_thread(fleet.runs)
    finally:
        fleet.close()
    by_book: dict[str, list[EpochRun]] = {}
    for run in runs:
        by_book.setdefault(run.workflow_id.split(":")[1], []).append(run)
    states = {}
    for book_id, job in jobs.items():
        state = fleet_state(job.state, by_book.get(str(book_id), []))
        if state is not None:
            states[book_id] = state
    return states


async def work(
    settings: Settings,
    *,
    executor_id: str,
    books_at_once: int,
    adopt: Sequence[str] = (),
    emit_for: Callable[[str], Listener] = lambda _name: ignore,
    stop: asyncio.Event | None = None,
    trust: EndpointTrust | None = None,
) -> None:
    """Be a worker until ``stop`` is set (or the task is cancelled): take fleet books' epochs and model calls.
    ``adopt``: executor ids of dead workers whose pending epochs are handed to the fleet first. ``trust``: which
    endpoints read from the database it builds (by default only the package's embedded model: a book on another
    endpoint then fails with one line)."""
    url = prepare(settings)
    fleet = await asyncio.to_thread(Fleet, url)
    client = await asyncio.to_thread(fleet_client, url)

    def queued(spec: EndpointSpec, model: ChatModel) -> ChatModel:
        return QueuedModel(spec, model, client) if spec.kind == "openai" else model  # embedded: this machine's

    shared = SharedModels(wrap=queued)
    try:
        await asyncio.to_thread(fleet.ensure_queues, [], books_per_worker=books_at_once)
        if adopt:
            adopted = await asyncio.to_thread(fleet.recover, adopt)
            log.warning("handed %d pending epoch(s) of %s to the fleet", adopted, ", ".join(adopt))
        async with open_store(url, max_size=4 + 2 * books_at_once) as store:
            host = Host(store, shared, emit_for=emit_for, trust=trust or EndpointTrust())
            async with Durable(url, host, executor_id=executor_id, fleet=True) as engine:
                host.engine = engine
                await (stop or asyncio.Event()).wait()
    finally:
        await shared.aclose()
        fleet.close()
        client.destroy()


def committed_line(book: str, event: object) -> str | None:
    if isinstance(event, EpochCommitted):
        return (
            f"{book}: epoch {event.epoch_no} committed: {event.winner} wins, {event.loser} out ({event.wall_s:.1f} s)"
        )
    return None
