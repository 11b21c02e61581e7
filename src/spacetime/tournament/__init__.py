"""The tournament's rules as pure functions: anonymize, budget, ballot, scoring, rating, selection.

No asyncio, no SQL, no I/O, no model calls; randomness comes in as a ``random.Random``. docs/rules.md explains
every rule and constant for users.
"""

from spacetime.tournament.anonymize import MASKS, allowed_masks, assign_aliases, review_orders
from spacetime.tournament.ballot import (
    SPOTLIGHT_RULE,
    BallotDecision,
    BallotEntry,
    ParsedBallot,
    ballot_schema,
    decide_ballot,
    is_complete,
    is_usable,
    neutralise,
    parse_ballot,
    spotlight,
    to_votes,
)
from spacetime.tournament.budget import (
    EXCERPT_MARKER,
    MIN_EXCERPT_TOKENS,
    ballot_reply_tokens,
    drafts_budget,
    excerpt,
    fair_cap,
    fit_drafts,
)
from spacetime.tournament.rating import INITIAL_RATING, K_FACTOR, elo_update, expected_score
from spacetime.tournament.scoring import (
    LATENESS_WEIGHT,
    TRUNCATION_PENALTY,
    Penalties,
    draft_penalties,
    lateness,
    rated_totals,
    score_drafts,
)
from spacetime.tournament.selection import collapse, pick_loser, pick_winner

__all__ = [
    "EXCERPT_MARKER",
    "INITIAL_RATING",
    "K_FACTOR",
    "LATENESS_WEIGHT",
    "MASKS",
    "MIN_EXCERPT_TOKENS",
    "SPOTLIGHT_RULE",
    "TRUNCATION_PENALTY",
    "BallotDecision",
    "BallotEntry",
    "ParsedBallot",
    "Penalties",
    "allowed_masks",
    "assign_aliases",
    "ballot_reply_tokens",
    "ballot_schema",
    "collapse",
    "decide_ballot",
    "draft_penalties",
    "drafts_budget",
    "elo_update",
    "excerpt",
    "expected_score",
    "fair_cap",
    "fit_drafts",
    "is_complete",
    "is_usable",
    "lateness",
    "neutralise",
    "parse_ballot",
    "pick_loser",
    "pick_winner",
    "rated_totals",
    "review_orders",
    "score_drafts",
    "spotlight",
    "to_votes",
]
