"""A scripted tournament model for the fast engine tests: drafts on request, schema-valid ballots when judging."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from spacetime.adapters.llm.fake import ScriptedCall, ScriptedModel


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
        who = call.prompt.split("You are the ", 1)[-1].split(",", 1)[0]
        words = " ".join(f"idea{rng.randint(1, 500)}" for _ in range(draft_words))
        return f"On {who} and time\n{who} writes: {words}"

    return respond


def scripted_model(**kwargs: object) -> ScriptedModel:
    return ScriptedModel(replies=tournament_responder(**kwargs), name="embedded")  # type: ignore[arg-type]
