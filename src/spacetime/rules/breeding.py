"""Breeding new personas when the reserve pool runs dry (pure: prompts, parsing, validation, the fallback).

The Reaper asks the book's model for one persona as structured output (``BREED_SCHEMA``: name, discipline, voice)
bred from the best-rated personas — a *mutation* of one or a *crossover* of two — and checks it here:

* the name is a plausible persona name, new (no persona anywhere has it, case-insensitively), not a parent's and
  not a discipline;
* the discipline is new too (no living or dead persona of the book, and no other known persona, has it);
* the voice says something (a few words, not a copy of a parent's);
* and, checked by the Reaper with the book's embedder, its description is not a near-duplicate of a living or dead
  persona's (cosine similarity at most ``SIMILARITY_MAX``).

Tiny models answer poorly (the same name again, a discipline copied from a parent): after ``BREED_TRIES`` rejected
answers the Reaper takes :func:`fallback_persona`, a deterministic child (``Physicist-Cyberneticist II``,
``Physics × Cybernetics II``) that is always valid, so breeding never stalls the book.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import json_repair

from spacetime.domain import NAME_MAX, Persona, PersonaOrigin
from spacetime.personas import bad_char, make_persona
from spacetime.prompts import render

BREED_TRIES = 4
"""Model answers tried before the deterministic fallback."""
BREED_MAX_TOKENS = 160
SIMILARITY_MAX = 0.97
"""A bred persona whose description is more similar than this (cosine) to a living or dead persona's is a duplicate.
Calibrated on the embedded SmolLM2 mean-pooled embedder, where distinct built-in personas lie between 0.83 and 0.95
and a persona against its own description is 1.0."""
PARENTS_FROM = 3
"""Parents are drawn from this many best-rated personas of the book."""
NAME_LEN = 40
DISCIPLINE_LEN = 60
VOICE_LEN = 300

BREED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Z][a-z]{2,24}( [A-Z][a-z]{2,24})?$"},
        "discipline": {"type": "string", "minLength": 3, "maxLength": DISCIPLINE_LEN},
        "voice": {"type": "string", "minLength": 20, "maxLength": VOICE_LEN},
    },
    "required": ["name", "discipline", "voice"],
    "additionalProperties": False,
}
"""Structured output asked of the model. The grammar-constrained embedded model honours ``pattern`` and lengths;
the answer is validated anyway (HTTP endpoints may not constrain)."""

_NAME = re.compile(r"^[A-Z][A-Za-z'-]{2,}( [A-Z][A-Za-z'-]*){0,3}$")
_ROMAN = ["", "", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"]


@dataclass(frozen=True, slots=True)
class Parent:
    persona: Persona
    rating: float


class PlanKind(StrEnum):
    MUTATION = "mutation"
    """A child of one parent."""
    CROSSOVER = "crossover"
    """A child of two parents."""


@dataclass(frozen=True, slots=True)
class Plan:
    """Which parents, and how: a mutation (one parent) or a crossover (two)."""

    kind: PlanKind
    parents: tuple[Persona, ...]


def plan_breeding(ranked: Sequence[Parent], rng: random.Random) -> Plan:
    """Pick parents among the ``PARENTS_FROM`` best-rated: a crossover of two (half the time, when there are two),
    else a mutation of one. Raises ``ValueError`` when there is no parent at all."""
    best = sorted(ranked, key=lambda p: (-p.rating, p.persona.name))[:PARENTS_FROM]
    if not best:
        raise ValueError("breeding needs at least one parent")
    if len(best) >= 2 and rng.random() < 0.5:
        pair = rng.sample(best, 2)
        pair.sort(key=lambda p: (-p.rating, p.persona.name))
        return Plan(PlanKind.CROSSOVER, (pair[0].persona, pair[1].persona))
    weights = [len(best) - i for i in range(len(best))]
    return Plan(PlanKind.MUTATION, (rng.choices(best, weights=weights)[0].persona,))


def breed_prompt(plan: Plan, avoid_names: Sequence[str], avoid_disciplines: Sequence[str]) -> str:
    return render(
        "breed.j2",
        kind=plan.kind,
        parents=plan.parents,
        avoid_names=list(avoid_names)[-30:],
        avoid_disciplines=list(avoid_disciplines)[-30:],
    )


def _fold(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def parse_answer(raw: str) -> dict[str, str] | str:
    """The model's answer → ``{"name", "discipline", "voice"}`` (stripped strings), or a one-line problem."""
    text = raw.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = json_repair.loads(text)
        except Exception:  # json_repair raises assorted errors on garbage
            return "not JSON"
    if not isinstance(value, dict):
        return "not a JSON object"
    out = {}
    for key in ("name", "discipline", "voice"):
        item = value.get(key)
        if not isinstance(item, str) or not item.strip():
            return f"no {key}"
        out[key] = re.sub(r"\s+", " ", item).strip()
    return out


def validate(
    answer: dict[str, str],
    plan: Plan,
    taken_names: Collection[str],
    taken_disciplines: Collection[str],
) -> str | None:
    """``None`` when the answer makes a new persona, else why not (one short phrase)."""
    name, discipline, voice = answer["name"], answer["discipline"], answer["voice"]
    if any(bad_char(text) is not None for text in (name, discipline, voice)):
        return "a control character"  # make_persona (and the database) would refuse it
    if len(name) > NAME_LEN or not _NAME.match(name):
        return f"bad name {name!r}"
    names = {_fold(n) for n in taken_names} | {_fold(p.name) for p in plan.parents}
    if _fold(name) in names:
        return f"name {name!r} is taken"
    if name.lower().startswith("anonymous"):
        return f"name {name!r} looks like an alias"
    if _fold(name) in {_fold(d) for d in taken_disciplines} | {_fold(p.discipline) for p in plan.parents}:
        return f"name {name!r} is a discipline"
    if not 3 <= len(discipline) <= DISCIPLINE_LEN:
        return f"bad discipline {discipline!r}"
    folded = _fold(discipline)
    if folded in {_fold(d) for d in taken_disciplines} | {_fold(p.discipline) for p in plan.parents}:
        return f"discipline {discipline!r} is taken"
    if folded == _fold(name):
        return "discipline repeats the name"
    if len(voice.split()) < 4 or len(voice) > VOICE_LEN:
        return "voice too short or too long"
    if _fold(voice) in {_fold(p.voice) for p in plan.parents} or _fold(voice) in (_fold(name), folded):
        return "voice copies a parent, the name or the discipline"
    return None


def bred_persona(answer: dict[str, str], plan: Plan) -> Persona:
    return make_persona(
        name=answer["name"], discipline=answer["discipline"], voice=answer["voice"],
        origin=PersonaOrigin.BRED, parents=tuple(p.name for p in plan.parents),
    )  # fmt: skip


def _root(name: str) -> str:
    """``"Physicist-Cyberneticist II"`` → ``"Physicist"``: the first word of a (possibly bred) name."""
    return re.split(r"[-\s]", name.strip(), maxsplit=1)[0] or name


def _first_clause(voice: str) -> str:
    return re.split(r"[;.:]", voice, maxsplit=1)[0].strip()


def _numeral(n: int) -> str:
    return _ROMAN[n] if n < len(_ROMAN) else str(n)


def fallback_persona(plan: Plan, taken_names: Collection[str], taken_disciplines: Collection[str]) -> Persona:
    """A deterministic, always-valid child of ``plan``: ``Physicist-Cyberneticist`` / ``Physics × Cybernetics``
    for a crossover, ``Physicist II`` / ``Heterodox Physics`` for a mutation; numbered (II, III, …) until both the
    name and the discipline are new."""
    names = {n.lower() for n in taken_names}
    disciplines = {d.lower() for d in taken_disciplines}
    first = plan.parents[0]
    if plan.kind == PlanKind.CROSSOVER and len(plan.parents) >= 2:
        second = plan.parents[1]
        roots = list(dict.fromkeys([_root(first.name), _root(second.name)]))
        base = "-".join(roots)
        parts = [d.strip() for p in plan.parents for d in p.discipline.split("×")]
        field = " × ".join(list(dict.fromkeys(parts))[:3])
        voice = f"{_first_clause(first.voice)}; {_first_clause(second.voice)}."
        start = 1
    else:
        base = _root(first.name)
        core = first.discipline.removeprefix("Heterodox ").strip()
        field = f"Heterodox {core}"
        voice = (f"{_first_clause(first.voice)}; contrarian: questions what its own field takes for granted.")
        start = 2
    n = start
    while True:
        suffix = "" if n == 1 else f" {_numeral(n)}"
        k = n - start + 1  # the discipline is numbered from its own first use
        field_suffix = "" if k == 1 else f" {_numeral(k)}"
        name = base[: NAME_MAX - len(suffix)].rstrip("- ") + suffix
        discipline = field[: DISCIPLINE_LEN - len(field_suffix)].rstrip() + field_suffix
        if name.lower() not in names and discipline.lower() not in disciplines:
            break
        n += 1
    return make_persona(
        name=name, discipline=discipline, voice=voice[:VOICE_LEN],
        origin=PersonaOrigin.BRED, parents=tuple(p.name for p in plan.parents),
    )  # fmt: skip
