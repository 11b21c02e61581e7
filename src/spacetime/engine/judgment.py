"""Judgment: every agent reviews every other draft blind, in one call, and returns one JSON ballot."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from uuid import UUID

from spacetime.domain import Ballot, BallotLayout, BallotStatus, Completion, Draft, ReviewItem, ReviewPlan, Vote
from spacetime.engine import durable
from spacetime.engine.events import BallotDone, JudgmentStarted, Listener
from spacetime.engine.seats import Seat
from spacetime.errors import ModelError
from spacetime.ports import ChatModel
from spacetime.prompts import render
from spacetime.rules.anonymize import ALIAS_NUMBER_MAX, ALIAS_PREFIX, MASKS
from spacetime.rules.ballot import (
    SPOTLIGHT_RULE,
    ParsedBallot,
    ballot_schema,
    decide_ballot,
    enclose,
    expected_scores,
    new_marker,
    parse_ballot,
    to_votes,
)
from spacetime.rules.budget import ballot_reply_tokens, drafts_budget, excerpt, fair_cap, fit_drafts
from spacetime.rules.geval import score_readings

_SKELETON_MARKER = "0" * 12
"""Stands in for a spotlight marker when measuring the prompt (every marker has 12 hex digits)."""


def ballot_prompt(
    *,
    topic: str,
    chapter_no: int,
    persona_prompt: str,
    items: Sequence[ReviewItem],
    scored: Sequence[str] | None = None,
    own: str | None = None,
) -> str:
    """The ballot prompt: the rubric and the drafts first, the voter's own part after them.

    Everything up to the last draft depends only on the epoch and the display order (``items``), so the voters
    shown the same order send the same long prefix (a server's prefix cache computes it once); the persona, the
    voter's own draft to leave out (``own``) and the keys to answer (``scored``, default: every item) come after.
    Each item's ``text`` is already spotlighted (wrapped in its own ``<<DRAFT-id>>``/``<<END-id>>`` lines, see
    ``review_items``)."""
    return render(
        "ballot.j2",
        topic=topic,
        chapter_no=chapter_no,
        spotlight_rule=SPOTLIGHT_RULE,
        persona_prompt=persona_prompt,
        excerpted=any(i.excerpted for i in items),
        items=items,
        scored=list(scored) if scored is not None else [i.alias for i in items],
        own=own,
    )


def review_items(
    model: ChatModel,
    texts: Mapping[str, str],
    markers: Mapping[str, str],
    cap: int | None,
) -> dict[str, ReviewItem]:
    """Every draft as the judges on ``model`` read it (alias → item): its judge-facing text cut to the fair cap,
    then spotlighted with its marker (one per draft per epoch: every voter sees the same bytes)."""
    items = {}
    for alias, text in texts.items():
        cut_text, cut = excerpt(text, cap, count_tokens=model.count_tokens, truncate=model.truncate_to_tokens)
        items[alias] = ReviewItem(alias=alias, text=enclose(cut_text, markers[alias]), excerpted=cut)
    return items


def excerpt_cap(
    model: ChatModel,
    drafts: Sequence[Draft],
    voters: Sequence[UUID],
    *,
    topic: str,
    chapter_no: int,
    persona_prompt: str,
    aliases: Mapping[UUID, str],
    n_items: int,
    texts: Mapping[UUID, str] | None = None,
    shown_own: bool = False,
) -> int | None:
    """The fair per-draft cap for ballots judged by ``model`` (None = every draft fits whole).

    ``n_items`` is the most drafts any voter is shown (N in the shared layout; N−1, or N for a voter whose own
    draft forfeited, with per-voter shuffles); ``shown_own`` whether voters are shown their own draft (shared
    layout); ``texts`` the judge-facing copies (author id → text; default: the drafts' own texts).
    """
    n = max(n_items, 1)
    available = _room_for_drafts(model, [aliases[d.agent_id] for d in drafts][:n], topic=topic,
                                 chapter_no=chapter_no, persona_prompt=persona_prompt, own=shown_own)  # fmt: skip
    lengths = {d.agent_id: model.count_tokens(texts[d.agent_id] if texts else d.text) for d in drafts}
    return fair_cap(lengths, voters, available, shown_own=shown_own)


def _room_for_drafts(
    model: ChatModel, aliases: Sequence[str], *, topic: str, chapter_no: int, persona_prompt: str, own: bool
) -> int:
    """Tokens left for the draft texts of a ballot showing ``aliases`` (``CapacityError`` when none); ``own``: one
    of them is the voter's own (shown, named in the voter's part, not scored)."""
    empty = f"<<DRAFT-{_SKELETON_MARKER}>>\n\n<<END-{_SKELETON_MARKER}>>"
    skeleton = [ReviewItem(alias=alias, text=empty, excerpted=True) for alias in aliases]
    prompt = ballot_prompt(topic=topic, chapter_no=chapter_no, persona_prompt=persona_prompt, items=skeleton,
                           own=aliases[0] if own and aliases else None)  # fmt: skip
    fixed = model.count_tokens(prompt) + 64  # chat template, system message and the excerpt markers' slack
    return drafts_budget(model.context_window, fixed, ballot_reply_tokens(max(len(aliases), 1)))


def preflight(
    seats: Sequence[Seat],
    *,
    topic: str,
    chapter_no: int,
    draft_tokens: int,
    layout: BallotLayout = BallotLayout.SHARED,
) -> None:
    """Before the burst, so no draft is written for an epoch that cannot be judged: raise ``CapacityError`` when
    some judge's window cannot hold a ballot over the drafts it is shown (all N in the shared layout, the N − 1
    others with per-voter shuffles) at the cap's length, each cut to the shortest excerpt the rules allow
    (``rules.budget.MIN_EXCERPT_TOKENS``). Aliases are taken at their longest."""
    shown_own = layout is BallotLayout.SHARED
    shown = max(len(seats) if shown_own else len(seats) - 1, 1)
    aliases = [f"{ALIAS_PREFIX}_{max(MASKS, key=len)}_{ALIAS_NUMBER_MAX}"] * shown
    for seat in seats:
        available = _room_for_drafts(seat.model, aliases, topic=topic, chapter_no=chapter_no,
                                     persona_prompt=seat.agent.persona.system_prompt, own=shown_own)  # fmt: skip
        fit_drafts([draft_tokens] * shown, available)


async def judgment(
    seats: Sequence[Seat],
    drafts: Sequence[Draft],
    aliases: Mapping[UUID, str],
    plans: Mapping[UUID, ReviewPlan],
    penalties: Mapping[UUID, float],
    *,
    topic: str,
    chapter_no: int,
    rng: random.Random,
    seed: int | None,
    emit: Listener,
    judge_texts: Mapping[UUID, str] | None = None,
    mask: Callable[[str], str] | None = None,
) -> list[Ballot]:
    """One ballot call per voter, all at once; malformed → repaired, else re-asked once, else an abstention.

    ``plans`` say what each voter is shown, in which order, and what it scores (``rules.anonymize.review_plans``).
    ``judge_texts`` (author id → text) are what the judges read instead of the drafts' own texts: screened and
    masked (``rules.ballot.judge_copy``); ``mask`` masks the topic the same way. Every draft is spotlighted
    with its own marker from ``rng`` (drawn here, draft by draft in alias order, before any call: replayable). The
    voter's own persona prompt is shown as is: it names the judge, never an author of the drafts it sees.
    """
    alias_to_author = {alias: author for author, alias in aliases.items()}
    shown = {d.agent_id: (judge_texts[d.agent_id] if judge_texts is not None else d.text) for d in drafts}
    texts = {aliases[a]: text for a, text in shown.items()}
    topic = mask(topic) if mask is not None else topic
    voters = [s.agent.agent_id for s in seats]
    caps: dict[int, int | None] = {}
    for seat in seats:  # one fair cap per judge model (models differ in window and tokenizer)
        key = id(seat.model)
        if key not in caps:
            caps[key] = excerpt_cap(
                seat.model, drafts, voters, topic=topic, chapter_no=chapter_no,
                persona_prompt=seat.agent.persona.system_prompt, aliases=aliases,
                n_items=max(len(p.shown) for p in plans.values()), texts=shown,
                shown_own=any(p.own is not None for p in plans.values()),
            )  # fmt: skip
    markers = {alias: new_marker(rng) for alias in sorted(texts)}
    items_by_model: dict[int, dict[str, ReviewItem]] = {}
    for seat in seats:
        if id(seat.model) not in items_by_model:
            items_by_model[id(seat.model)] = review_items(seat.model, texts, markers, caps[id(seat.model)])
    slots = durable.reserve(2 * len(seats))  # each voter's ballot and re-ask, in seat order, before any call

    async def one(seat: Seat, index: int) -> Ballot:
        voter = seat.agent.agent_id
        plan = plans[voter]
        order = plan.scored
        items = [items_by_model[id(seat.model)][alias] for alias in plan.shown]
        prompt = ballot_prompt(topic=topic, chapter_no=chapter_no, persona_prompt=seat.agent.persona.system_prompt,
                               items=items, scored=order, own=plan.own)  # fmt: skip
        schema = ballot_schema(order)
        reply_tokens = ballot_reply_tokens(len(order))
        call_seed = None if seed is None else seed + 1000 + index
        raws: list[str] = []
        answers: list[tuple[ParsedBallot, Completion]] = []
        try:
            first = await slots[2 * index].call(
                "spacetime.ballot",
                lambda: seat.runner.judge(prompt, json_schema=schema, max_tokens=reply_tokens, seed=call_seed),
            )
            raws.append(first.text)
            parsed = parse_ballot(first.text, order)
            answers.append((parsed, first))
            decision = decide_ballot(parsed, order)
            if decision.reask:
                again = prompt + "\n\n" + render("reask.j2", aliases=", ".join(order))
                reseed = None if call_seed is None else call_seed + 7
                try:
                    second = await slots[2 * index + 1].call(
                        "spacetime.reask",
                        lambda: seat.runner.judge(again, json_schema=schema, max_tokens=reply_tokens, seed=reseed),
                    )
                except ModelError as exc:  # the first answer may still be usable: it is kept (rules §3)
                    decision = decide_ballot(parsed, order, ParsedBallot({}, (f"re-ask failed: model error: {exc}",)))
                else:
                    raws.append(second.text)
                    answers.append((parse_ballot(second.text, order), second))
                    decision = decide_ballot(parsed, order, answers[-1][0])
        except ModelError as exc:
            emit(BallotDone(seat.name, BallotStatus.ABSTAINED.value, 0))
            return Ballot(voter, BallotStatus.ABSTAINED, (), "\n---\n".join(raws), (f"model error: {exc}",))
        assert decision.status is not None
        votes: tuple[Vote, ...] = ()
        if decision.chosen is not None:
            excerpted = {item.alias: item.excerpted for item in items}
            positions = {alias: plan.position(alias) for alias in order}
            completion = next(c for p, c in answers if p is decision.chosen)
            expected = expected_scores(decision.chosen, score_readings(completion.tokens, order))
            votes = to_votes(voter, decision.chosen, alias_to_author, penalties, excerpted, positions, expected)
        emit(BallotDone(seat.name, decision.status.value, len(votes)))
        return Ballot(voter, decision.status, votes, "\n---\n".join(raws), decision.problems)

    emit(JudgmentStarted(tuple(s.name for s in seats)))
    return list(await asyncio.gather(*(one(seat, i) for i, seat in enumerate(seats))))
