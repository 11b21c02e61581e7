"""One asyncio primitive per event loop: an ``asyncio.Lock`` or ``Semaphore`` belongs to the loop it was first
used on, while a model (and its concurrency bound) is shared by everything in the process — a test's loops, the
deck's, ``spacetime run``'s."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

_T = TypeVar("_T")


class PerLoop(Generic[_T]):
    """``get()`` returns the running loop's instance, made by ``make`` on first use; forgotten with its loop."""

    def __init__(self, make: Callable[[], _T]) -> None:
        self._make = make
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _T] = weakref.WeakKeyDictionary()
        self._guard = threading.Lock()

    def get(self) -> _T:
        loop = asyncio.get_running_loop()
        with self._guard:
            found = self._by_loop.get(loop)
            if found is None:
                found = self._by_loop[loop] = self._make()
            return found
