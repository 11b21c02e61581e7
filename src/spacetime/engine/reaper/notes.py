"""The living agents' notes, kept in memory for the draft prompts and saved off the loop (see
``spacetime.rules.memory`` for what a note says)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from spacetime.adapters.pg.notes import AgentNotes
from spacetime.domain import EpochRecord
from spacetime.rules import memory as mem

Notes = list[dict[str, Any]]


class LivingNotes:
    def __init__(self) -> None:
        self._notes: dict[UUID, Notes] = {}

    @property
    def living(self) -> int:
        """Living agents (each has notes, maybe none yet)."""
        return len(self._notes)

    async def restore(self, repo: AgentNotes, book_id: UUID, epochs: int) -> None:
        """Load the living agents' notes and rebuild, from the stored epochs, those a stopped book had not saved
        yet (only the last ``MAX_NOTES`` epochs can matter)."""
        self._notes = {a: mem.parse_memory(raw) for a, raw in (await repo.living(book_id)).items()}
        stale = {a for a, notes in self._notes.items() if mem.last_epoch(notes) < epochs}
        if not stale:
            return
        oldest = min(mem.last_epoch(self._notes[a]) for a in stale) + 1
        changed: set[UUID] = set()
        for epoch_no in range(max(oldest, epochs - mem.MAX_NOTES + 1, 1), epochs + 1):
            facts = await repo.stored_epoch(book_id, epoch_no)
            if facts is None:
                continue
            for agent_id, fb in mem.feedback(facts).items():
                if agent_id in stale and mem.last_epoch(self._notes[agent_id]) < epoch_no:
                    self._notes[agent_id] = mem.remember(self._notes[agent_id], fb)
                    changed.add(agent_id)
        await repo.save([(a, self._notes[a]) for a in changed])

    def texts(self) -> dict[UUID, tuple[str, ...]]:
        """Living agent id → its notes, oldest first (what the draft prompt shows)."""
        return {agent_id: mem.texts(notes) for agent_id, notes in self._notes.items() if notes}

    def drop(self, agent_id: UUID) -> Notes:
        """A dead agent's notes leave the living book at once; returns them (for its archive)."""
        return self._notes.pop(agent_id, [])

    def remember(self, record: EpochRecord, names: Mapping[UUID, str], loser_notes: Notes) -> list[tuple[UUID, Notes]]:
        """Each agent of the epoch gets its note (the loser's last note goes to ``agents.memory`` and the archive,
        not back into the living book). ``names``: every name ever in the book. Returns the notes to save."""
        loser = record.decision.loser_id
        saved = []
        for agent_id, fb in mem.feedback_from_record(record, names).items():
            if agent_id == loser:
                saved.append((agent_id, mem.remember(loser_notes, fb)))
            else:  # every other agent of the epoch is alive (swaps apply between epochs, after this)
                self._notes[agent_id] = mem.remember(self._notes.get(agent_id, []), fb)
                saved.append((agent_id, self._notes[agent_id]))
        return saved
