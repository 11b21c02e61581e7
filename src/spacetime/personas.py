"""Built-in personas (package data ``prompts/personas.toml``) and persona construction."""

from __future__ import annotations

import tomllib
import unicodedata
from functools import cache
from importlib import resources
from typing import Literal, overload

from spacetime.domain import NAME_MAX, Persona, PersonaOrigin
from spacetime.errors import ConfigError
from spacetime.prompts import render

SHOW_MAX = 80
"""A value echoed in an error message is cut to this many characters."""
TEXT_MAX = 100_000
"""Longest free text (a voice, a system prompt, an outline) a book file may hold, in characters."""
LINE_MAX = 1_000
"""Longest one-line value (a discipline, a model id, a URL), in characters."""
_BREAKS = frozenset("\n\r\t")


def show(value: object) -> str:
    """``value`` for an error message: its ``repr`` (which escapes every line break and control character), on one
    line and cut to ``SHOW_MAX`` characters."""
    try:
        text = repr(value)
    except RecursionError:
        return "<a value nested too deeply>"
    text = " ".join(text.splitlines())
    return text if len(text) <= SHOW_MAX else text[: SHOW_MAX - 1] + "…"


def bad_char(text: str, *, breaks: bool = False) -> str | None:
    """The first character of ``text`` a name or a line of text may not hold: a control character (NUL, ESC …),
    a line or paragraph separator, a lone surrogate (not storable as UTF-8); tab, CR and LF only when ``breaks``."""
    for c in text:
        if breaks and c in _BREAKS:
            continue
        if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp"):
            return c
    return None


def check_text(value: object, key: str, *, breaks: bool = True, most: int = TEXT_MAX, blank: bool = False) -> str:
    """``value`` as text for ``key``: a string of at most ``most`` characters without control characters (line breaks
    allowed when ``breaks``), not blank unless ``blank``. Raises ``ConfigError`` naming ``key`` and the fix."""
    kind = "text" if breaks else "one line of text"
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be {kind} (a string), not {show(value)}")
    if not blank and not value.strip():
        raise ConfigError(f"{key} must not be empty: write {kind} there, or leave the key out")
    if len(value) > most:
        raise ConfigError(f"{key} is {len(value)} characters long: shorten it to at most {most}")
    c = bad_char(value, breaks=breaks)
    if c is not None:
        allowed = "" if breaks is False else " (line breaks and tabs are fine)"
        raise ConfigError(f"{key} holds the control character {show(c)}: remove it{allowed}")
    return value


def make_persona(
    *,
    name: str,
    discipline: str,
    voice: str,
    system_prompt: str | None = None,
    origin: PersonaOrigin = PersonaOrigin.BUILTIN,
    parents: tuple[str, ...] = (),
) -> Persona:
    """A persona from its fields, checked: ``name`` one line of 1-``NAME_MAX`` characters, ``discipline`` one line,
    ``voice`` and ``system_prompt`` text (default prompt: rendered from the fields). Raises ``ConfigError`` naming
    the field and the fix."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > NAME_MAX or bad_char(name) is not None:
        raise ConfigError(f"persona name {show(name)} must be 1-{NAME_MAX} characters on one line, "
                          "without control characters")  # fmt: skip
    name = name.strip()
    where = f"persona {name!r}"
    discipline = check_text(discipline, f"{where}: discipline", breaks=False, most=LINE_MAX).strip()
    voice = check_text(voice, f"{where}: voice").strip()
    if system_prompt is not None:
        system_prompt = check_text(system_prompt, f"{where}: system_prompt", blank=True).strip()
    draft = Persona(name=name, discipline=discipline, voice=voice, system_prompt="", origin=origin,
                    parents=parents)  # fmt: skip
    prompt = system_prompt or default_system_prompt(draft)
    return Persona(name=draft.name, discipline=draft.discipline, voice=draft.voice, system_prompt=prompt,
                   origin=origin, parents=parents)  # fmt: skip


def default_system_prompt(persona: Persona) -> str:
    """The system prompt of a persona that gives none: rendered from its name, discipline and voice."""
    return render("persona.j2", persona=persona).strip()


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
