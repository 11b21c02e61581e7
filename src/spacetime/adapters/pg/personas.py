"""Personas as the Reaper sees them: names and disciplines taken, embeddings of their descriptions, and the exact
pgvector rankings by cosine distance (``store.personas``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from spacetime.adapters.pg.repository import Repository, store_errors, vector
from spacetime.adapters.pg.rows import persona_from_row
from spacetime.domain import Persona


@store_errors
class Personas(Repository):
    async def names_and_disciplines(self) -> tuple[set[str], set[str]]:
        """Every stored persona's name, and every discipline."""
        rows = await self.rows("SELECT name, discipline FROM personas")
        return {r["name"] for r in rows}, {r["discipline"] for r in rows}

    async def without_embedding(self, names: Sequence[str], model: str) -> list[Persona]:
        """The named personas not embedded yet by ``model``."""
        rows = await self.rows(
            "SELECT name, discipline, voice, system_prompt, origin, parents FROM personas "
            "WHERE name = ANY(%s) AND (embedding IS NULL OR embedding_model IS DISTINCT FROM %s) ORDER BY name",
            (list(names), model),
        )
        return [persona_from_row(r, name="name") for r in rows]

    async def set_embeddings(self, pairs: Iterable[tuple[str, Sequence[float]]], model: str) -> None:
        items = [(vector(v), model, name) for name, v in pairs]
        if not items:
            return
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany("UPDATE personas SET embedding = %s, embedding_model = %s WHERE name = %s", items)

    async def most_different(self, candidates: Sequence[str], living: Sequence[str], model: str) -> list[str]:
        """The candidates, most different first: ranked by the cosine distance (pgvector, exact search) to their
        nearest living persona, farthest first."""
        rows = await self.rows(
            "SELECT c.name, min(c.embedding <=> l.embedding) AS nearest FROM personas c CROSS JOIN personas l "
            "WHERE c.name = ANY(%(c)s) AND l.name = ANY(%(l)s) AND c.embedding_model = %(m)s "
            "AND l.embedding_model = %(m)s GROUP BY c.name ORDER BY nearest DESC, c.name",
            {"c": list(candidates), "l": list(living), "m": model},
        )
        return [r["name"] for r in rows]

    async def nearest(self, embedding: Sequence[float], names: Sequence[str], model: str) -> tuple[str, float] | None:
        """The most similar of ``names`` to ``embedding`` and its cosine similarity."""
        rows = await self.rows(
            "SELECT name, 1 - (embedding <=> %(v)s) AS similarity FROM personas WHERE name = ANY(%(n)s) "
            "AND embedding_model = %(m)s ORDER BY embedding <=> %(v)s LIMIT 1",
            {"v": vector(embedding), "n": list(names), "m": model},
        )
        return (rows[0]["name"], float(rows[0]["similarity"])) if rows else None
