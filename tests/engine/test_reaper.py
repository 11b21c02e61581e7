"""The Reaper daemon on the real embedded PostgreSQL with a scripted model: live operator swaps (from a second
process, through the real CLI), the reserve pool, breeding, memory, the archive, resume after a kill."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg

from spacetime.book import BookConfig, load_book
from spacetime.engine.director import Director
from spacetime.engine.models import ModelPool
from spacetime.engine.reaper import Reaper
from spacetime.models.base import Embedder
from spacetime.models.fake import HashEmbedder, ScriptedCall, ScriptedModel
from spacetime.personas import builtin_personas
from spacetime.store.store import Store
from tests.engine.scripted import tournament_responder

BRED = [
    ("Astrobiologist", "Astrobiology", "Looks for life between the stars with patient, careful wonder."),
    ("Cartographer", "Cartography", "Maps every idea onto terrain, borders and scale; precise and visual."),
    ("Linguist", "Linguistics", "Hears how words shape thought; dissects phrases, loves etymology."),
    ("Oceanographer", "Oceanography", "Thinks in currents, depths and slow circulation; calm and vast."),
    ("Geologist", "Geology", "Reads deep time in layered rock; unhurried sentences, solid evidence."),
    ("Epidemiologist", "Epidemiology", "Counts cases, rates and confounders; sober, careful with causes."),
    ("Architect", "Architecture", "Builds arguments like buildings: load, light, proportion and use."),
    ("Neuroscientist", "Neuroscience", "Explains minds by circuits and experiments; curious and exact."),
]

_DRAFT = re.compile(r"Draft (Anonymous_\w+?)(?: \(excerpt\))?:\n<<DRAFT-[0-9a-f]+>>\n(.*?)\n<<END-", re.DOTALL)


def is_breed_call(call: ScriptedCall) -> bool:
    return call.json_schema is not None and "voice" in call.json_schema.get("properties", {})


def responder(
    *,
    seed: int = 0,
    favourite: str | None = None,
    hated: str | None = None,
    bred: Sequence[tuple[str, str, str]] = BRED,
    bad_every: int = 3,
    before_ballot: Callable[[ScriptedCall], Awaitable[None]] | None = None,
    before_breed: Callable[[ScriptedCall], Awaitable[None]] | None = None,
) -> Callable[[ScriptedCall], Awaitable[str]]:
    """Drafts and ballots like ``tournament_responder``; ballots give ``favourite``'s draft a 10 (so it never
    loses); breed calls answer from ``bred`` in order, every ``bad_every``-th answer a duplicate of a parent
    (rejected by validation, then retried)."""
    rng = random.Random(seed)
    base = tournament_responder(random.Random(seed + 1))
    answers = iter(bred)
    calls = {"breed": 0}

    async def respond(call: ScriptedCall) -> str:
        if is_breed_call(call):
            if before_breed is not None:
                await before_breed(call)
            calls["breed"] += 1
            if bad_every and calls["breed"] % bad_every == 0:
                parent = re.search(r"^- (\S+) \(", call.prompt, re.MULTILINE)
                name = parent.group(1) if parent else "Physicist"
                return json.dumps({"name": name, "discipline": "Physics", "voice": "Same as before, really the same."})
            name, discipline, voice = next(answers, ("Zoologist", "Zoology", "Animals, behaviour and fieldwork."))
            return json.dumps({"name": name, "discipline": discipline, "voice": voice})
        if call.json_schema is not None:
            if before_ballot is not None:
                await before_ballot(call)
            aliases = list(call.json_schema["properties"])
            texts = dict(_DRAFT.findall(call.prompt))
            votes = {}
            for alias in aliases:
                text = texts.get(alias, "")
                score = rng.randint(2, 8)
                if favourite is not None and f"{favourite} writes:" in text:
                    score = 10
                if hated is not None and f"{hated} writes:" in text:
                    score = 1
                votes[alias] = {"insight_score": score, "rationale": f"{alias} is clear, says the Physicist."}
            return json.dumps(votes)
        return base(call)

    return respond


def book_config(*, reserve: Sequence[str] = ("Cyberneticist", "Philosopher"), order: str = "queue",
                seed: int = 1, max_tokens: int = 64) -> BookConfig:  # fmt: skip
    config = load_book(None)
    library = {p.name: p for p in builtin_personas()}
    return dataclasses.replace(config, reserve=tuple(library[n] for n in reserve), reserve_order=order,  # type: ignore[arg-type]
                               seed=seed, max_tokens=max_tokens)  # fmt: skip


async def make_director(
    store: Store,
    model: ScriptedModel,
    config: BookConfig,
    *,
    name: str = "book",
    embedder: Embedder | None = None,
    create: bool = True,
    reaper_options: dict[str, Any] | None = None,
    emit: Any = None,
) -> Director:
    if create:
        book = await store.create_book(name, config.topic, config.outline, config.to_json())
    else:
        found = await store.get_book(name)
        assert found is not None
        book = found
    await store.upsert_personas(config.roster + config.reserve)
    pool = ModelPool(config, prebuilt={"embedded": model}, prebuilt_embedder=embedder or HashEmbedder(dim=16))
    director = Director(store=store, book=book, config=config, models=pool, retry_waits_s=(0.0,))
    if emit is not None:
        director.emit = emit
    director.reaper = Reaper(store, book, config, director.seat_for, director.emit, models=pool,
                             **(reaper_options or {}))  # fmt: skip
    await director.setup()
    return director


def q(url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()  # type: ignore[arg-type]
