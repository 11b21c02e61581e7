"""The base of the Store's repositories: one concern's SQL over the Store's connection pool (pgvector types
registered on every connection)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool


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
