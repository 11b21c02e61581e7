"""Burst: every living agent drafts the next chapter at the same time, under a hard token cap."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from spacetime.domain import Draft, Forfeit
from spacetime.engine import durable
from spacetime.engine.events import DraftDone, DraftForfeited, DraftStarted, Listener
from spacetime.engine.seats import Seat
from spacetime.errors import ModelError


async def burst(
    seats: Sequence[Seat],
    prompt_for: Callable[[Seat], str],
    *,
    max_tokens: int,
    seed: int | None,
    emit: Listener,
) -> tuple[list[Draft], list[Forfeit]]:
    """One concurrent call per seat. A call that fails after the backend's retries is a forfeit, not a crash.

    Concurrency is bounded by each endpoint (the embedded model queues its callers; an HTTP endpoint has a limit),
    so this function fans out everything at once and lets the endpoints decide. Each call is a durable step
    (``spacetime.engine.durable``): inside an epoch workflow its answer is recorded the moment it returns.
    """
    slots = durable.reserve(len(seats))  # in seat order, before any call: a replay finds each draft at its step

    async def one(seat: Seat, index: int) -> Draft | Forfeit:
        emit(DraftStarted(seat.name))
        prompt = prompt_for(seat)
        call_seed = None if seed is None else seed + index
        try:
            done = await slots[index].call(
                "spacetime.draft", lambda: seat.runner.draft(prompt, max_tokens=max_tokens, seed=call_seed)
            )
        except ModelError as exc:
            emit(DraftForfeited(seat.name, str(exc)))
            return Forfeit(seat.agent.agent_id, str(exc))
        draft = Draft(
            agent_id=seat.agent.agent_id,
            text=done.text.strip(),
            finish_reason=done.finish_reason,
            prompt_tokens=done.prompt_tokens,
            completion_tokens=done.completion_tokens,
            latency_s=done.latency_s,
        )
        if not draft.text:
            emit(DraftForfeited(seat.name, "empty draft"))
            return Forfeit(seat.agent.agent_id, "the model returned an empty draft")
        emit(DraftDone(seat.name, draft.completion_tokens, draft.truncated, draft.latency_s))
        return draft

    results = await asyncio.gather(*(one(seat, i) for i, seat in enumerate(seats)))
    drafts = [r for r in results if isinstance(r, Draft)]
    forfeits = [r for r in results if isinstance(r, Forfeit)]
    return drafts, forfeits
