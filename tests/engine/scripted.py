"""A scripted tournament model for the fast engine tests: drafts on request, schema-valid ballots when judging."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable

from spacetime.adapters.llm.fake import ScriptedCall, ScriptedModel
from spacetime.book import load_book


def author_tag(name: str) -> str:
    """A token each scripted draft carries, unique to its author, that identity masking leaves alone (digits and
    hex, no name word): fake judges use it to find a favourite's draft although the names are masked."""
    return "sig" + "".join(str(int(c, 16) % 10) for c in hashlib.sha1(name.encode()).hexdigest()[:12])


_PERSONA = re.compile(r"You are the (.+?), writing from (.+?)\.")
_DRAFTER = re.compile(r"Write as an expert in (.+?)\. ")
_BUILT_IN = {p.discipline: p.name for p in (*load_book(None).roster, *load_book(None).reserve)}


def speaker(prompt: str) -> tuple[str, str] | None:
    """(name, discipline) of the persona a prompt speaks for: a ballot's voter ("You are the X, writing from Y."),
    a draft's author (a built-in persona's draft prompt gives only "Write as an expert in Y.", never the name)."""
    found = _PERSONA.search(prompt)
    if found:
        return found.group(1), found.group(2)
    found = _DRAFTER.search(prompt)
    if found:
        return _BUILT_IN.get(found.group(1), found.group(1)), found.group(1)
    return None


def speaks_for(call: ScriptedCall, name: str) -> bool:
    who = speaker(call.prompt)
    return who is not None and who[0] == name


def tournament_responder(
    rng: random.Random | None = None,
    *,
    draft_words: int = 40,
    ballot: Callable[[ScriptedCall, list[str]], str] | None = None,
) -> Callable[[ScriptedCall], str]:
    rng = rng or random.Random(0)

    def respond(call: ScriptedCall) -> str:
        if call.json_schema is not None:
            aliases = list(call.json_schema["properties"])
            if ballot is not None:
                return ballot(call, aliases)
            return json.dumps({a: {"insight_score": rng.randint(1, 10), "rationale": f"{a} is clear."}
                               for a in aliases})
        who, field = speaker(call.prompt) or ("Author", "Letters")
        words = " ".join(f"idea{rng.randint(1, 500)}" for _ in range(draft_words))
        # drafts name their author as real ones do; the judges must never see it (rules/masking.py)
        return f"On {who} and time\nAs the {who}, writing from {field}, {who.lower()}s say: {words} {author_tag(who)}"

    return respond


def scripted_model(**kwargs: object) -> ScriptedModel:
    return ScriptedModel(replies=tournament_responder(**kwargs), name="embedded")  # type: ignore[arg-type]
