"""Ending the Reaper's tasks: asked (or cancelled) once, awaited with a patience, never re-cancelled in a loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any

log = logging.getLogger("spacetime.reaper")


async def finish(tasks: Collection[asyncio.Task[Any]], *, patience_s: float, cancel: bool) -> None:
    """Wait for ``tasks`` to end. With ``cancel`` they are cancelled at once; without, they were asked to end and
    get ``patience_s`` to do so before they are cancelled. After the one cancellation each gets ``patience_s``
    more; one still running then is left behind with a warning."""
    if not tasks:
        return
    if not cancel:
        await asyncio.wait(tasks, timeout=patience_s)
    running = [t for t in tasks if not t.done()]
    for task in running:
        task.cancel()
    if running:
        await asyncio.wait(running, timeout=patience_s)
    for task in tasks:
        if not task.done():
            log.warning("task %s did not stop", task.get_name())
        elif not task.cancelled() and task.exception() is not None:
            log.debug("task %s ended with %r", task.get_name(), task.exception())
