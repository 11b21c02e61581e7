"""Performance fixes keep behaviour: each fast path is checked against the straightforward version it replaced."""

from __future__ import annotations

import random
import re

from spacetime.rules.memory import _ALIAS, _SPACES, anonymize


def _reference_anonymize(text: str, own_alias: str | None, aliases: list[str], names: list[str]) -> str:
    """``memory.anonymize`` before its fast path (one compiled regex per name per call)."""
    out = text
    for alias in sorted(set(aliases), key=len, reverse=True):
        out = out.replace(alias, "your draft" if alias == own_alias else "another draft")
    out = _ALIAS.sub("another draft", out)
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        out = re.sub(rf"\b(?:the\s+)?{re.escape(name)}\b", "an author", out, flags=re.IGNORECASE)
    return _SPACES.sub(" ", out).strip()


def test_anonymize_fast_path_is_the_same_function() -> None:
    names = ["Physicist", "Dr. Ada Lovelace", "Ada", "Émile", "İsmail", "Straße", "An", "Author", "Bob Smith",
             "Ann Bob"]  # fmt: skip
    aliases = ["Anonymous_Scribe_1", "Anonymous_Oracle_12", "Anonymous_Potter_3"]
    words = [*names, *(n.upper() for n in names), *(n.lower() for n in names), *aliases, "the", "THE", "a", "clear",
             "physicists", "ada's", "ISMAIL", "strasse", "i̇smail", "Anonymous_Hermit_9", "\t", "\n"]  # fmt: skip
    rng = random.Random(0)
    for _ in range(3000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        chosen = rng.sample(names, rng.randint(0, len(names)))
        own = rng.choice([*aliases, None])
        assert anonymize(text, own, aliases, chosen) == _reference_anonymize(text, own, aliases, chosen), text
