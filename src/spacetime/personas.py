"""Built-in personas (package data ``prompts/personas.toml``) and persona construction."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Literal, overload

from spacetime.domain import NAME_MAX, Persona, PersonaOrigin
from spacetime.errors import ConfigError
from spacetime.prompts import render


def make_persona(
    *,
    name: str,
    discipline: str,
    voice: str,
    system_prompt: str | None = None,
    origin: PersonaOrigin = PersonaOrigin.BUILTIN,
    parents: tuple[str, ...] = (),
) -> Persona:
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise ConfigError(f"persona name {name!r} must be 1-{NAME_MAX} characters")
    if not discipline.strip() or not voice.strip():
        raise ConfigError(f"persona {name!r} needs a discipline and a voice")
    draft = Persona(name=name, discipline=discipline.strip(), voice=voice.strip(), system_prompt="",
                    origin=origin, parents=parents)  # fmt: skip
    prompt = system_prompt or render("persona.j2", persona=draft).strip()
    return Persona(name=draft.name, discipline=draft.discipline, voice=draft.voice, system_prompt=prompt,
                   origin=origin, parents=parents)  # fmt: skip


@cache
def _load() -> tuple[tuple[Persona, ...], tuple[Persona, ...]]:
    data = tomllib.loads(resources.files("spacetime.prompts").joinpath("personas.toml").read_text("utf-8"))
    def build(key: str) -> tuple[Persona, ...]:
        return tuple(make_persona(name=p["name"], discipline=p["discipline"], voice=p["voice"]) for p in data[key])
    return build("roster"), build("reserve")


@overload
def builtin_personas(split: Literal[False] = False) -> tuple[Persona, ...]: ...
@overload
def builtin_personas(split: Literal[True]) -> tuple[tuple[Persona, ...], tuple[Persona, ...]]: ...
def builtin_personas(split: bool = False) -> tuple[Persona, ...] | tuple[tuple[Persona, ...], tuple[Persona, ...]]:
    """The built-in personas: all of them, or (starting roster, reserve pool) with ``split=True``."""
    roster, reserve = _load()
    return (roster, reserve) if split else roster + reserve
