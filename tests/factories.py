"""Builders of realistic domain values for store and deck tests (no model involved)."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from uuid import UUID

from spacetime.domain import (
    Agent,
    Ballot,
    BallotStatus,
    CollapseDecision,
    Draft,
    DraftScore,
    EpochRecord,
    FinishReason,
    Persona,
    RatingChange,
    TokenChoice,
    Vote,
)

NAMES = ["Physicist", "Financier", "Politician", "Mathematician", "Technologist", "Cyberneticist", "Philosopher",
         "Biologist", "Historian", "Economist", "Artist", "Chemist"]


def persona(name: str) -> Persona:
    return Persona(name=name, discipline=name.removesuffix("ist") or name, voice=f"Writes like a {name}.",
                   system_prompt=f"You are the {name}.")


def make_epoch(book_id: UUID, epoch_no: int, agents: list[Agent], *, rng: random.Random | None = None,
               dim: int = 8, embeddings: bool = True, bad_score: bool = False) -> EpochRecord:
    """A complete epoch record: N drafts, N·(N−1) votes, ratings, a winner and a loser."""
    rng = rng or random.Random(epoch_no)
    ids = [a.agent_id for a in agents]
    drafts = tuple(
        Draft(agent_id=i, text=f"Chapter draft by {a.name} in epoch {epoch_no}. " * 5,
              finish_reason=FinishReason.LENGTH if k == 0 else FinishReason.STOP,
              prompt_tokens=300, completion_tokens=200 + k, latency_s=1.0 + k / 10)
        for k, (i, a) in enumerate(zip(ids, agents, strict=True))
    )
    aliases = {i: f"Anonymous_Scribe_{k + 1}" for k, i in enumerate(ids)}
    ballots = []
    for voter in ids:
        written = {t: 11 if bad_score else rng.randint(1, 10) for t in ids if t != voter}
        votes = tuple(  # the first voter's backend gave log-probabilities (a G-Eval expectation), the others' not
            Vote(voter_id=voter, target_id=t, insight_score=score, rationale=f"{aliases[t]} argues well.",
                 latency_penalty=5.0 if t == ids[0] else 0.0,
                 expected_score=min(score + 0.25, 10.0) if voter == ids[0] else None)
            for t, score in written.items()
        )
        ballots.append(Ballot(voter_id=voter, status=BallotStatus.OK, votes=votes, raw="{}"))
    scores = tuple(DraftScore(agent_id=i, mean_insight=5.0, truncation_penalty=5.0 if i == ids[0] else 0.0,
                              lateness_penalty=0.0, total=float(k), votes=len(ids) - 1) for k, i in enumerate(ids))
    ratings = tuple(RatingChange(agent_id=a.agent_id, before=a.rating, after=a.rating + (k - 2) * 4.0)
                    for k, a in enumerate(agents))
    vec = {i: [rng.random() for _ in range(dim)] for i in ids} if embeddings else {}
    return EpochRecord(
        book_id=book_id, epoch_no=epoch_no, active_agent_ids=tuple(ids), drafts=drafts, aliases=aliases,
        ballots=tuple(ballots), scores=scores, ratings=ratings,
        decision=CollapseDecision(winner_id=ids[-1], loser_id=ids[0]),
        chapter_title=f"Chapter {epoch_no}", chapter_text=drafts[-1].text,
        draft_embeddings=vec, chapter_embedding=vec.get(ids[-1]), embedding_model="test-hash" if embeddings else None,
        start_time=1_700_000_000.0 + epoch_no, end_time=1_700_000_060.0 + epoch_no,
    )


def ballot_tokens(text: str, numbers: Mapping[int, Mapping[str, float]]) -> list[TokenChoice]:
    """``text`` split like a digit-splitting tokenizer (each digit its own token; words, spaces and punctuation
    apart), the i-th number token after an ``"insight_score":`` carrying ``numbers[i]`` ({number text:
    probability}) as its log-probability alternatives (default: all mass on the number written)."""
    pieces = re.findall(r"\d|[A-Za-z_]+|\s+|[^\sA-Za-z_\d]", text)
    tokens: list[TokenChoice] = []
    seen, so_far = 0, ""
    for piece in pieces:
        alternatives: tuple[tuple[str, float], ...] = ()
        if piece.isdigit() and re.search(r'"insight_score"\s*:\s*$', so_far):
            chosen = numbers.get(seen, {piece: 1.0})
            alternatives = tuple((t, math.log(p)) for t, p in chosen.items())
            seen += 1
        tokens.append(TokenChoice(piece, alternatives))
        so_far += piece
    return tokens
