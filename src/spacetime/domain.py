"""Domain values of the tournament: frozen, typed, with no storage identity beyond ids and no I/O.

Vocabulary (see docs/design.md): a *book* is one tournament; an *epoch* one burst → judgment → collapse → reap;
a *persona* a reusable character sheet; an *agent* a persona alive in one book; a *draft* one agent's candidate
chapter; an *alias* the mask a draft wears during judgment; a *ballot* one agent's judgment of all other drafts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

NAME_MAX = 50
"""Agent and alias names are stored in the spec's ``VARCHAR(50)`` columns."""
INITIAL_RATING = 1500.0
"""Rating (openskill μ on the Elo-like scale, see rules/rating.py) and Elo column of a founding agent."""
INITIAL_SIGMA = 250.0
"""Rating uncertainty (openskill σ, same scale) of an agent about whom nothing is known yet."""


class PersonaOrigin(StrEnum):
    BUILTIN = "builtin"
    """Shipped with Space Time (prompts/personas.toml)."""
    CUSTOM = "custom"
    """Defined in a book's TOML file."""
    BRED = "bred"
    """Bred by the LLM from the best-rated personas when the reserve pool runs dry."""


class AgentStatus(StrEnum):
    ALIVE = "alive"
    ELIMINATED = "eliminated"


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    """Cut by the token cap: the draft is kept, its author takes the truncation penalty."""
    OTHER = "other"

    @classmethod
    def from_openai(cls, raw: str | None) -> FinishReason:
        """An OpenAI-style ``finish_reason`` (``stop``, ``length``; anything else, or none, is ``OTHER``)."""
        text = (raw or "").lower()
        return cls(text) if text in (cls.STOP, cls.LENGTH) else cls.OTHER


class BallotStatus(StrEnum):
    OK = "ok"
    """Valid JSON that matched the expected aliases on the first try."""
    REPAIRED = "repaired"
    """Parsed after repair (prose around JSON, broken JSON, clamped or missing entries dropped)."""
    REASKED = "reasked"
    """The first answer was unusable; the voter was asked once more and the second answer was used."""
    ABSTAINED = "abstained"
    """No usable answer after one re-ask: recorded, no votes from this voter."""


class BallotLayout(StrEnum):
    """How the drafts are laid out in the voters' ballot prompts (docs/rules.md §2)."""

    SHARED = "shared"
    """Every draft, in one of two orders per epoch (a random order and its reverse, half the voters each); the
    voter's own part after the drafts: prompts share their long prefix (server prefix caches)."""
    SHUFFLED = "shuffled"
    """The other drafts in an order shuffled for each voter alone: no two ballots share more than their header."""


@dataclass(frozen=True, slots=True)
class Persona:
    name: str
    """Unique name, also the agent's name inside a book (``Physicist``); at most 50 characters."""
    discipline: str
    """The field the persona speaks from (``Physics``)."""
    voice: str
    """One or two sentences on how the persona writes."""
    system_prompt: str
    origin: PersonaOrigin = PersonaOrigin.BUILTIN
    parents: tuple[str, ...] = ()
    """Names of the personas a bred persona descends from (empty otherwise)."""

    @property
    def description(self) -> str:
        """The text embedded to compare personas."""
        return f"{self.name} ({self.discipline}). {self.voice}"


@dataclass(frozen=True, slots=True)
class Agent:
    agent_id: UUID
    persona: Persona
    rating: float
    """Plackett–Luce skill μ (openskill, on the 1500 scale): the lowest living rating is eliminated."""
    status: AgentStatus = AgentStatus.ALIVE
    born_epoch: int = 0
    """Epoch number before which the agent entered (0 = founding roster)."""
    died_epoch: int | None = None
    model: str | None = None
    """Name of the model endpoint this agent uses; ``None`` means the book's default."""
    sigma: float = INITIAL_SIGMA
    """Uncertainty of ``rating`` (openskill σ, same scale)."""
    elo: float = INITIAL_RATING
    """The spec's Elo column, from the same within-ballot pairwise results (shown, never decides)."""

    @property
    def name(self) -> str:
        return self.persona.name


@dataclass(frozen=True, slots=True)
class TokenChoice:
    """One generated token and, where the backend exposes log-probabilities, the score-like alternatives it weighed.

    ``alternatives`` holds ``(token text, natural-log probability)`` for the number tokens (``0``–``10``) among the
    candidates at that step, as the model saw them before any grammar; empty when not recorded."""

    text: str
    alternatives: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Completion:
    """What one model call returned."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    """Service time of the call (queueing for a backend slot excluded)."""
    tokens: tuple[TokenChoice, ...] = ()
    """The generated tokens with their score alternatives, when asked for and the backend gives them (ballots)."""
    cached_tokens: int = 0
    """How many of ``prompt_tokens`` the server took from its prefix cache (OpenAI / vLLM
    ``usage.prompt_tokens_details.cached_tokens``, the embedded model's host in the same form; 0 when not said)."""
    endpoint: str = ""
    """The book's endpoint the call was made on, set by the book's metered model (``engine/metering.py``); kept in
    a durable epoch's record so a replayed call is counted where it was made."""


@dataclass(frozen=True, slots=True)
class Draft:
    agent_id: UUID
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    flags: tuple[str, ...] = ()
    """Screening findings (text addressed to the reviewers, see rules/screening.py); a flagged draft never wins."""

    @property
    def truncated(self) -> bool:
        return self.finish_reason is FinishReason.LENGTH


@dataclass(frozen=True, slots=True)
class Forfeit:
    """An agent whose call failed after retries: no draft (or no ballot) this epoch."""

    agent_id: UUID
    reason: str


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One draft as a voter sees it: masked, possibly cut to a fair excerpt."""

    alias: str
    text: str
    excerpted: bool = False


@dataclass(frozen=True, slots=True)
class ReviewPlan:
    """What one voter is shown and what it scores."""

    shown: tuple[str, ...]
    """The aliases of the drafts in the ballot, in display order (positions are 1-based places in it)."""
    own: str | None = None
    """The voter's own draft's alias when it is among ``shown`` (shared layout): shown, never scored."""

    @property
    def scored(self) -> tuple[str, ...]:
        """The aliases the voter scores, in display order: ``shown`` without its own."""
        return tuple(a for a in self.shown if a != self.own)

    def position(self, alias: str) -> int:
        """``alias``'s 1-based place in the display order."""
        return self.shown.index(alias) + 1


@dataclass(frozen=True, slots=True)
class Vote:
    voter_id: UUID
    target_id: UUID
    insight_score: int
    """1–10 as given by the voter."""
    rationale: str
    latency_penalty: float = 0.0
    """Points subtracted from this vote's score for the target draft (truncation + lateness), see scoring."""
    excerpted: bool = False
    """The voter reviewed an equal-length excerpt of the draft, not all of it (context window budget)."""
    position: int = 0
    """1-based position of the target draft in the voter's review order (0 = unknown)."""
    expected_score: float | None = None
    """The probability-weighted mean of the score tokens the voter weighed (G-Eval, ``rules/geval.py``), 1–10;
    ``None`` when the backend gave no log-probabilities."""

    @property
    def score(self) -> float:
        """The score the verdict and the audit use: ``expected_score`` when known, else ``insight_score``."""
        return self.insight_score if self.expected_score is None else self.expected_score


@dataclass(frozen=True, slots=True)
class Ballot:
    voter_id: UUID
    status: BallotStatus
    votes: tuple[Vote, ...] = ()
    raw: str = ""
    problems: tuple[str, ...] = ()
    """What was wrong with the raw answer(s), for the record."""


@dataclass(frozen=True, slots=True)
class DraftScore:
    agent_id: UUID
    mean_insight: float
    """Mean raw insight score received from the counted ballots (0 if none), for the record."""
    truncation_penalty: float
    """5.0 for a truncated draft, already subtracted from each vote before ranking (never again from ``total``)."""
    lateness_penalty: float
    """Fixed straggler penalty (beyond the dead band), subtracted from ``total`` only; see rules/scoring.py."""
    total: float
    """``insight − lateness_penalty``: what picks the chapter."""
    votes: int
    """Counted votes (from ballots that ranked at least two drafts)."""
    insight: float = 0.0
    """Normalised insight: 1 + 9 × mean within-ballot rank share (1–10 scale; 0 with no counted vote)."""
    ci_low: float = 0.0
    """95 % bootstrap-by-ballot interval of ``insight``."""
    ci_high: float = 0.0


@dataclass(frozen=True, slots=True)
class RatingChange:
    agent_id: UUID
    before: float
    after: float
    sigma_before: float = INITIAL_SIGMA
    sigma_after: float = INITIAL_SIGMA
    elo_before: float = INITIAL_RATING
    elo_after: float = INITIAL_RATING


@dataclass(frozen=True, slots=True)
class CollapseDecision:
    winner_id: UUID
    """Author of the draft that becomes the next chapter."""
    loser_id: UUID
    """The lowest-rated agent after this epoch's ratings: eliminated."""


@dataclass
class EpochOutcome:
    """What one played epoch decided, as the run reports it (the workflow's result)."""

    epoch_no: int
    epoch_id: UUID
    winner: str
    loser: str
    wall_s: float
    drafts: int
    votes: int
    completion_tokens: int
    forfeits: int


@dataclass(frozen=True, slots=True)
class EpochSummary:
    """A committed epoch as its outcome is reported (read back when a replayed epoch finds itself committed)."""

    epoch_id: UUID
    winner: str
    loser: str
    wall_s: float
    drafts: int
    votes: int
    completion_tokens: int
    forfeits: int


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """Everything one epoch writes, committed in one transaction by ``Store.write_epoch``."""

    book_id: UUID
    epoch_no: int
    active_agent_ids: tuple[UUID, ...]
    drafts: tuple[Draft, ...]
    aliases: dict[UUID, str]
    """Author id → alias used in this epoch's judgment."""
    ballots: tuple[Ballot, ...]
    scores: tuple[DraftScore, ...]
    ratings: tuple[RatingChange, ...]
    decision: CollapseDecision
    chapter_title: str
    chapter_text: str
    forfeits: tuple[Forfeit, ...] = ()
    draft_embeddings: dict[UUID, list[float]] = field(default_factory=dict)
    """Author id → embedding of the draft (may be empty when no embedder is configured)."""
    chapter_embedding: list[float] | None = None
    embedding_model: str | None = None
    start_time: float | None = None
    """Unix time the epoch started (the engine's clock)."""
    end_time: float | None = None
    verdict_confidence: float | None = None
    """Share of bootstrap-by-ballot replicates in which the chosen winner stays the winner (0–1)."""
    audit: Mapping[str, object] | None = None
    """The epoch's judging audit as JSON (``spacetime.rules.audit.JudgingHealth``, see docs/rules.md)."""
    usage: tuple[UsageLine, ...] = ()
    """The tokens the book's model calls used since the previous epoch's commit, by kind and endpoint (the
    epoch's drafts, ballots, re-asks and embeddings, its failed tries, and breeding that happened meanwhile)."""


@dataclass(frozen=True, slots=True)
class Book:
    """A stored book: one tournament (its configuration as stored, see ``spacetime.book.BookConfig``)."""

    book_id: UUID
    name: str
    topic: str
    outline: str | None
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Chapter:
    """One chapter of a book's canon: the winning draft of epoch ``epoch_no``."""

    position: int
    title: str
    text: str
    agent_name: str
    epoch_no: int


class ReplacementKind(StrEnum):
    """Why a newcomer entered (``reaper_events.kind``; shown by ``spacetime lineage`` as ``via``)."""

    ELIMINATION = "elimination"
    SWAP = "swap"
    TOP_UP = "top-up"
    """A resumed book seats a newcomer for a death that has none."""


class NewcomerSource(StrEnum):
    """Where a newcomer came from (``reaper_events.source``)."""

    RESERVE = "reserve"
    BRED = "bred"
    BRED_FALLBACK = "bred-fallback"
    """The deterministic child, when the model's answers were rejected or there was no time to breed."""
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class ReaperEvent:
    """One newcomer seated by the Reaper (a row of ``reaper_events``)."""

    epoch_no: int
    kind: ReplacementKind
    out_agent_id: UUID | None
    in_agent_id: UUID
    source: NewcomerSource
    prepared_s: float | None
    stall_ms: float | None
    note: str | None = None


# --------------------------------------------------------------------------- tokens and cost
class CallKind(StrEnum):
    """What a model call was for (``epoch_usage.kind``)."""

    DRAFT = "draft"
    BALLOT = "ballot"
    REASK = "reask"
    """The one re-ask of a voter whose first ballot was unusable."""
    BREEDING = "breeding"
    """The Reaper asking the book's model for a new persona."""
    EMBEDDING = "embedding"
    """Draft and persona embeddings (input tokens only)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens used by some model calls; ``+`` adds them up."""

    calls: int = 0
    prompt_tokens: int = 0
    """Every prompt token sent, the cached ones included (an embedding's input tokens)."""
    cached_tokens: int = 0
    """Of ``prompt_tokens``, how many the server read from its prefix cache."""
    completion_tokens: int = 0

    def __post_init__(self) -> None:
        if min(self.calls, self.prompt_tokens, self.cached_tokens, self.completion_tokens) < 0:
            raise ValueError(f"token counts are never negative: {self}")

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.calls + other.calls,
            self.prompt_tokens + other.prompt_tokens,
            self.cached_tokens + other.cached_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    @property
    def total_tokens(self) -> int:
        """Prompt + completion tokens: what a token budget counts."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def uncached_tokens(self) -> int:
        """Prompt tokens the server had to read (a cache cannot hold more than was sent)."""
        return self.prompt_tokens - min(self.cached_tokens, self.prompt_tokens)

    @classmethod
    def of(cls, completion: Completion) -> Usage:
        """The usage of one chat call."""
        prompt = max(0, completion.prompt_tokens)
        return cls(1, prompt, min(max(0, completion.cached_tokens), prompt), max(0, completion.completion_tokens))


@dataclass(frozen=True, slots=True)
class UsageLine:
    """The usage of one kind of call on one endpoint (a row of ``epoch_usage``)."""

    kind: CallKind
    endpoint: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class Price:
    """What an endpoint's tokens cost, in US dollars per million tokens (``[endpoints.NAME.price]``)."""

    input: float
    """Per million prompt tokens the server had to read."""
    output: float
    """Per million completion tokens."""
    cached_input: float | None = None
    """Per million prompt tokens read from the server's prefix cache; ``None``: the ``input`` price."""


@dataclass(frozen=True, slots=True)
class Budget:
    """A book's spending limit (``[budget]``): once the book's stored usage reaches either, it stops at the next
    epoch boundary. ``None`` = no limit."""

    max_tokens_total: int | None = None
    """Prompt + completion tokens of every call of the book, all epochs."""
    max_cost: float | None = None
    """US dollars, counted on the priced endpoints (``[endpoints.NAME.price]``)."""

    @property
    def limited(self) -> bool:
        return self.max_tokens_total is not None or self.max_cost is not None
