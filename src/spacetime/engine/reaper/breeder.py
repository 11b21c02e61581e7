"""Breeding, when the reserve is dry: the book's model is asked for a child of the best-rated personas (structured
output, ``BREED_TRIES`` answers at once, validated, checked against near-duplicates by embedding); after rejected
answers, or without a model, the deterministic fallback child of ``spacetime.rules.breeding``."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from spacetime.adapters.pg.store import Store
from spacetime.book import BookConfig
from spacetime.domain import Book, CallKind, Completion, NewcomerSource, Persona
from spacetime.engine import metering
from spacetime.engine.reaper.values import Claims, Embedding, MakeNewcomer, Newcomer
from spacetime.errors import ModelError, SpacetimeError
from spacetime.ports import ChatModel, Embedder, Message
from spacetime.rules import breeding
from spacetime.rules.rating import INITIAL_RATING

if TYPE_CHECKING:
    from spacetime.engine.models import ModelPool

BREEDER_SYSTEM = "You design characters for a book. You answer with JSON only."


class Breeder:
    def __init__(self, store: Store, book: Book, config: BookConfig, models: ModelPool | None, rng: random.Random,
                 claims: Claims, newcomer: MakeNewcomer) -> None:  # fmt: skip
        self.store = store
        self.book = book
        self.config = config
        self.models = models
        self.rng = rng
        self.claims = claims
        self.newcomer = newcomer

    def embedder(self) -> Embedder | None:
        return self.models.metered_embedder() if self.models is not None else None

    async def ensure_embeddings(self, names: Sequence[str]) -> str | None:
        """Embed (once per embedder) the descriptions of the named personas; returns the embedder's name."""
        embedder = self.embedder()
        if embedder is None:
            return None
        missing = await self.store.personas.without_embedding(list(dict.fromkeys(names)), embedder.name)
        if missing:
            vectors = await embedder.embed([p.description for p in missing])
            await self.store.personas.set_embeddings(zip([p.name for p in missing], vectors, strict=True),
                                                     embedder.name)  # fmt: skip
        return embedder.name

    async def plan(self) -> breeding.Plan:
        agents = await self.store.agents(self.book.book_id)
        parents = [breeding.Parent(a.persona, a.rating) for a in agents]
        if not parents:
            parents = [breeding.Parent(p, INITIAL_RATING) for p in self.config.roster]
        return breeding.plan_breeding(parents, self.rng)

    async def breed(self, t0: float) -> Newcomer:
        """Breed a persona with the book's model (structured output), validated; the deterministic child after
        ``BREED_TRIES`` rejected answers or a failing model."""
        plan = await self.plan()
        agents = await self.store.agents(self.book.book_id)
        book_personas = [a.name for a in agents]
        embedder = self.embedder()
        problems: list[str] = []
        model = self._chat_model()
        if model is None:
            problems.append("no model to breed with")
            return await self.fallback(plan, problems, t0, embedder=embedder)
        # all the attempts at once: on a one-at-a-time model they are served together instead of each waiting
        # for a turn behind the epoch's own calls; the first valid answer wins
        prompt = breeding.breed_prompt(plan, sorted(book_personas), sorted({a.persona.discipline for a in agents}))
        seeds = [None if self.config.seed is None else self.rng.randrange(1 << 30) for _ in range(breeding.BREED_TRIES)]
        with metering.calls(CallKind.BREEDING):  # the book's usage meter counts these as breeding
            replies = await asyncio.gather(*(
                model.complete(
                    [Message("system", BREEDER_SYSTEM), Message("user", prompt)],
                    max_tokens=breeding.BREED_MAX_TOKENS, json_schema=breeding.BREED_SCHEMA, temperature=0.9,
                    seed=seed,
                ) for seed in seeds), return_exceptions=True)  # fmt: skip
        for reply in replies:
            child = await self._child(reply, plan, book_personas, embedder, problems)
            if child is not None:
                persona, embedding = child
                return self.newcomer(persona, NewcomerSource.BRED, t0, plan_note(plan, problems), embedding)
        return await self.fallback(plan, problems, t0, embedder=embedder)

    async def fallback(self, plan: breeding.Plan, problems: Sequence[str], t0: float, *,
                       embedder: Embedder | None) -> Newcomer:  # fmt: skip
        """The deterministic child of ``plan`` (embedded with ``embedder``, if it can)."""
        names, disciplines = await self._taken()
        child = self.claims.claim(breeding.fallback_persona(plan, names, disciplines))
        embedding = None
        if embedder is not None:
            with contextlib.suppress(SpacetimeError):
                embedding = (embedder.name, (await embedder.embed([child.description]))[0])
        return self.newcomer(child, NewcomerSource.BRED_FALLBACK, t0, plan_note(plan, problems), embedding)

    def _chat_model(self) -> ChatModel | None:
        if self.models is not None:
            with contextlib.suppress(SpacetimeError):
                return self.models.metered(self.config.model)
        return None

    async def _taken(self) -> tuple[set[str], set[str]]:
        """Names and disciplines a bred persona may not take: every stored persona's, and those of the newcomers
        being prepared or awaited by a swap."""
        names, disciplines = await self.store.personas.names_and_disciplines()
        return names | self.claims.names(), disciplines | self.claims.disciplines()

    async def _child(
        self, reply: Completion | BaseException, plan: breeding.Plan, book_personas: Sequence[str],
        embedder: Embedder | None, problems: list[str],
    ) -> tuple[Persona, Embedding | None] | None:  # fmt: skip
        """The valid (claimed) child in one answer of the model, and its embedding; else ``None``, the reason
        appended to ``problems``."""
        if isinstance(reply, BaseException):
            if not isinstance(reply, ModelError):
                raise reply
            problems.append(f"model failed: {reply}")
            return None
        answer = breeding.parse_answer(reply.text)
        if isinstance(answer, str):
            problems.append(answer)
            return None
        names, disciplines = await self._taken()  # others may have bred meanwhile
        why = breeding.validate(answer, plan, names, disciplines)
        if why is not None:
            problems.append(why)
            return None
        child = self.claims.claim(breeding.bred_persona(answer, plan))
        if embedder is None:
            return child, None
        model_name = await self.ensure_embeddings(book_personas)
        vector = (await embedder.embed([child.description]))[0]
        nearest = await self.store.personas.nearest(vector, book_personas, embedder.name)
        if nearest is not None and nearest[1] > breeding.SIMILARITY_MAX:
            problems.append(f"{child.name} is a near-duplicate of {nearest[0]} ({nearest[1]:.3f})")
            self.claims.release(child)
            return None
        return child, (model_name or embedder.name, vector)


def plan_note(plan: breeding.Plan, problems: Sequence[str]) -> str:
    """``reaper_events.note`` of a bred newcomer: how it was bred, and why the model's answers were rejected."""
    head = f"{plan.kind} of {' × '.join(p.name for p in plan.parents)}"
    if not problems:
        return head
    return f"{head}; rejected: " + "; ".join(problems)[:400]
