"""The base of the Store's repositories: one concern's SQL over the Store's connection pool (pgvector types
registered on every connection)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from spacetime.errors import StoreError

_C = TypeVar("_C", bound=type)


def lost_database(exc: Exception) -> StoreError:
    """The one line for a database that went away under a call (the server stopped, the network dropped)."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreError(f"lost the database ({detail}): check that it is running, then run the same command again "
                      "to resume (an epoch is written whole or not at all)")  # fmt: skip


def _translated(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise lost_database(exc) from None

    return call


def store_errors(cls: _C) -> _C:
    """Class decorator: every public coroutine method of ``cls`` turns a lost connection into ``StoreError``
    (one line at the CLI), never a driver traceback."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.iscoroutinefunction(member):
            setattr(cls, name, _translated(member))
    return cls


@store_errors
class Repository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def rows(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """All rows of one query as dicts."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, params)
            return await cur.fetchall()


def vector(values: Sequence[float]) -> np.ndarray:
    """A pgvector parameter."""
    return np.asarray(values, dtype=np.float32)
