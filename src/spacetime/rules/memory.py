"""Agent memory: each agent's own bounded notes across epochs (pure: no I/O, no asyncio).

After every epoch each agent that took part gets one note: what it wrote, how it was scored, and what the
reviewers said — anonymized (no voter is named; aliases and persona names in rationales are masked). An agent keeps
its last ``MAX_NOTES`` notes; they are stored in ``agents.memory`` (JSONB) as ``[{"epoch": n, "note": "…"}, …]``,
rendered into the agent's next draft prompts, dropped from the running book when the agent dies and kept in the
archive (``agent_archive.memory``).

The same :class:`Feedback` is built from the in-memory ``EpochRecord`` right after the commit (no database round
trip on the loop) or from the stored epoch when a resumed book catches up on notes it had not saved yet; both give
the same note.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from spacetime.domain import EpochRecord
from spacetime.rules.anonymize import ALIAS_PATTERN
from spacetime.rules.canon import split_title
from spacetime.rules.masking import mask_identities

MAX_NOTES = 4
"""Notes an agent keeps (the oldest is forgotten first)."""
NOTE_MAX = 260
"""Characters per note."""
RATIONALE_MAX = 90
"""Characters per quoted rationale."""
QUOTED_RATIONALES = 2
"""Rationales quoted per note: the harshest and the kindest."""

_ALIAS = re.compile(rf"\b{ALIAS_PATTERN}\b")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Feedback:
    """What one agent learned from one epoch."""

    epoch_no: int
    title: str | None
    """Title of its draft (``None``: it forfeited and wrote nothing)."""
    words: int
    truncated: bool
    mean_insight: float | None
    rank: int | None
    """1 = the best-scored draft of the epoch."""
    drafts: int
    won: bool
    rating_before: float
    rating_after: float
    rationales: tuple[tuple[int, str], ...] = ()
    """(insight score, rationale) received, already anonymized."""
    eliminated: bool = False


@functools.lru_cache(maxsize=64)
def _aliases_pattern(aliases: frozenset[str]) -> re.Pattern[str] | None:
    """One alternation of the epoch's aliases, longest first (so ``…_12`` is never read as ``…_1``)."""
    ordered = sorted((a for a in aliases if a), key=lambda a: (-len(a), a))
    return re.compile("|".join(re.escape(a) for a in ordered)) if ordered else None


def anonymize(
    text: str, own_alias: str | None, aliases: Iterable[str], names: Iterable[str], disciplines: Iterable[str] = ()
) -> str:
    """Mask who is who in a rationale: the agent's own alias → "your draft", other aliases → "another draft",
    persona names and disciplines (which could reveal a voter) → "an author" / "a field", with the inflection rule
    of the ballots (``masking.mask_identities``: ``the Physicist``, ``physicists``, ``physics`` all go)."""
    pattern = _aliases_pattern(frozenset(aliases))
    out = text if pattern is None else pattern.sub(lambda m: "your draft" if m.group(0) == own_alias
                                                   else "another draft", text)  # fmt: skip
    out = _ALIAS.sub("another draft", out)
    out = mask_identities(out, names, disciplines, author="an author", field="a field", absorb_article=True)
    return _SPACES.sub(" ", out).strip()


def _clip(text: str, limit: int) -> str:
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def note_for(fb: Feedback) -> str:
    """One short note (at most ``NOTE_MAX`` characters), in the second person."""
    if fb.title is None:
        head = f"Epoch {fb.epoch_no}: you wrote nothing (forfeit)"
    else:
        cut = ", cut by the length limit: −5" if fb.truncated else ""
        head = f"Epoch {fb.epoch_no}: you wrote “{_clip(fb.title, 50)}” ({fb.words} words{cut})"
    parts = [head]
    if fb.mean_insight is not None and fb.rank is not None:
        parts.append(f"mean insight {fb.mean_insight:.1f}, {_ordinal(fb.rank)} of {fb.drafts}")
    if fb.won:
        parts.append("it became the chapter")
    parts.append(f"rating {fb.rating_before:.0f}→{fb.rating_after:.0f}")
    text = "; ".join(parts) + "."
    if fb.rationales:
        ordered = sorted(fb.rationales, key=lambda r: (r[0], r[1]))
        picked = [ordered[0]] if len(ordered) == 1 else [ordered[0], ordered[-1]][:QUOTED_RATIONALES]
        quotes = "; ".join(f"{score}/10 “{_clip(why, RATIONALE_MAX)}”" for score, why in picked if why.strip())
        if quotes:
            text += f" Reviewers: {quotes}."
    return _clip(text, NOTE_MAX)


@dataclass(frozen=True, slots=True)
class EpochFacts:
    """What the feedback of one epoch is made of: from an ``EpochRecord`` (:func:`facts_from_record`) or from a
    stored epoch (``spacetime.adapters.pg.notes.AgentNotes.stored_epoch``)."""

    epoch_no: int
    active: Iterable[UUID]
    drafts: Mapping[UUID, tuple[str, bool]]
    """Author id → (draft text, truncated)."""
    aliases: Mapping[UUID, str]
    """Author id → alias."""
    totals: Mapping[UUID, float]
    """Author id → score total: ranks the drafts."""
    means: Mapping[UUID, float]
    """Author id → mean insight, for the drafts that received votes."""
    ratings: Mapping[UUID, tuple[float, float]]
    """Agent id → (rating before, rating after)."""
    received: Mapping[UUID, Sequence[tuple[int, str]]]
    """Author id → (insight score, rationale) of every vote its draft received."""
    winner: UUID | None
    loser: UUID | None
    names: Collection[str]
    """Every name to mask in a rationale."""


def feedback(epoch: EpochFacts) -> dict[UUID, Feedback]:
    """Feedback for every agent that took part in the epoch (drafted or forfeited)."""
    ranked = sorted(epoch.totals, key=lambda a: (-epoch.totals[a], str(a)))
    rank = {agent_id: i + 1 for i, agent_id in enumerate(ranked)}
    all_aliases = list(epoch.aliases.values())
    out: dict[UUID, Feedback] = {}
    for agent_id in epoch.active:
        draft = epoch.drafts.get(agent_id)
        before, after = epoch.ratings.get(agent_id, (0.0, 0.0))
        own = epoch.aliases.get(agent_id)
        out[agent_id] = Feedback(
            epoch_no=epoch.epoch_no,
            title=None if draft is None else split_title(draft[0], epoch.epoch_no)[0],
            words=0 if draft is None else len(draft[0].split()),
            truncated=bool(draft and draft[1]),
            mean_insight=epoch.means.get(agent_id),
            rank=rank.get(agent_id),
            drafts=len(epoch.drafts),
            won=agent_id == epoch.winner,
            rating_before=before,
            rating_after=after,
            rationales=tuple(
                (s, anonymize(r, own, all_aliases, epoch.names)) for s, r in epoch.received.get(agent_id, ())
            ),
            eliminated=agent_id == epoch.loser,
        )
    return out


def feedback_from_record(record: EpochRecord, names: Mapping[UUID, str]) -> dict[UUID, Feedback]:
    """Feedback for every agent that took part in ``record`` (drafted or forfeited). ``names``: agent id → name."""
    return feedback(facts_from_record(record, names))


def facts_from_record(record: EpochRecord, names: Mapping[UUID, str]) -> EpochFacts:
    """The facts of an epoch just played (``names``: agent id → name, masked in rationales)."""
    received: dict[UUID, list[tuple[int, str]]] = {}
    for ballot in record.ballots:
        for vote in ballot.votes:
            received.setdefault(vote.target_id, []).append((vote.insight_score, vote.rationale))
    return EpochFacts(
        epoch_no=record.epoch_no,
        active=record.active_agent_ids,
        drafts={d.agent_id: (d.text, d.truncated) for d in record.drafts},
        aliases=record.aliases,
        totals={s.agent_id: s.total for s in record.scores},
        means={s.agent_id: s.mean_insight for s in record.scores if s.votes},
        ratings={r.agent_id: (r.before, r.after) for r in record.ratings},
        received=received,
        winner=record.decision.winner_id,
        loser=record.decision.loser_id,
        names=tuple(names.values()),
    )


def remember(notes: Sequence[Mapping[str, Any]], fb: Feedback, *, limit: int = MAX_NOTES) -> list[dict[str, Any]]:
    """``notes`` with the note for ``fb`` (replacing a note of the same epoch), keeping the last ``limit``."""
    kept = [dict(n) for n in notes if n.get("epoch") != fb.epoch_no]
    kept.append({"epoch": fb.epoch_no, "note": note_for(fb)})
    kept.sort(key=lambda n: n["epoch"])
    return kept[-limit:]


def parse_memory(raw: Any) -> list[dict[str, Any]]:
    """Stored JSONB → notes (tolerant: anything that is not a note is dropped)."""
    if not isinstance(raw, list):
        return []
    notes = []
    for item in raw:
        if isinstance(item, dict) and isinstance(item.get("epoch"), int) and isinstance(item.get("note"), str):
            notes.append({"epoch": item["epoch"], "note": item["note"]})
    return sorted(notes, key=lambda n: n["epoch"])


def last_epoch(notes: Sequence[Mapping[str, Any]]) -> int:
    return max((int(n["epoch"]) for n in notes), default=0)


def texts(notes: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """What goes into the draft prompt."""
    return tuple(str(n["note"]) for n in notes)
