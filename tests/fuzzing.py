"""What the bad-input fuzz tests share: the hypothesis settings profile, a junk-value strategy, a small TOML writer
and the one-line check.

The volume is ``SPACETIME_FUZZ_EXAMPLES`` examples per property (default 200, what CI runs), e.g.
``SPACETIME_FUZZ_EXAMPLES=5000 pytest tests/unit/test_fuzz_book.py --hypothesis-seed=1 --hypothesis-show-statistics``.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import unicodedata
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("SPACETIME_FUZZ_EXAMPLES", "200"))
"""Examples per property (``SPACETIME_FUZZ_EXAMPLES``)."""

settings.register_profile(
    "spacetime-fuzz",
    max_examples=EXAMPLES,
    deadline=None,  # the first example imports and renders templates; the 2-core CI machine is shared
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large],
)  # fmt: skip
FUZZ = settings.get_profile("spacetime-fuzz")
"""``@FUZZ`` on a property: the fuzz profile (only those tests; the rest of the suite keeps its own settings)."""

FEW = settings(FUZZ, max_examples=max(10, EXAMPLES // 4))
"""For the properties that drive the whole CLI in-process (each example costs a Typer invocation)."""

INT64_MAX = (1 << 63) - 1

CONTROL = st.sampled_from(["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\n", "\r", "\t"])
"""Control characters, line and paragraph separators (``\\n``, ``\\r``, ``\\t`` are fine in free text only)."""
HARD_CONTROL = CONTROL.filter(lambda c: c not in "\n\r\t")
"""The control characters no text may hold."""

huge_ints = st.integers(min_value=INT64_MAX + 1, max_value=1 << 300) | st.integers(
    min_value=-(1 << 300), max_value=-INT64_MAX - 2
)
scalars: st.SearchStrategy[Any] = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8") | CONTROL, max_size=40),
    st.integers(),
    huge_ints,
    st.floats(),  # nan, ±inf, -0.0, subnormals
    st.booleans(),
    st.datetimes(),
    st.dates(),
    st.times(),
    st.just(""),
    st.builds(lambda c, n: c * n, st.characters(codec="utf-8"), st.integers(1000, 200_000)),  # very long
)
"""Any value a TOML (or JSON) document may hold at a leaf."""


def junk(leaves: st.SearchStrategy[Any] = scalars) -> st.SearchStrategy[Any]:
    """Scalars, lists and tables of them, nested."""
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=12,
    )


def is_one_line(message: str) -> bool:
    """One line: no line break of any kind ``str.splitlines`` knows, no other control character (NUL, ESC …) and no
    lone surrogate (which no terminal can print)."""
    return (bool(message) and len(message.splitlines()) == 1
            and not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in message))  # fmt: skip


# --------------------------------------------------------------------------- a TOML writer (tomllib only reads)
def _string(text: str) -> str:
    out = []
    for c in text:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif ord(c) < 0x20 or ord(c) == 0x7F or (0x80 <= ord(c) < 0xA0) or c in "\u2028\u2029":
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    """``value`` as a TOML value (tables inline). Raises ``ValueError`` for what TOML cannot hold (``None``, a lone
    surrogate)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            raise ValueError("TOML cannot hold a lone surrogate")
        return _string(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_string(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise ValueError(f"TOML cannot hold {type(value).__name__}")


def dump_toml(data: dict[str, Any]) -> str:
    """A TOML document of ``data`` (one ``key = value`` line per top-level key)."""
    return "".join(f"{_string(str(k))} = {toml_value(v)}\n" for k, v in data.items())
