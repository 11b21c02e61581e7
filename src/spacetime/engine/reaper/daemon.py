"""The Reaper daemon: its lifecycle, the Director's hooks at each epoch boundary and the queue of work it does off
the loop (see the package docs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from spacetime.adapters.pg.notify import POLL_S
from spacetime.adapters.pg.store import Store
from spacetime.book import BookConfig
from spacetime.domain import Agent, Book, EpochRecord, ReaperEvent, ReplacementKind
from spacetime.engine.events import AgentEntered, Listener, SuccessionFailed
from spacetime.engine.reaper.jobs import STOP, Archive, Arrivals, Eliminated, Log, TopUp
from spacetime.engine.reaper.notes import LivingNotes
from spacetime.engine.reaper.succession import Succession
from spacetime.engine.reaper.swaps import SwapIntake
from spacetime.engine.reaper.tasks import finish
from spacetime.engine.reaper.values import Census, Newcomer, ReaperStats
from spacetime.engine.seats import Seat
from spacetime.errors import ModelHostCrashed, StoreError

if TYPE_CHECKING:
    from spacetime.engine.models import ModelPool

log = logging.getLogger("spacetime.reaper")

STOP_PATIENCE_S = 30.0
"""How long ``stop`` lets the daemon finish its queued work (and then a cancelled task end)."""
PREP_PATIENCE_S = 5.0
"""How long ``stop`` waits for a cancelled preparation to end."""


class ReaperState(StrEnum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    """Finishing the queued work; nothing new is prepared."""
    STOPPED = "stopped"


class Reaper:
    """See the module docs. The Director calls ``start()``, then per epoch ``roster = ready(roster)`` before the
    burst, ``memories()`` for the draft prompts and ``roster = epoch_committed(record, roster, names)`` after the
    commit, and ``stop()`` at the end."""

    def __init__(
        self,
        store: Store,
        book: Book,
        config: BookConfig,
        seat_for: Callable[[Agent], Seat],
        emit: Listener,
        *,
        models: ModelPool | None = None,
        poll_s: float = POLL_S,
        listen: bool = True,
        prep_grace_s: float = 0.0,
        ahead: int = 2,
    ) -> None:
        self.store = store
        self.book = book
        self.config = config
        self.emit = emit
        self.poll_s = poll_s
        self.listen = listen
        self.prep_grace_s = prep_grace_s
        """How long a boundary may wait for a successor still being prepared (0: never; take a quick one)."""
        self.stats = ReaperStats()
        self.target = len(config.roster)
        self.state = ReaperState.NEW
        self._census = Census()
        self._notes = LivingNotes()
        self._succession = Succession(store, book, config, models, seat_for, self._census, self.stats,
                                      lambda: self._swaps.awaited(), ahead=ahead)  # fmt: skip
        self._swaps = SwapIntake(store, book.book_id, self._succession.newcomer, self.stats,
                                 self._succession.leftovers)  # fmt: skip
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._daemon: asyncio.Task[None] | None = None
        self._passed = asyncio.Event()
        """Set while no boundary is in progress: the daemon's follow-up work waits for it, so that it does not
        compete for the event loop with the boundary it just served."""
        self._passed.set()
        self._boundary: list[asyncio.Future[Arrivals]] = []
        self._committed_stall = 0.0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Restore memories (catching up on notes a stopped book had not saved), archive and replace any dead agent
        left behind, start the daemon and the swap listener, and begin preparing the first successors."""
        if self.state not in (ReaperState.NEW, ReaperState.STOPPED):
            return
        self.state = ReaperState.RUNNING
        self._queue = asyncio.Queue()
        book_id = self.book.book_id
        self._census.epochs = await self.store.epoch_count(book_id)
        agents = await self.store.agents(book_id)
        self._census.barred = {a.name for a in agents}
        self._census.names = {a.agent_id: a.name for a in agents}
        await self._notes.restore(self.store.notes, book_id, self._census.epochs)
        self._daemon = asyncio.create_task(self._run(), name=f"reaper:{self.book.name}")
        for agent_id in await self.store.roster.unarchived_dead(book_id):
            self._queue.put_nowait(Archive(agent_id, None))
        living = self._notes.living
        if living < self.target:
            dead = [a for a, _ in await self.store.roster.unreplaced_dead(book_id)]
            replaces: list[UUID | None] = [dead[i] if i < len(dead) else None for i in range(self.target - living)]
            done = asyncio.get_running_loop().create_future()
            self._boundary.append(done)
            self._queue.put_nowait(TopUp(self._census.epochs, replaces, done))
        await self._swaps.notice()
        if self.listen:
            self.store.swaps.listener.join(book_id, self._swaps.notice, self.poll_s)
        self._succession.keep_ahead()

    async def stop(self) -> None:
        """Finish the queued work (memories, archives, newcomers already decided), then release everything."""
        if self.state is not ReaperState.RUNNING:
            return
        self.state = ReaperState.STOPPING
        if self.listen:
            await self.store.swaps.listener.leave(self.book.book_id)
        self._passed.set()
        if self._daemon is not None:
            self._queue.put_nowait(STOP)  # asked: the daemon ends once the work queued before it is done
            await finish([self._daemon], patience_s=STOP_PATIENCE_S, cancel=False)
            self._daemon = None
        await self._swaps.stop(PREP_PATIENCE_S)
        await self._succession.stop(PREP_PATIENCE_S)
        leftovers = self._succession.leftovers
        late: list[ReaperEvent] = []
        for done in self._boundary:  # newcomers stored but never seated (the book stopped): they are alive in the DB
            if done.done() and not done.cancelled() and done.exception() is None:
                for newcomer, replaced in done.result():
                    leftovers.append(newcomer)
                    late.append(self._event(newcomer, replaced, _arrival(replaced), None))
        self._boundary.clear()
        with contextlib.suppress(StoreError):
            await self.store.reaper_log.record(self.book.book_id, late)
        for newcomer in leftovers:
            await newcomer.seat.runner.close()
        leftovers.clear()
        self.state = ReaperState.STOPPED

    # ------------------------------------------------------------------ the Director's hooks
    def memories(self) -> dict[UUID, tuple[str, ...]]:
        """Living agent id → its notes, oldest first (what the draft prompt shows)."""
        return self._notes.texts()

    async def epoch_committed(
        self, record: EpochRecord, roster: Mapping[UUID, Seat], names: Mapping[UUID, str]
    ) -> dict[UUID, Seat]:
        """The roster without the loser; the elimination goes to the daemon. Does no I/O: the loop goes on."""
        t0 = time.perf_counter()
        self._census.epochs = max(self._census.epochs, record.epoch_no)
        self._census.names.update(names)
        loser = record.decision.loser_id
        remaining = {agent_id: seat for agent_id, seat in roster.items() if agent_id != loser}
        self._passed.clear()
        done = asyncio.get_running_loop().create_future()
        self._boundary.append(done)
        notes = self._notes.drop(loser)  # gone from the living book at once; archived with its last note
        event = Eliminated(record.epoch_no, loser, roster.get(loser), max(0, self.target - len(remaining)), record,
                           notes, done)  # fmt: skip
        if self._daemon is None:  # not started (used without the daemon): do the work inline
            await self._on_eliminated(event)
        else:
            self._queue.put_nowait(event)
        self._committed_stall = time.perf_counter() - t0
        return remaining

    async def ready(self, roster: Mapping[UUID, Seat]) -> dict[UUID, Seat]:
        """Before a burst: the roster with the newcomers of the last boundary seated and the operator swaps queued
        so far applied."""
        try:
            return await self._ready(dict(roster))
        finally:
            self._passed.set()

    async def _ready(self, roster: dict[UUID, Seat]) -> dict[UUID, Seat]:
        t0 = time.perf_counter()
        epochs = self._census.epochs
        entered: list[tuple[Newcomer, UUID | None, ReplacementKind]] = []
        failures: list[Exception] = []
        boundary, self._boundary = self._boundary, []
        try:
            for done in boundary:
                try:
                    arrivals = await done
                except ModelHostCrashed:  # the model is gone for good: so is this run (reported once, by the loop)
                    raise
                except Exception as exc:  # a successor could not be seated: never a reason to stop the book
                    failures.append(exc)
                    continue
                for newcomer, replaced in arrivals:
                    roster[newcomer.agent.agent_id] = newcomer.seat
                    entered.append((newcomer, replaced, _arrival(replaced)))
            if failures:
                self._succession_failed(failures[-1], roster)
            async for swap, newcomer in self._swaps.apply(epochs):
                out_seat = roster.pop(swap.out_agent_id, None)
                roster[newcomer.agent.agent_id] = newcomer.seat
                self._notes.drop(swap.out_agent_id)
                self._census.barred.add(newcomer.persona.name)
                self._census.names[newcomer.agent.agent_id] = newcomer.persona.name
                self._queue.put_nowait(Archive(swap.out_agent_id, out_seat))
                entered.append((newcomer, swap.out_agent_id, ReplacementKind.SWAP))
        except BaseException:  # the roster is not handed back: what entered is released when the Reaper stops
            self._succession.leftovers.extend(newcomer for newcomer, _, _ in entered)
            raise
        if not entered:
            self._committed_stall = 0.0
            return roster
        stall_ms = (time.perf_counter() - t0 + self._committed_stall) * 1000
        self.stats.stalls_ms.append(stall_ms)
        self.stats.committed_ms.append(self._committed_stall * 1000)
        self.stats.arrivals += len(entered)
        events = []
        for newcomer, replaced, kind in entered:
            if kind is ReplacementKind.SWAP:
                self._announce([(newcomer, replaced)], epochs)
            events.append(self._event(newcomer, replaced, kind, stall_ms))
        log.info("boundary after epoch %d: %d newcomer(s), loop waited %.2f ms", epochs, len(entered), stall_ms)
        self._committed_stall = 0.0
        self._queue.put_nowait(Log(events))
        return roster

    def _succession_failed(self, exc: Exception, roster: Mapping[UUID, Seat]) -> None:
        """Go on with the roster as it is. The missing seats are filled at the next boundary: an elimination
        seats as many newcomers as the book is short (``Eliminated.needed``), not just one."""
        log.warning("the Reaper could not seat a successor (%s); %d agent(s) play on", exc, len(roster))
        self.emit(SuccessionFailed(str(exc), len(roster)))

    def _event(self, newcomer: Newcomer, replaced: UUID | None, kind: ReplacementKind,
               stall_ms: float | None) -> ReaperEvent:  # fmt: skip
        return ReaperEvent(self._census.epochs, kind, replaced, newcomer.agent.agent_id, newcomer.source,
                           newcomer.prepared_s, stall_ms, newcomer.note)  # fmt: skip

    # ------------------------------------------------------------------ the daemon
    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            if job is STOP:
                return
            try:
                if isinstance(job, Eliminated):
                    await self._on_eliminated(job)
                elif isinstance(job, TopUp):
                    await self._on_top_up(job)
                elif isinstance(job, Archive):
                    await self._archive(job.agent_id, job.seat)
                elif isinstance(job, Log):
                    await self.store.reaper_log.record(self.book.book_id, job.events)
            except Exception as exc:  # keep the daemon alive; the loop sees failures through the futures
                if not isinstance(exc, ModelHostCrashed):  # the loop reports a dead model host itself, once
                    log.exception("reaper job %s failed", type(job).__name__)
                done = getattr(job, "done", None)
                if done is not None and not done.done():
                    done.set_exception(exc)

    async def _seat(self, epoch_no: int, replaced: UUID | None) -> tuple[Newcomer, UUID | None]:
        return await self._succession.seat(epoch_no, replaced, grace_s=self.prep_grace_s), replaced

    def _keep_ahead(self) -> None:
        if self.state is ReaperState.RUNNING:
            self._succession.keep_ahead()

    async def _on_eliminated(self, job: Eliminated) -> None:
        async def seat_all() -> Arrivals:
            return [await self._seat(job.epoch_no, job.loser_id if i == 0 else None)
                    for i in range(job.needed)]  # fmt: skip

        seating = asyncio.create_task(seat_all())
        await asyncio.sleep(0)  # the INSERT goes out; the notes are written while the database works
        try:
            notes = self._notes.remember(job.record, self._census.names, job.loser_notes)
        except BaseException as exc:
            self._fail(job.done, exc, seating)
            raise
        try:
            arrivals = await seating
        except ModelHostCrashed as exc:
            self._fail(job.done, exc, seating)
            raise
        except Exception as exc:  # no successor: the loop goes on short-handed (``_ready``); the loser is still
            self._fail(job.done, exc, seating)  # noted and archived below
            log.warning("no successor for the loser of epoch %d: %s", job.epoch_no, exc)
            arrivals = []
        except BaseException as exc:
            self._fail(job.done, exc, seating)
            raise
        if not job.done.done():  # the waiting loop may have been cancelled (Ctrl-C): nobody wants the result
            job.done.set_result(arrivals)
        self._announce(arrivals, job.epoch_no)
        if self._daemon is not None:  # the rest waits until the next burst is under way
            await self._passed.wait()
        self._keep_ahead()
        await self.store.notes.save(notes)
        await self._archive(job.loser_id, job.seat)

    @staticmethod
    def _fail(done: asyncio.Future[Arrivals], exc: BaseException, seating: asyncio.Task[Arrivals]) -> None:
        seating.cancel()
        if not done.done():
            done.set_exception(exc)
            # a loop cancelled meanwhile (Ctrl-C, a bench window closing) never awaits it: mark the exception seen,
            # or asyncio prints "Future exception was never retrieved" and a traceback at exit (it is logged above)
            done.exception()

    async def _on_top_up(self, job: TopUp) -> None:
        try:
            arrivals = [await self._seat(job.epoch_no, replaced) for replaced in job.replaces]
        except BaseException as exc:
            if not job.done.done():
                job.done.set_exception(exc)
            raise
        if not job.done.done():
            job.done.set_result(arrivals)
        self._announce(arrivals, job.epoch_no)
        self._keep_ahead()

    def _announce(self, arrivals: Sequence[tuple[Newcomer, UUID | None]], epoch_no: int) -> None:
        for newcomer, replaced in arrivals:
            gone = None if replaced is None else self._census.names.get(replaced)
            self.emit(AgentEntered(newcomer.persona.name, gone, newcomer.persona.origin.value, epoch_no))

    async def _archive(self, agent_id: UUID, seat: Seat | None) -> None:
        conversation: dict[str, Any] = {}
        if seat is not None:
            with contextlib.suppress(RuntimeError):
                conversation = dict(await seat.runner.assistant.save_state())
            await seat.runner.close()  # the AutoGen agent and its model adapter go; the shared endpoint stays
        await self.store.roster.archive(agent_id, conversation)


def _arrival(replaced: UUID | None) -> ReplacementKind:
    """How a newcomer seated by the daemon entered: in a dead agent's place, or topping up a resumed book."""
    return ReplacementKind.ELIMINATION if replaced is not None else ReplacementKind.TOP_UP
