"""The Reaper's pure parts: memory notes (bounded, anonymized) and breeding (parse, validate, fallback names)."""

from __future__ import annotations

import json
import random
import uuid

import pytest

from spacetime.domain import (
    Ballot,
    BallotStatus,
    CollapseDecision,
    Draft,
    DraftScore,
    EpochRecord,
    FinishReason,
    PersonaOrigin,
    RatingChange,
    Vote,
)
from spacetime.personas import builtin_personas
from spacetime.rules import breeding, memory

LIB = {p.name: p for p in builtin_personas()}


def _record(epoch_no: int = 2) -> tuple[EpochRecord, dict[uuid.UUID, str]]:
    ids = [uuid.uuid4() for _ in range(3)]
    names = dict(zip(ids, ["Physicist", "Financier", "Politician"], strict=True))
    aliases = dict(zip(ids, ["Anonymous_Scribe_1", "Anonymous_Oracle_2", "Anonymous_Sage_3"], strict=True))
    drafts = tuple(
        Draft(a, f"Title {i}\n" + "word " * (10 + i), FinishReason.LENGTH if i == 2 else FinishReason.STOP, 5, 10,
              0.1)
        for i, a in enumerate(ids)
    )  # fmt: skip
    votes = []
    for voter in ids:
        for target in ids:
            if voter != target:
                why = f"{aliases[target]} beats {aliases[voter]}, as the {names[voter]} I say so."
                votes.append(Vote(voter, target, 3 + ids.index(target) * 3, why))
    ballots = tuple(Ballot(v, BallotStatus.OK, tuple(x for x in votes if x.voter_id == v)) for v in ids)
    scores = tuple(DraftScore(a, 3.0 + 3 * i, 5.0 if i == 2 else 0.0, 0.0, 3.0 + 3 * i - (5 if i == 2 else 0), 2)
                   for i, a in enumerate(ids))  # fmt: skip
    record = EpochRecord(
        book_id=uuid.uuid4(), epoch_no=epoch_no, active_agent_ids=tuple(ids), drafts=drafts, aliases=aliases,
        ballots=ballots, scores=scores, ratings=tuple(RatingChange(a, 1500.0, 1500.0 + 10 * i) for i, a in
                                                      enumerate(ids)),
        decision=CollapseDecision(winner_id=ids[1], loser_id=ids[0]), chapter_title="Title 1", chapter_text="x",
    )  # fmt: skip
    return record, names


def test_notes_are_short_anonymized_and_say_how_the_agent_fared() -> None:
    record, names = _record()
    fbs = memory.feedback_from_record(record, names)
    ids = list(record.active_agent_ids)
    winner = memory.note_for(fbs[ids[1]])
    assert winner.startswith("Epoch 2: you wrote “Title 1” (13 words)")
    assert "it became the chapter" in winner and "1st of 3" in winner and "rating 1500→1510" in winner
    cut = memory.note_for(fbs[ids[2]])
    assert "cut by the length limit: −5" in cut
    for fb in fbs.values():
        note = memory.note_for(fb)
        assert len(note) <= memory.NOTE_MAX
        assert "Anonymous_" not in note
        for name in names.values():
            assert name not in note
        assert "your draft beats another draft, as an author I say so" in note
    assert fbs[ids[0]].eliminated and not fbs[ids[1]].eliminated


def test_memory_is_bounded_and_replaces_a_note_of_the_same_epoch() -> None:
    record, names = _record()
    agent = record.active_agent_ids[0]
    notes: list[dict[str, object]] = []
    for epoch in range(1, 9):
        fb = memory.feedback_from_record(_with_epoch(record, epoch), names)[agent]
        notes = memory.remember(notes, fb)
    assert [n["epoch"] for n in notes] == [5, 6, 7, 8]
    again = memory.remember(notes, memory.feedback_from_record(_with_epoch(record, 8), names)[agent])
    assert [n["epoch"] for n in again] == [5, 6, 7, 8]
    assert memory.parse_memory(json.loads(json.dumps(notes))) == notes
    assert memory.parse_memory({"not": "a list"}) == [] and memory.parse_memory([1, {"epoch": "x"}]) == []
    assert memory.last_epoch(notes) == 8 and len(memory.texts(notes)) == 4


def _with_epoch(record: EpochRecord, epoch_no: int) -> EpochRecord:
    from dataclasses import replace

    return replace(record, epoch_no=epoch_no)


def test_forfeit_note() -> None:
    record, names = _record()
    from dataclasses import replace

    gone = record.active_agent_ids[0]
    record = replace(record, drafts=tuple(d for d in record.drafts if d.agent_id != gone))
    note = memory.note_for(memory.feedback_from_record(record, names)[gone])
    assert note.startswith("Epoch 2: you wrote nothing (forfeit)")


# --------------------------------------------------------------------------- breeding
def _plan(kind: str, *names: str) -> breeding.Plan:
    return breeding.Plan(breeding.PlanKind(kind), tuple(LIB[n] for n in names))


def test_parse_answer_accepts_json_fenced_or_broken() -> None:
    good = {"name": "Astrobiologist", "discipline": "Astrobiology", "voice": "Careful wonder about life."}
    assert breeding.parse_answer(json.dumps(good)) == good
    assert breeding.parse_answer("```json\n" + json.dumps(good) + "\n```") == good
    assert breeding.parse_answer('{"name": "Astrobiologist", "discipline": "Astrobiology", "voice": "Careful') == {
        **good, "voice": "Careful"}
    assert breeding.parse_answer("no idea") in ("not JSON", "not a JSON object")
    assert breeding.parse_answer('{"name": "X"}') == "no discipline"


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"name": "Physicist", "discipline": "New Physics", "voice": "a b c d e"}, "is taken"),
        ({"name": "PHYSICIST", "discipline": "New Physics", "voice": "a b c d e"}, "is taken"),
        ({"name": "Astrobiologist", "discipline": "physics", "voice": "a b c d e"}, "discipline 'physics' is taken"),
        ({"name": "Astro biologist 42", "discipline": "Astro", "voice": "a b c d e"}, "bad name"),
        ({"name": "Anonymous Scribe", "discipline": "Astro", "voice": "a b c d e"}, "alias"),
        ({"name": "Astrobiologist", "discipline": "Astrobiology", "voice": "too short"}, "voice"),
        ({"name": "Astrobiologist", "discipline": "Astrobiologist", "voice": "a b c d e"}, "repeats the name"),
        ({"name": "Finance", "discipline": "Astrobiology", "voice": "a b c d e"}, "is a discipline"),
    ],
)
def test_validate_rejects(answer: dict[str, str], problem: str) -> None:
    taken = set(LIB)
    disciplines = {p.discipline for p in LIB.values()}
    why = breeding.validate(answer, _plan("crossover", "Physicist", "Cyberneticist"), taken, disciplines)
    assert why is not None and problem in why


def test_validate_accepts_a_new_persona_and_builds_it_with_parents() -> None:
    plan = _plan("crossover", "Physicist", "Cyberneticist")
    answer = {"name": "Systems Physicist", "discipline": "Physical Cybernetics",
              "voice": "Loops of matter, told plainly."}
    assert breeding.validate(answer, plan, set(LIB), {p.discipline for p in LIB.values()}) is None
    persona = breeding.bred_persona(answer, plan)
    assert persona.origin is PersonaOrigin.BRED and persona.parents == ("Physicist", "Cyberneticist")
    assert "Systems Physicist" in persona.system_prompt


def test_fallback_names_are_deterministic_unique_and_short() -> None:
    cross = _plan("crossover", "Physicist", "Cyberneticist")
    taken = set(LIB)
    disciplines = {p.discipline for p in LIB.values()}
    first = breeding.fallback_persona(cross, taken, disciplines)
    assert (first.name, first.discipline) == ("Physicist-Cyberneticist", "Physics × Cybernetics")
    second = breeding.fallback_persona(cross, taken | {first.name}, disciplines | {first.discipline})
    assert (second.name, second.discipline) == ("Physicist-Cyberneticist II", "Physics × Cybernetics II")
    assert breeding.fallback_persona(cross, taken, disciplines) == first  # deterministic
    mutation = breeding.fallback_persona(_plan("mutation", "Physicist"), taken, disciplines)
    assert (mutation.name, mutation.discipline) == ("Physicist II", "Heterodox Physics")
    assert mutation.parents == ("Physicist",) and first.parents == ("Physicist", "Cyberneticist")
    # children of bred parents keep short names
    grand = breeding.Plan(breeding.PlanKind.CROSSOVER, (first, second))
    child = breeding.fallback_persona(grand, taken | {first.name, second.name}, disciplines)
    assert len(child.name) <= 50 and child.name.startswith("Physicist") and child.parents == (first.name, second.name)


def test_plan_breeding_draws_from_the_best_rated() -> None:
    parents = [breeding.Parent(LIB[n], r) for n, r in
               [("Physicist", 1600), ("Financier", 1550), ("Politician", 1500), ("Mathematician", 1400)]]  # fmt: skip
    rng = random.Random(3)
    plans = [breeding.plan_breeding(parents, rng) for _ in range(60)]
    used = {p.name for plan in plans for p in plan.parents}
    assert "Mathematician" not in used and {"Physicist", "Financier"} <= used
    assert {plan.kind for plan in plans} == {"mutation", "crossover"}
    assert all(len(plan.parents) == (2 if plan.kind == "crossover" else 1) for plan in plans)
    with pytest.raises(ValueError):
        breeding.plan_breeding([], rng)


def test_breed_prompt_names_parents_and_what_to_avoid() -> None:
    prompt = breeding.breed_prompt(_plan("mutation", "Physicist"), ["Physicist", "Financier"], ["Physics"])
    assert "Physicist (Physics)" in prompt and "(not: Physicist, Financier)" in prompt and "(not: Physics)" in prompt
    assert "mutation" in prompt and "a branch of Physics" in prompt
