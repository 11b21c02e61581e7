"""``PerLoop``: one asyncio primitive per event loop, shared within a loop."""

from __future__ import annotations

import asyncio

from spacetime.adapters.llm.loops import PerLoop


def test_one_instance_per_loop_and_the_same_within_a_loop() -> None:
    made: list[asyncio.Semaphore] = []

    def make() -> asyncio.Semaphore:
        made.append(asyncio.Semaphore(2))
        return made[-1]

    per_loop = PerLoop(make)

    async def twice() -> tuple[asyncio.Semaphore, asyncio.Semaphore]:
        first = per_loop.get()
        await asyncio.sleep(0)
        return first, per_loop.get()

    a1, a2 = asyncio.run(twice())
    b1, b2 = asyncio.run(twice())
    assert a1 is a2 and b1 is b2 and a1 is not b1
    assert len(made) == 2
