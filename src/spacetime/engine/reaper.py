"""The Reaper: a long-lived asyncio daemon beside the Tournament Director.

It is fed by events — an elimination decided by the collapse (``epoch_committed``), an operator swap requested from
another terminal (``spacetime swap``: a row in ``swap_requests`` and a NOTIFY on ``spacetime_swap``, also polled) —
and keeps the roster full without holding up the epoch loop:

* **ahead of time** (while the current epoch drafts and judges) it prepares the next newcomer: picks it from the
  reserve pool (queue, random, or the most different from the living roster by pgvector distance between persona
  descriptions) or, when the pool is dry, breeds one with the LLM from the best-rated personas (structured output,
  validated, a deterministic fallback after a few rejected answers); it embeds it and builds its ``PersonaAgent``;
* **at the boundary** (epoch committed → next burst) the loop only waits for one INSERT per newcomer and one
  transaction per operator swap: ``ready(seats)`` hands the newcomers to the roster; the time the loop waited is
  measured (``stats.stalls_ms``, ``reaper_events.stall_ms``);
* **after the boundary**, off the loop, it saves every agent's memory notes, archives the dead agent (memory, AutoGen
  state, final rating, cause of death: ``agent_archive``, append-only), releases its AutoGen agent and logs the
  replacement.

If the successor being prepared is not ready at the boundary (a slow model still breeding), the Reaper does not
wait: it takes the next reserve persona or a deterministic bred child, and keeps the slow one for the next death.

The roster size stays ``len(config.roster)``: a death is replaced one for one, a swap one for one, and a book that
was stopped between a death and its replacement is topped up when it resumes. An agent dies once: dead agents are
never seated again (``agents`` has one row per persona and book).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg

from spacetime.adapters.pg import reaper_store as rs
from spacetime.adapters.pg.store import Store
from spacetime.book import BookConfig
from spacetime.domain import Agent, Book, EpochRecord, Persona
from spacetime.engine.events import AgentEntered, Listener
from spacetime.engine.seats import Seat
from spacetime.errors import ModelError, ModelHostCrashed, SpacetimeError
from spacetime.ports import Message
from spacetime.rules import breeding
from spacetime.rules import memory as mem
from spacetime.rules.rating import INITIAL_RATING

if TYPE_CHECKING:
    from spacetime.engine.models import ModelPool

log = logging.getLogger("spacetime.reaper")

POLL_S = 5.0
"""The swap queue is polled this often besides LISTEN (a missed notification costs at most this delay)."""
BREEDER_SYSTEM = "You design characters for a book. You answer with JSON only."


@dataclass
class Newcomer:
    """A persona ready to enter: its seat (with a pre-generated agent id) is built, nothing is stored yet."""

    persona: Persona
    seat: Seat
    source: str
    """reserve, bred, bred-fallback or operator."""
    prepared_s: float
    note: str | None = None
    embedding: tuple[str, list[float]] | None = None


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
class _Eliminated:
    epoch_no: int
    loser_id: UUID
    seat: Seat | None
    needed: int
    record: EpochRecord
    loser_notes: list[dict[str, Any]]
    done: asyncio.Future[list[tuple[Newcomer, UUID | None]]]


@dataclass
class _TopUp:
    epoch_no: int
    replaces: list[UUID | None]
    done: asyncio.Future[list[tuple[Newcomer, UUID | None]]]


@dataclass
class _Archive:
    agent_id: UUID
    seat: Seat | None


@dataclass
class _Log:
    events: list[rs.ReaperEvent]


_STOP = object()


class Reaper:
    """See the module docs. The Director calls ``start()``, then per epoch ``ready(seats)`` before the burst,
    ``memories()`` for the draft prompts and ``epoch_committed(record, seats, names)`` after the commit, and
    ``stop()`` at the end."""

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
        self.seat_for = seat_for
        self.emit = emit
        self.models = models
        self.poll_s = poll_s
        self.listen = listen
        self.prep_grace_s = prep_grace_s
        """How long a boundary may wait for a successor still being prepared (0: never; take a quick one)."""
        self.ahead = max(1, ahead)
        """Newcomers kept in preparation."""
        self.rng = random.Random(config.seed)
        self.stats = ReaperStats()
        self.target = len(config.roster)
        self._memory: dict[UUID, list[dict[str, Any]]] = {}
        self._epochs = 0
        self._book_names: set[str] = set()
        """Names of every agent of the book, living or dead (a persona plays a book once)."""
        self._names: dict[UUID, str] = {}
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._daemon: asyncio.Task[None] | None = None
        self._hub: SwapHub | None = None
        self._ahead: list[asyncio.Task[Newcomer]] = []
        self._claimed: dict[str, str] = {}
        """Name → discipline of the newcomers prepared (or being prepared) and not seated yet."""
        self._passed = asyncio.Event()
        """Set while no boundary is in progress: the daemon's follow-up work waits for it, so that it does not
        compete for the event loop with the boundary it just served."""
        self._passed.set()
        self._boundary: list[asyncio.Future[list[tuple[Newcomer, UUID | None]]]] = []
        self._swaps: dict[UUID, tuple[rs.SwapRequest, asyncio.Task[Newcomer]]] = {}
        self._swap_lock = asyncio.Lock()
        self._choosing = asyncio.Lock()
        self._committed_stall = 0.0
        self._unused: list[Newcomer] = []
        self._started = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Restore memories (catching up on notes a stopped book had not saved), archive and replace any dead agent
        left behind, start the daemon and the swap listener, and begin preparing the first successor."""
        if self._started:
            return
        self._started = True
        book_id = self.book.book_id
        self._epochs = await self.store.epoch_count(book_id)
        agents = await self.store.agents(book_id)
        self._book_names = {a.name for a in agents}
        self._names = {a.agent_id: a.name for a in agents}
        self._memory = {a: mem.parse_memory(raw) for a, raw in (await rs.load_memories(self.store, book_id)).items()}
        await self._catch_up_memories()
        self._daemon = asyncio.create_task(self._run(), name=f"reaper:{self.book.name}")
        for agent_id in await rs.unarchived_dead(self.store, book_id):
            self._queue.put_nowait(_Archive(agent_id, None))
        living = len(self._memory)
        if living < self.target:
            dead = [a for a, _ in await rs.unreplaced_dead(self.store, book_id)]
            replaces: list[UUID | None] = [dead[i] if i < len(dead) else None for i in range(self.target - living)]
            done = asyncio.get_running_loop().create_future()
            self._boundary.append(done)
            self._queue.put_nowait(_TopUp(self._epochs, replaces, done))
        await self._notice_swaps()
        if self.listen:
            self._hub = SwapHub.join(self.store, self.book.book_id, self._notice_swaps, self.poll_s)
        self._ensure_prep()

    async def _catch_up_memories(self) -> None:
        """Rebuild, from the stored epochs, the notes a stopped book had not saved yet (only the last
        ``MAX_NOTES`` epochs can matter)."""
        stale = {a for a, notes in self._memory.items() if mem.last_epoch(notes) < self._epochs}
        if not stale:
            return
        oldest = min(mem.last_epoch(self._memory[a]) for a in stale) + 1
        changed: set[UUID] = set()
        for epoch_no in range(max(oldest, self._epochs - mem.MAX_NOTES + 1, 1), self._epochs + 1):
            stored = await rs.stored_epoch(self.store, self.book.book_id, epoch_no)
            if stored is None:
                continue
            for agent_id, fb in mem.feedback_from_stored(stored).items():
                if agent_id in stale and mem.last_epoch(self._memory[agent_id]) < epoch_no:
                    self._memory[agent_id] = mem.remember(self._memory[agent_id], fb)
                    changed.add(agent_id)
        await rs.save_memories(self.store, [(a, self._memory[a]) for a in changed])

    async def stop(self) -> None:
        """Finish the queued work (memories, archives, newcomers already decided), then release everything."""
        if not self._started:
            return
        self._started = False
        if self._hub is not None:
            await self._hub.leave(self.book.book_id)
            self._hub = None
        self._passed.set()
        if self._daemon is not None:
            self._queue.put_nowait(_STOP)
            with contextlib.suppress(asyncio.CancelledError):
                await self._daemon
            self._daemon = None
        tasks = [t for _, t in self._swaps.values()] + self._ahead
        self._swaps.clear()
        self._ahead = []
        for task in tasks:
            await _finish(task)
            if task.done() and not task.cancelled() and task.exception() is None:
                self._unused.append(task.result())
        late: list[rs.ReaperEvent] = []
        for done in self._boundary:  # newcomers stored but never seated (the book stopped): they are alive in the DB
            if done.done() and not done.cancelled() and done.exception() is None:
                for newcomer, replaced in done.result():
                    self._unused.append(newcomer)
                    late.append(rs.ReaperEvent(self._epochs, "elimination" if replaced else "top-up", replaced,
                                               newcomer.seat.agent.agent_id, newcomer.source, newcomer.prepared_s,
                                               None, newcomer.note))  # fmt: skip
        self._boundary.clear()
        with contextlib.suppress(psycopg.Error):
            await rs.log_events(self.store, self.book.book_id, late)
        for newcomer in self._unused:
            await newcomer.seat.runner.close()
        self._unused.clear()

    # ------------------------------------------------------------------ the Director's hooks
    def memories(self) -> dict[UUID, tuple[str, ...]]:
        """Living agent id → its notes, oldest first (what the draft prompt shows)."""
        return {agent_id: mem.texts(notes) for agent_id, notes in self._memory.items() if notes}

    async def epoch_committed(self, record: EpochRecord, seats: dict[UUID, Seat], names: dict[UUID, str]) -> None:
        """Take the loser off the table and hand the elimination to the daemon. Does no I/O: the loop goes on."""
        t0 = time.perf_counter()
        self._epochs = max(self._epochs, record.epoch_no)
        self._names.update(names)
        loser = record.decision.loser_id
        seat = seats.pop(loser, None)
        self._passed.clear()
        done = asyncio.get_running_loop().create_future()
        self._boundary.append(done)
        notes = self._memory.pop(loser, [])  # gone from the living book at once; archived with its last note
        event = _Eliminated(record.epoch_no, loser, seat, max(0, self.target - len(seats)), record, notes, done)
        if self._daemon is None:  # not started (used without the daemon): do the work inline
            await self._on_eliminated(event)
        else:
            self._queue.put_nowait(event)
        self._committed_stall = time.perf_counter() - t0

    async def ready(self, seats: dict[UUID, Seat]) -> None:
        """Before a burst: seat the newcomers of the last boundary and apply the operator swaps queued so far."""
        try:
            await self._ready(seats)
        finally:
            self._passed.set()

    async def _ready(self, seats: dict[UUID, Seat]) -> None:
        t0 = time.perf_counter()
        entered: list[tuple[Newcomer, UUID | None, str]] = []
        boundary, self._boundary = self._boundary, []
        for done in boundary:
            for newcomer, replaced in await done:
                seats[newcomer.seat.agent.agent_id] = newcomer.seat
                entered.append((newcomer, replaced, "elimination" if replaced is not None else "top-up"))
        for swap_id, (swap, task) in list(self._swaps.items()):
            del self._swaps[swap_id]
            try:
                newcomer = await task
            except SpacetimeError as exc:
                await rs.reject_swap(self.store, swap_id, str(exc))
                self.stats.swaps_rejected += 1
                continue
            result = await rs.apply_swap(
                self.store, swap, newcomer.seat.agent.agent_id, epoch_no=self._epochs,
                rating=newcomer.seat.agent.rating, model=newcomer.seat.agent.model,
            )  # fmt: skip
            if not result.applied:
                log.warning("swap %s → %s rejected: %s", swap.out_name, swap.persona.name, result.reason)
                self.stats.swaps_rejected += 1
                self._unused.append(newcomer)
                continue
            self.stats.swaps_applied += 1
            newcomer.seat.agent = replace(newcomer.seat.agent, born_epoch=self._epochs)
            out_seat = seats.pop(swap.out_agent_id, None)
            seats[newcomer.seat.agent.agent_id] = newcomer.seat
            self._memory.pop(swap.out_agent_id, None)
            self._book_names.add(newcomer.persona.name)
            self._names[newcomer.seat.agent.agent_id] = newcomer.persona.name
            self._queue.put_nowait(_Archive(swap.out_agent_id, out_seat))
            entered.append((newcomer, swap.out_agent_id, "swap"))
        if not entered:
            self._committed_stall = 0.0
            return
        stall_ms = (time.perf_counter() - t0 + self._committed_stall) * 1000
        self.stats.stalls_ms.append(stall_ms)
        self.stats.committed_ms.append(self._committed_stall * 1000)
        self.stats.arrivals += len(entered)
        events = []
        for newcomer, replaced, kind in entered:
            if kind == "swap":
                self._announce([(newcomer, replaced)], self._epochs)
            events.append(rs.ReaperEvent(self._epochs, kind, replaced, newcomer.seat.agent.agent_id, newcomer.source,
                                         newcomer.prepared_s, stall_ms, newcomer.note))  # fmt: skip
        log.info("boundary after epoch %d: %d newcomer(s), loop waited %.2f ms", self._epochs, len(entered), stall_ms)
        self._committed_stall = 0.0
        self._queue.put_nowait(_Log(events))

    # ------------------------------------------------------------------ the daemon
    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            if job is _STOP:
                return
            try:
                if isinstance(job, _Eliminated):
                    await self._on_eliminated(job)
                elif isinstance(job, _TopUp):
                    await self._on_top_up(job)
                elif isinstance(job, _Archive):
                    await self._archive(job.agent_id, job.seat)
                elif isinstance(job, _Log):
                    await rs.log_events(self.store, self.book.book_id, job.events)
            except Exception as exc:  # keep the daemon alive; the loop sees failures through the futures
                if not isinstance(exc, ModelHostCrashed):  # the loop reports a dead model host itself, once
                    log.exception("reaper job %s failed", type(job).__name__)
                done = getattr(job, "done", None)
                if done is not None and not done.done():
                    done.set_exception(exc)

    async def _on_eliminated(self, job: _Eliminated) -> None:
        async def seat_all() -> list[tuple[Newcomer, UUID | None]]:
            return [await self._seat_newcomer(job.epoch_no, job.loser_id if i == 0 else None)
                    for i in range(job.needed)]  # fmt: skip

        seating = asyncio.create_task(seat_all())
        await asyncio.sleep(0)  # the INSERT goes out; the notes are written while the database works
        try:
            notes = self._remember(job.record, job.loser_notes)
            arrivals = await seating
        except BaseException as exc:
            seating.cancel()
            if not job.done.done():
                job.done.set_exception(exc)
            raise
        if not job.done.done():  # the waiting loop may have been cancelled (Ctrl-C): nobody wants the result
            job.done.set_result(arrivals)
        self._announce(arrivals, job.epoch_no)
        if self._daemon is not None:  # the rest waits until the next burst is under way
            await self._passed.wait()
        self._ensure_prep()
        await rs.save_memories(self.store, notes)
        await self._archive(job.loser_id, job.seat)

    def _remember(
        self, record: EpochRecord, loser_notes: list[dict[str, Any]]
    ) -> list[tuple[UUID, list[dict[str, Any]]]]:
        """Each agent of the epoch gets its note (the loser's last note goes to ``agents.memory`` and the archive,
        not back into the living book). Returns the notes to save."""
        loser = record.decision.loser_id
        saved = []
        for agent_id, fb in mem.feedback_from_record(record, self._names).items():  # every name ever in the book
            if agent_id == loser:
                saved.append((agent_id, mem.remember(loser_notes, fb)))
            else:  # every other agent of the epoch is alive (swaps apply between epochs, after this)
                self._memory[agent_id] = mem.remember(self._memory.get(agent_id, []), fb)
                saved.append((agent_id, self._memory[agent_id]))
        return saved

    async def _on_top_up(self, job: _TopUp) -> None:
        try:
            arrivals = [await self._seat_newcomer(job.epoch_no, replaced) for replaced in job.replaces]
        except BaseException as exc:
            if not job.done.done():
                job.done.set_exception(exc)
            raise
        if not job.done.done():
            job.done.set_result(arrivals)
        self._announce(arrivals, job.epoch_no)
        self._ensure_prep()

    def _announce(self, arrivals: Sequence[tuple[Newcomer, UUID | None]], epoch_no: int) -> None:
        for newcomer, replaced in arrivals:
            gone = None if replaced is None else self._names.get(replaced)
            self.emit(AgentEntered(newcomer.persona.name, gone, newcomer.persona.origin.value, epoch_no))

    async def _seat_newcomer(self, epoch_no: int, replaced: UUID | None) -> tuple[Newcomer, UUID | None]:
        """Store the prepared successor (or a quick one) as a living agent that entered after ``epoch_no``."""
        for _ in range(5):
            newcomer = await self._take_successor()
            agent = replace(newcomer.seat.agent, born_epoch=epoch_no)
            try:
                await rs.insert_agent(
                    self.store, self.book.book_id, agent.agent_id, newcomer.persona, rating=agent.rating,
                    born_epoch=epoch_no, model=agent.model, replaced_agent_id=replaced, embedding=newcomer.embedding,
                )  # fmt: skip
            except SpacetimeError as exc:  # raced by another book or a swap: pick again
                log.info("newcomer %s not seated (%s); picking another", newcomer.persona.name, exc)
                self._claimed.pop(newcomer.persona.name, None)
                self._book_names.add(newcomer.persona.name)
                self._unused.append(newcomer)
                continue
            self._claimed.pop(newcomer.persona.name, None)
            newcomer.seat.agent = agent
            self._book_names.add(newcomer.persona.name)
            self._names[agent.agent_id] = newcomer.persona.name
            if newcomer.source == "bred":
                self.stats.bred += 1
            elif newcomer.source == "bred-fallback":
                self.stats.bred_fallback += 1
            return newcomer, replaced
        raise ModelError("the Reaper could not seat a newcomer after 5 tries")

    async def _archive(self, agent_id: UUID, seat: Seat | None) -> None:
        conversation: dict[str, Any] = {}
        if seat is not None:
            with contextlib.suppress(RuntimeError):
                conversation = dict(await seat.runner.assistant.save_state())
            await seat.runner.close()  # the AutoGen agent and its model adapter go; the shared endpoint stays
        await rs.archive_agent(self.store, agent_id, conversation)

    # ------------------------------------------------------------------ successors
    def _pending_in(self) -> set[str]:
        return {swap.persona.name for swap, _ in self._swaps.values()}

    def _usable(self, persona: Persona) -> bool:
        """Can still enter this book (never played here, not awaited by an operator swap)."""
        return persona.name not in self._book_names and persona.name not in self._pending_in()

    def _free(self, persona: Persona) -> bool:
        """Usable and not already prepared as another newcomer."""
        return self._usable(persona) and persona.name not in self._claimed

    def _claim(self, persona: Persona) -> Persona:
        self._claimed[persona.name] = persona.discipline
        return persona

    def _ensure_prep(self) -> None:
        """Keep ``ahead`` newcomers in preparation (the slow ones, bred by a model, get several epochs)."""
        while self._started and len(self._ahead) < self.ahead:
            self._ahead.append(asyncio.create_task(self._prepare(), name=f"reaper-prepare:{self.book.name}"))

    async def _take_successor(self) -> Newcomer:
        """The first prepared newcomer that is ready, else a quick one (the slow ones stay in preparation)."""
        if self.prep_grace_s > 0 and self._ahead and not any(t.done() for t in self._ahead):
            await asyncio.wait(self._ahead, timeout=self.prep_grace_s, return_when=asyncio.FIRST_COMPLETED)
        for task in list(self._ahead):
            if not task.done():
                continue
            self._ahead.remove(task)
            if task.cancelled():
                continue
            error = task.exception()
            if isinstance(error, ModelHostCrashed):  # the model is gone for good: so is this run
                raise error
            if error is not None:
                log.warning("preparing a newcomer failed: %s", error)
                continue
            newcomer = task.result()
            if self._usable(newcomer.persona):
                return newcomer
            self._claimed.pop(newcomer.persona.name, None)
            self._unused.append(newcomer)
        # none ready: a quick newcomer, no model call, no embedding
        return await self._quick_successor()

    def _reserve_left(self) -> list[Persona]:
        return [p for p in self.config.reserve if self._free(p)]

    def _newcomer(self, persona: Persona, source: str, t0: float, note: str | None = None,
                  embedding: tuple[str, list[float]] | None = None) -> Newcomer:  # fmt: skip
        agent = Agent(uuid.uuid4(), persona, INITIAL_RATING, born_epoch=self._epochs,
                      model=self.config.agent_models.get(persona.name))  # fmt: skip
        return Newcomer(persona, self.seat_for(agent), source, time.perf_counter() - t0, note, embedding)

    async def _taken(self) -> tuple[set[str], set[str]]:
        """Names and disciplines a bred persona may not take: every stored persona's, and those of the newcomers
        being prepared or awaited by a swap."""
        names, disciplines = await rs.persona_names_and_disciplines(self.store)
        return (names | self._pending_in() | set(self._claimed),
                disciplines | set(self._claimed.values()))  # fmt: skip

    async def _quick_successor(self) -> Newcomer:
        t0 = time.perf_counter()
        left = self._reserve_left()
        if left:
            persona = self.rng.choice(left) if self.config.reserve_order == "random" else left[0]
            return self._newcomer(self._claim(persona), "reserve", t0)
        plan = await self._plan()
        names, disciplines = await self._taken()
        child = self._claim(breeding.fallback_persona(plan, names, disciplines))
        return self._newcomer(child, "bred-fallback", t0, _plan_note(plan, ["no time to breed"]))

    async def _prepare(self) -> Newcomer:
        t0 = time.perf_counter()
        async with self._choosing:  # reserve picks happen in the order the preparations were started
            left = self._reserve_left()
            if left and self.config.reserve_order == "diverse":
                living = [a.name for a in await self.store.agents(self.book.book_id, alive_only=True)]
                model = await self._ensure_embeddings([p.name for p in left] + living)
                if model is not None and living:
                    ranked = await rs.most_different(self.store, [p.name for p in left], living, model)
                    by_name = {p.name: p for p in self._reserve_left()}  # again: a swap may have taken one
                    chosen = next((by_name[n] for n in ranked if n in by_name), None)
                    if chosen is not None:
                        return self._newcomer(self._claim(chosen), "reserve", t0)
                left = self._reserve_left()
            if left:
                persona = self.rng.choice(left) if self.config.reserve_order == "random" else left[0]
                return self._newcomer(self._claim(persona), "reserve", t0)
        return await self._breed(t0)

    async def _ensure_embeddings(self, names: Sequence[str]) -> str | None:
        """Embed (once per embedder) the descriptions of the named personas; returns the embedder's name."""
        embedder = self.models.embedder() if self.models is not None else None
        if embedder is None:
            return None
        missing = await rs.personas_without_embedding(self.store, list(dict.fromkeys(names)), embedder.name)
        if missing:
            vectors = await embedder.embed([p.description for p in missing])
            await rs.set_persona_embeddings(self.store, zip([p.name for p in missing], vectors, strict=True),
                                            embedder.name)  # fmt: skip
        return embedder.name

    async def _plan(self) -> breeding.Plan:
        agents = await self.store.agents(self.book.book_id)
        parents = [breeding.Parent(a.persona, a.rating) for a in agents]
        if not parents:
            parents = [breeding.Parent(p, INITIAL_RATING) for p in self.config.roster]
        return breeding.plan_breeding(parents, self.rng)

    async def _breed(self, t0: float) -> Newcomer:
        """Breed a persona with the book's model (structured output), validated; the deterministic child after
        ``BREED_TRIES`` rejected answers or a failing model."""
        plan = await self._plan()
        agents = await self.store.agents(self.book.book_id)
        book_personas = [a.name for a in agents]
        taken_names, disciplines = await self._taken()
        book_disciplines = sorted({a.persona.discipline for a in agents})
        problems: list[str] = []
        model = None
        if self.models is not None:
            with contextlib.suppress(SpacetimeError):
                model = self.models.chat(self.config.model)
        embedder = self.models.embedder() if self.models is not None else None
        if model is not None:
            # all the attempts at once: on a one-at-a-time model they are served together instead of each
            # waiting for a turn behind the epoch's own calls; the first valid answer wins
            prompt = breeding.breed_prompt(plan, sorted(book_personas), book_disciplines)
            seeds = [None if self.config.seed is None else self.rng.randrange(1 << 30)
                     for _ in range(breeding.BREED_TRIES)]  # fmt: skip
            replies = await asyncio.gather(*(
                model.complete(
                    [Message("system", BREEDER_SYSTEM), Message("user", prompt)],
                    max_tokens=breeding.BREED_MAX_TOKENS, json_schema=breeding.BREED_SCHEMA, temperature=0.9,
                    seed=seed,
                ) for seed in seeds), return_exceptions=True)  # fmt: skip
            for reply in replies:
                if isinstance(reply, BaseException):
                    if not isinstance(reply, ModelError):
                        raise reply
                    problems.append(f"model failed: {reply}")
                    continue
                answer = breeding.parse_answer(reply.text)
                if isinstance(answer, str):
                    problems.append(answer)
                    continue
                taken_names, disciplines = await self._taken()  # others may have bred meanwhile
                why = breeding.validate(answer, plan, taken_names, disciplines)
                if why is not None:
                    problems.append(why)
                    continue
                child = self._claim(breeding.bred_persona(answer, plan))
                embedding = None
                if embedder is not None:
                    model_name = await self._ensure_embeddings(book_personas)
                    vector = (await embedder.embed([child.description]))[0]
                    nearest = await rs.nearest_persona(self.store, vector, book_personas, embedder.name)
                    if nearest is not None and nearest[1] > breeding.SIMILARITY_MAX:
                        problems.append(f"{child.name} is a near-duplicate of {nearest[0]} ({nearest[1]:.3f})")
                        self._claimed.pop(child.name, None)
                        continue
                    embedding = (model_name or embedder.name, vector)
                return self._newcomer(child, "bred", t0, _plan_note(plan, problems), embedding)
        else:
            problems.append("no model to breed with")
        taken_names, disciplines = await self._taken()
        child = self._claim(breeding.fallback_persona(plan, taken_names, disciplines))
        embedding = None
        if embedder is not None:
            with contextlib.suppress(SpacetimeError):
                embedding = (embedder.name, (await embedder.embed([child.description]))[0])
        return self._newcomer(child, "bred-fallback", t0, _plan_note(plan, problems), embedding)

    # ------------------------------------------------------------------ operator swaps
    async def _notice_swaps(self) -> None:
        """Read the pending swaps of this book and start preparing each new one's PersonaAgent."""
        async with self._swap_lock:
            for swap in await rs.pending_swaps(self.store, self.book.book_id):
                if swap.swap_id not in self._swaps:
                    task = asyncio.create_task(self._prepare_swap(swap), name=f"reaper-swap:{swap.swap_id}")
                    self._swaps[swap.swap_id] = (swap, task)

    async def _prepare_swap(self, swap: rs.SwapRequest) -> Newcomer:
        return self._newcomer(swap.persona, "operator", time.perf_counter())


class SwapHub:
    """ONE connection per database (and event loop) LISTENs for operator swaps on behalf of every Reaper of the
    process (a process playing 100 books holds one listening connection, not 100). A notification wakes the
    Reaper of its book; every ``poll_s`` each Reaper also re-reads its queue, in case a notification was missed
    (NOTIFY is not replayed, e.g. across a reconnect)."""

    _hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, SwapHub]] = weakref.WeakKeyDictionary()

    def __init__(self, url: str, poll_s: float) -> None:
        self.url = url
        self.poll_s = poll_s
        self.subscribers: dict[UUID, Callable[[], Awaitable[None]]] = {}
        self.task: asyncio.Task[None] | None = None

    @classmethod
    def join(cls, store: Store, book_id: UUID, notice: Callable[[], Awaitable[None]], poll_s: float) -> SwapHub:
        hubs = cls._hubs.setdefault(asyncio.get_running_loop(), {})
        hub = hubs.get(store.url)
        if hub is None:
            hub = hubs[store.url] = SwapHub(store.url, poll_s)
        hub.poll_s = min(hub.poll_s, poll_s)
        hub.subscribers[book_id] = notice
        if hub.task is None or hub.task.done():
            hub.task = asyncio.create_task(hub._run(), name="reaper-swap-listener")
        return hub

    async def leave(self, book_id: UUID) -> None:
        self.subscribers.pop(book_id, None)
        if not self.subscribers:
            hubs = self._hubs.get(asyncio.get_running_loop(), {})
            if hubs.get(self.url) is self:
                del hubs[self.url]
            if self.task is not None:
                await _finish(self.task)
                self.task = None

    async def _wake(self, book_ids: Sequence[UUID]) -> None:
        for book_id in book_ids:
            notice = self.subscribers.get(book_id)
            if notice is None:
                continue
            try:
                await notice()
            except asyncio.CancelledError:
                raise
            except Exception:  # one book's trouble does not stop the others' swaps
                log.exception("reading the swap queue of book %s failed", book_id)

    async def _run(self) -> None:
        while self.subscribers:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {rs.SWAP_CHANNEL}")
                    await self._wake(list(self.subscribers))  # whatever was queued before we listened
                    while self.subscribers:
                        async for note in conn.notifies(timeout=self.poll_s):
                            with contextlib.suppress(ValueError):
                                await self._wake([UUID(note.payload.split(":", 1)[0])])
                        await self._wake(list(self.subscribers))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # lost connection: retry after a pause
                log.warning("swap listener: %s; retrying in %.0f s", exc, self.poll_s)
                await asyncio.sleep(self.poll_s)


async def _finish(task: asyncio.Task[Any], patience_s: float = 5.0) -> None:
    """Cancel ``task`` and wait for it to end. Cancels again while it runs: a cancellation that lands while
    psycopg waits for a pooled connection or a notification can be lost (psycopg/psycopg#1345)."""
    deadline = time.monotonic() + patience_s
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.2)
        if time.monotonic() > deadline:
            log.warning("task %s did not stop", task.get_name())
            return
    if not task.cancelled() and task.exception() is not None:
        log.debug("task %s ended with %r", task.get_name(), task.exception())


def _plan_note(plan: breeding.Plan, problems: Sequence[str]) -> str:
    head = f"{plan.kind} of {' × '.join(p.name for p in plan.parents)}"
    if not problems:
        return head
    return f"{head}; rejected: " + "; ".join(problems)[:400]
