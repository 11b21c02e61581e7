"""Prompt templates as package data, rendered with Jinja2."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("spacetime", "prompts"),
        autoescape=False,
        keep_trailing_newline=False,
        undefined=jinja2.StrictUndefined,
    )


def render(template: str, **context: Any) -> str:
    """Render ``prompts/<template>`` with ``context`` (a missing variable is an error, not an empty string)."""
    return _env().get_template(template).render(**context)
