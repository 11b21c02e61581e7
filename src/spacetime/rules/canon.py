"""The canon (the book itself): chapter titles and what of it goes into the next draft prompt. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_TITLE_PREFIX = re.compile(r"^\s*(?:#+\s*|\*\*|chapter\s+\d+\s*[:.\-–—]\s*|title\s*:\s*)", re.IGNORECASE)
TITLE_MAX = 80
_MARKER = re.compile(r"^\s*<<[^<>]*>>\s*$")
"""A line like ``<<NOTES>>``: a prompt block's delimiter a small model echoed, never a title."""


@dataclass(frozen=True, slots=True)
class Passage:
    position: int
    title: str
    text: str


def split_title(text: str, chapter_no: int) -> tuple[str, str]:
    """(title, body) of a draft: its first non-empty line when short enough, else ``Chapter N``. Leading
    ``<<MARKER>>`` lines (prompt delimiters echoed by a small model) are dropped."""
    lines = text.strip().splitlines()
    while lines and (not lines[0].strip() or _MARKER.match(lines[0])):
        lines.pop(0)
    if lines:
        first = _TITLE_PREFIX.sub("", lines[0]).strip().strip("*#\"' ").strip()
        if first and len(first) <= TITLE_MAX and len(lines) > 1:
            return first, "\n".join(lines[1:]).strip()
    return f"Chapter {chapter_no}", text.strip()


@dataclass(frozen=True, slots=True)
class DraftContext:
    previous: Passage | None
    passages: tuple[Passage, ...]
    retrieved: bool
    """True when the canon outgrew the budget and ``passages`` were chosen by similarity (pgvector)."""


def plan_context(
    canon: Sequence[Passage],
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    truncate: Callable[[str, int], str],
) -> DraftContext | None:
    """The canon whole when it fits in ``budget_tokens``; otherwise ``None``: retrieve (see ``fit_retrieved``)."""
    if not canon:
        return DraftContext(previous=None, passages=(), retrieved=False)
    total = sum(count_tokens(p.text) + 8 for p in canon)
    if total <= budget_tokens:
        return DraftContext(previous=canon[-1], passages=tuple(canon[:-1]), retrieved=False)
    return None


def fit_retrieved(
    previous: Passage,
    similar: Sequence[Passage],
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    truncate: Callable[[str, int], str],
) -> DraftContext:
    """Previous chapter (up to 2/3 of the budget) plus the most similar earlier passages sharing the rest equally."""
    prev_cap = max(1, budget_tokens * 2 // 3)
    prev_text = previous.text if count_tokens(previous.text) <= prev_cap else truncate(previous.text, prev_cap) + " …"
    rest = budget_tokens - min(count_tokens(previous.text), prev_cap)
    chosen = [p for p in similar if p.position != previous.position]
    passages: list[Passage] = []
    if chosen and rest > 32:
        each = rest // len(chosen)
        for p in chosen:
            text = p.text if count_tokens(p.text) <= each else truncate(p.text, each) + " …"
            passages.append(Passage(p.position, p.title, text))
    passages.sort(key=lambda p: p.position)
    return DraftContext(previous=Passage(previous.position, previous.title, prev_text), passages=tuple(passages),
                        retrieved=True)  # fmt: skip


def render_markdown(book_name: str, topic: str, chapters: Sequence[tuple[int, str, str, str, int]]) -> str:
    """The canon as Markdown: (position, title, text, author, epoch_no) per chapter."""
    out = [f"# {book_name}", "", f"*{topic}*", ""]
    for position, title, text, author, epoch_no in chapters:
        out += [f"## {position}. {title}", "", f"*by the {author}, epoch {epoch_no}*", "", text.strip(), ""]
    return "\n".join(out).rstrip() + "\n"
