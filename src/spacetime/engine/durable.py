"""Durable epochs on DBOS Transact: the ONLY module that imports ``dbos``.

An epoch of a book is one DBOS workflow whose id is its idempotency key (``epoch:<book id>:<epoch no>``; a
generation suffix ``:<k>`` only after an earlier run of it ended in an error or was cancelled). Every model call of
the epoch — each draft, each ballot and its re-ask, the draft embeddings — is one DBOS step: its answer (or its
``ModelError``) is checkpointed in PostgreSQL the moment it returns, so a process killed anywhere loses only the
calls that were in flight. Steps are *reserved* (``reserve``) in a fixed order before they are fanned out with
``asyncio.gather``, so a replay finds each answer at the same step id whatever order the calls finished in.

What runs the epoch is a :class:`EpochHost` (``spacetime.engine.hosting``): it owns the store, the models and the
Directors of the process. The workflow itself only asks the host to play the epoch and, for a fleet book, records
whether to go on and enqueues the next epoch on :data:`BOOKS_QUEUE` (so a book moves from worker to worker one
epoch at a time). The epoch's commit is ONE transaction of ours and is idempotent (``Store.write_epoch`` on the
``(book_id, epoch_no)`` key): a replay after a commit finds the epoch and writes nothing.

Outside a workflow (tests, benchmarks that build a Director by hand) ``reserve`` hands out pass-through slots and
``sleep`` is ``asyncio.sleep``: the engine behaves exactly as without DBOS.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar
from uuid import UUID

from dbos import DBOS, DBOSClient, SetWorkflowID, StepReservation
from dbos._serialization import DefaultSerializer

from spacetime import __version__
from spacetime.book import EndpointSpec
from spacetime.domain import Completion, EpochOutcome
from spacetime.engine import metering, unpickle
from spacetime.errors import ModelError, ModelHostCrashed, StoreError
from spacetime.ports import ChatModel, Message
from spacetime.redaction import redact

T = TypeVar("T")
log = logging.getLogger("spacetime.durable")

APP_NAME = "spacetime"
SYSTEM_SCHEMA = "dbos"
"""DBOS keeps its tables in this schema of the book database: nothing to set up, one backup."""
BOOKS_QUEUE = "spacetime-books"
"""Fleet books wait here for a worker, one epoch at a time."""
CALLS_QUEUE_PREFIX = "spacetime-calls-"
"""Fleet model calls: ``spacetime-calls-<k>`` is partitioned by endpoint with at most ``k`` calls of one endpoint
running across every worker (one queue per distinct endpoint ``concurrency``)."""
BOOKS_POLL_S = 0.2
CALLS_POLL_S = 0.05
STEP_NAMES = ("spacetime.draft", "spacetime.ballot", "spacetime.reask", "spacetime.embed")

def _restricted_deserialize(_serializer: object, serialized_data: str) -> Any:
    return unpickle.loads(base64.b64decode(serialized_data))


DefaultSerializer.deserialize = _restricted_deserialize  # type: ignore[method-assign,assignment]
"""Every pickle DBOS reads back goes through :mod:`spacetime.engine.unpickle`: DBOS picks the plain pickle reader for
any row marked ``py_pickle`` whatever serializer it was given, so the reader itself is replaced (one class, every
instance: the process's DBOS, a worker's client, the recovery of another executor's workflows)."""

_ENDED = ("ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")


class EpochHost(Protocol):
    """What plays a durable epoch in this process (``spacetime.engine.hosting.Host``)."""

    async def play_epoch(self, book_id: UUID, epoch_no: int) -> EpochOutcome:
        """Play (or, after a crash, finish) epoch ``epoch_no`` of the book and return what it decided."""
        ...

    async def keep_going(self, book_id: UUID, epoch_no: int) -> bool:
        """After epoch ``epoch_no`` of a fleet book: whether to enqueue the next one (not paused, cancelled or
        done); records the book's state."""
        ...

    async def call_model(self, spec: EndpointSpec, messages: Sequence[Message], options: CallOptions) -> Completion:
        """One fleet model call handed to this process by the calls queue: made on this process's model for
        ``spec``."""
        ...


_host: EpochHost | None = None
_client: DBOSClient | None = None
"""A worker's client for enqueuing outside any step record (the next epoch, fleet model calls)."""
_call_key: ContextVar[str | None] = ContextVar("spacetime_call_key", default=None)


def _the_host() -> EpochHost:
    if _host is None:
        raise ModelError("a durable epoch was started in a process that plays no books")
    return _host


def epoch_workflow_id(book_id: UUID | str, epoch_no: int, generation: int = 1) -> str:
    base = f"epoch:{book_id}:{epoch_no}"
    return base if generation == 1 else f"{base}:{generation}"


# --------------------------------------------------------------------------- steps
@dataclass(frozen=True, slots=True)
class Failed:
    """A model call that failed for good, as checkpointed (its ``ModelError`` message)."""

    message: str


class Slot:
    """One model call's place in the epoch's record: a reserved DBOS step, or nothing outside a workflow."""

    def __init__(self, reservation: StepReservation | None) -> None:
        self._reservation = reservation

    async def call(self, name: str, fn: Callable[[], Awaitable[T]]) -> T:
        """``await fn()``, checkpointed under ``name``: a replay returns the recorded answer, or raises the recorded
        ``ModelError`` again, without calling. A crashed model host is never recorded (the run stops; a later run
        calls again)."""
        reservation = self._reservation
        with metering.calls(metering.STEP_KINDS.get(name)):  # what the call is for, for the book's usage meter
            if reservation is None:
                return await fn()
            ran = False

            async def step() -> T | Failed:
                nonlocal ran
                ran = True
                token = _call_key.set(f"{DBOS.workflow_id}:{reservation.step_id}")
                try:
                    return await fn()
                except ModelHostCrashed:
                    raise
                except ModelError as exc:
                    return Failed(str(exc))
                finally:
                    _call_key.reset(token)

            result = await reservation.run_async({"name": name}, step)
        if isinstance(result, Failed):
            raise ModelError(result.message)
        if not ran:  # answered from the record: the dead run paid for it, its counts were never stored
            metering.replayed(name, result)
        return result


async def record(name: str, fn: Callable[[], Awaitable[T]]) -> T:
    """``await fn()`` as a step of the running workflow (a replay returns what it returned), or just ``fn()``."""
    return await reserve(1)[0].call(name, fn)


def in_workflow() -> bool:
    return _host is not None and DBOS.workflow_id is not None


def reserve(n: int) -> list[Slot]:
    """``n`` slots in a fixed order: reserve BEFORE fanning the calls out, so the step ids never depend on which
    call finishes first."""
    if not in_workflow():
        return [Slot(None) for _ in range(n)]
    return [Slot(DBOS.reserve_step()) for _ in range(n)]


async def sleep(seconds: float) -> None:
    """A wait that a replay does not wait again (a durable sleep inside a workflow)."""
    if in_workflow():
        await DBOS.sleep_async(seconds)
    else:
        await asyncio.sleep(seconds)


def call_key() -> str | None:
    """The checkpoint key of the model call running now (``<workflow id>:<step id>``), or ``None``."""
    return _call_key.get()


# --------------------------------------------------------------------------- the workflows
@dataclass(frozen=True, slots=True)
class CallOptions:
    """The keyword arguments of one ``ChatModel.complete`` call."""

    max_tokens: int
    json_schema: dict[str, Any] | None = None
    temperature: float = 0.8
    seed: int | None = None


@DBOS.workflow(name="spacetime.call")
async def _call_workflow(spec: EndpointSpec, messages: list[Message], options: CallOptions) -> Completion | Failed:
    try:
        return await _the_host().call_model(spec, messages, options)
    except ModelHostCrashed:
        raise
    except ModelError as exc:
        return Failed(str(exc))


@DBOS.workflow(name="spacetime.epoch")
async def _epoch_workflow(book_id: str, epoch_no: int, chain: bool) -> EpochOutcome:
    """Play the epoch; for a fleet book, then enqueue the next one unless the book may not go on.

    Nothing after the epoch is a DBOS step: a replay of an epoch already committed skips the epoch's steps, so a
    step after them would not be found at its recorded place. Deciding to go on (a read of ``book_jobs``) and
    enqueuing the next epoch (under its own id: a second enqueue finds the first) are idempotent instead."""
    host = _the_host()
    outcome = await host.play_epoch(UUID(book_id), epoch_no)
    if chain and await host.keep_going(UUID(book_id), epoch_no):
        if _client is None:
            raise ModelError("a fleet epoch ran in a process that is not a worker")
        wfid = epoch_workflow_id(book_id, epoch_no + 1)
        await _client.enqueue_async(_epoch_options(wfid), book_id, epoch_no + 1, True)
    return outcome


def _epoch_options(workflow_id: str) -> Any:
    return {"workflow_name": "spacetime.epoch", "queue_name": BOOKS_QUEUE, "workflow_id": workflow_id,
            "app_version": __version__}  # fmt: skip


# --------------------------------------------------------------------------- the process's engine
class _OneLine(logging.Formatter):
    """DBOS's own log lines as ours: one line, the exception's message, never a traceback, no secret."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"spacetime: dbos: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            line += f": {record.exc_info[1]}"
        return redact(" ".join(line.split("\n")))


def _quiet_dbos_logs() -> None:
    logger = logging.getLogger("dbos")
    for handler in [*logger.handlers, *logging.getLogger().handlers]:
        handler.setFormatter(_OneLine())


class DurableState(StrEnum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


def system_url(url: str) -> str:
    """The SQLAlchemy form of a ``postgresql://`` URL (DBOS talks to PostgreSQL through SQLAlchemy + psycopg)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def default_executor_id(role: str) -> str:
    """A fresh executor id: ``<role>-<host>-<pid>-<random>`` (a `spacetime run` never adopts another's work at
    launch; it resumes its own book's epoch explicitly)."""
    return f"{role}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Durable:
    """DBOS launched in this process (one per process: DBOS is a singleton), with ``host`` playing the epochs.

    ``fleet=False`` (``spacetime run``): the process dequeues nothing but DBOS's own recovery queue. ``fleet=True``
    (``spacetime worker``): it also takes fleet books and fleet model calls. Launch from inside the running event
    loop: DBOS then runs dequeued and recovered workflows on this loop, beside the host's store and models.
    """

    def __init__(self, url: str, host: EpochHost, *, executor_id: str, fleet: bool = False) -> None:
        self.url = url
        self.host = host
        self.executor_id = executor_id
        self.fleet = fleet
        self.state = DurableState.NEW

    async def start(self) -> None:
        global _host, _client
        if self.state is not DurableState.NEW:
            return
        if _host is not None:
            raise StoreError("durable epochs are already running in this process")
        asyncio.get_running_loop()  # DBOS adopts the loop running now as its main loop
        try:
            DBOS(config={
                "name": APP_NAME,
                "system_database_url": system_url(self.url),
                "dbos_system_schema": SYSTEM_SCHEMA,
                "executor_id": self.executor_id,
                "application_version": __version__,
                "log_level": "WARNING",
                "sys_db_pool_size": 8,
                "notification_listener_polling_interval_sec": 0.1,
            })  # fmt: skip
            if not self.fleet:
                DBOS.listen_queues([])
                logging.getLogger("dbos").setLevel(logging.CRITICAL)  # a run's errors reach its one error edge
            _host = self.host
            _quiet_dbos_logs()
            DBOS.launch()
            _quiet_dbos_logs()
            if self.fleet:
                _client = fleet_client(self.url)
        except Exception as exc:
            _host = None
            with contextlib.suppress(Exception):
                DBOS.destroy(workflow_completion_timeout_sec=0)
            raise StoreError(f"cannot start durable epochs on the database: {exc}") from None
        self.state = DurableState.RUNNING

    async def stop(self) -> None:
        """Stop DBOS. Workflows still running stay PENDING in the database: another run resumes them."""
        global _host, _client
        if self.state is not DurableState.RUNNING:
            return
        self.state = DurableState.STOPPED
        _host = None
        if _client is not None:
            _client.destroy()
            _client = None
        await asyncio.to_thread(DBOS.destroy, workflow_completion_timeout_sec=0)

    async def __aenter__(self) -> Durable:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def play(self, book_id: UUID, epoch_no: int) -> EpochOutcome:
        """Play epoch ``epoch_no`` of a book this process holds, as a workflow started here; a run of it left
        pending by a dead process is resumed (its recorded calls are not made again), one that ended in an error
        is started afresh under the next generation's id."""
        generation = 1
        while True:
            wfid = epoch_workflow_id(book_id, epoch_no, generation)
            status = await DBOS.get_workflow_status_async(wfid)
            if status is None or status.status not in _ENDED:
                break
            generation += 1
        if status is not None and status.status == "PENDING" and status.executor_id != self.executor_id:
            await asyncio.to_thread(DBOS.resume_workflow, wfid)  # its process is gone: we hold the book's lock
        with SetWorkflowID(wfid):
            handle = await DBOS.start_workflow_async(_epoch_workflow, str(book_id), epoch_no, False)
        return await handle.get_result()


# --------------------------------------------------------------------------- fleet control (no launch needed)
@dataclass(frozen=True, slots=True)
class EpochRun:
    """One epoch workflow as DBOS holds it."""

    workflow_id: str
    epoch_no: int
    status: str
    executor_id: str | None


class Fleet:
    """Submit, pause, resume and cancel fleet books, and read their workflows, from any process (a DBOS client:
    nothing is dequeued here)."""

    def __init__(self, url: str) -> None:
        DBOS.migrate(system_url(url), schema=SYSTEM_SCHEMA)  # DBOS's tables, created on first use
        self._client = fleet_client(url)

    def close(self) -> None:
        self._client.destroy()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ensure_queues(self, concurrencies: Sequence[int], *, books_per_worker: int | None = None) -> None:
        """The books queue (its per-worker limit set when ``books_per_worker`` is given) and one partitioned
        calls queue per endpoint concurrency in ``concurrencies``."""
        self._client.register_queue(
            BOOKS_QUEUE, worker_concurrency=books_per_worker, polling_interval_sec=BOOKS_POLL_S,
            on_conflict="never_update" if books_per_worker is None else "always_update",
        )  # fmt: skip
        for k in sorted(set(concurrencies)):
            self._client.register_queue(calls_queue(k), partition_concurrency=k, polling_interval_sec=CALLS_POLL_S,
                                        on_conflict="never_update")  # fmt: skip

    def enqueue_epoch(self, book_id: UUID, epoch_no: int) -> str:
        """Enqueue epoch ``epoch_no`` of a fleet book (a no-op when that epoch's workflow is waiting or running;
        resumed when it was cancelled or failed)."""
        wfid = epoch_workflow_id(book_id, epoch_no)
        found = next((r for r in self.runs(book_id) if r.workflow_id == wfid), None)
        if found is None:
            self._client.enqueue(_epoch_options(wfid), str(book_id), epoch_no, True)
        elif found.status in _ENDED:
            self._client.resume_workflow(wfid)
        return wfid

    def runs(self, book_id: UUID | None = None) -> list[EpochRun]:
        prefix = "epoch:" if book_id is None else f"epoch:{book_id}:"
        found = self._client.list_workflows(workflow_id_prefix=prefix, load_input=False, load_output=False)
        runs = []
        for wf in found:
            parts = wf.workflow_id.split(":")
            runs.append(EpochRun(wf.workflow_id, int(parts[2]), str(wf.status), wf.executor_id))
        return runs

    def cancel(self, book_id: UUID) -> list[str]:
        """Cancel the book's waiting or running epochs (a running epoch stops at its next model call; its calls
        so far stay recorded and ``resume`` goes on from them)."""
        cancelled = []
        for run in self.runs(book_id):
            if run.status in ("ENQUEUED", "PENDING", "DELAYED"):
                self._client.cancel_workflow(run.workflow_id)
                cancelled.append(run.workflow_id)
        return cancelled

    def recover(self, executor_ids: Sequence[str]) -> int:
        """Hand the epochs a dead worker left pending to the fleet (any worker takes them); how many."""
        count = 0
        for run in self.runs():
            if run.status == "PENDING" and run.executor_id in executor_ids:
                self._client.resume_workflow(run.workflow_id)
                count += 1
        return count


def calls_queue(concurrency: int) -> str:
    return f"{CALLS_QUEUE_PREFIX}{max(1, concurrency)}"


# --------------------------------------------------------------------------- fleet model calls
def partition_of(spec: EndpointSpec) -> str:
    """The calls queue's partition of an endpoint: its name and where it is (one limit per server)."""
    where = spec.base_url or ",".join(spec.base_urls) or "api.openai.com"
    return f"{spec.name}@{where}"


class QueuedModel:
    """A ``ChatModel`` whose every call goes through the fleet's calls queue: at most ``spec.concurrency`` of them
    run at once across every worker (a DBOS partitioned queue keyed by endpoint). A call made inside a durable step
    is queued under the step's id (``call:<workflow id>:<step id>:<n>``), so a step replayed after a crash waits
    for the call already queued or answered instead of making it again; any other call (the Reaper breeding a
    persona) gets a fresh id."""

    def __init__(self, spec: EndpointSpec, inner: ChatModel, client: DBOSClient) -> None:
        self.spec = spec
        self.inner = inner
        self.name = inner.name
        self.context_window = inner.context_window
        self._client = client
        self._counts: dict[str, int] = {}

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        json_schema: dict[str, Any] | None = None,
        temperature: float = 0.8,
        seed: int | None = None,
    ) -> Completion:
        key = call_key()
        if key is None:  # not a step (the Reaper breeding): still one of the endpoint's calls, not a durable one
            call_id = f"call:free:{uuid.uuid4()}"
        else:
            n = self._counts.get(key, 0)
            self._counts[key] = n + 1
            call_id = f"call:{key}:{n}"
        options = CallOptions(max_tokens, json_schema, temperature, seed)
        handle: Any = await self._client.enqueue_async(
            {"workflow_name": "spacetime.call", "queue_name": calls_queue(self.spec.concurrency),
             "workflow_id": call_id, "queue_partition_key": partition_of(self.spec),
             "app_version": __version__},
            self.spec, list(messages), options,
        )  # fmt: skip
        result = await handle.get_result(polling_interval_sec=CALLS_POLL_S)
        if isinstance(result, Failed):
            raise ModelError(result.message)
        return result  # type: ignore[no-any-return]

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def truncate_to_tokens(self, text: str, max_tokens: int) -> str:
        return self.inner.truncate_to_tokens(text, max_tokens)

    async def aclose(self) -> None:
        await self.inner.aclose()


def fleet_client(url: str) -> DBOSClient:
    return DBOSClient(system_database_url=system_url(url), dbos_system_schema=SYSTEM_SCHEMA, application_name=APP_NAME)
