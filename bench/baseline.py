"""The sequential baseline: what a user would otherwise write with AutoGen — a ``RoundRobinGroupChat`` taking turns
over the same agents (same personas, same endpoint): each agent drafts in turn, then each agent reviews in turn.

2N turns, one model call each, against the same server as the parallel epoch. Each agent is a ``PersonaAgent``
(an AutoGen ``AssistantAgent``) on a :class:`~bench.recording.PhaseModel`, so a draft turn is capped like a burst
draft and a review turn asks for the same JSON ballot (every other agent's draft) with the same reply cap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from autogen_agentchat.teams import RoundRobinGroupChat

from bench.recording import PhaseModel
from spacetime.adapters.llm.autogen import JUDGE_TEMPERATURE, PersonaAgent
from spacetime.domain import Persona
from spacetime.ports import ChatModel
from spacetime.rules.ballot import ballot_schema
from spacetime.rules.budget import ballot_reply_tokens

REVIEW_TASK = (
    "Every author above has written a draft of the chapter. Now review, in turn, every draft except your own: for "
    "each, an insight score from 1 to 10 and a one-sentence rationale, as ONE JSON object keyed by the author."
)


@dataclass
class BaselineResult:
    wall_s: float
    draft_s: float
    review_s: float
    turns: int


class RoundRobinBaseline:
    """Builds the team once; ``run(draft_task)`` plays one sequential epoch (the team is reset before each)."""

    def __init__(self, personas: list[Persona], model: ChatModel, *, max_tokens: int) -> None:
        self.n = len(personas)
        self.max_tokens = max_tokens
        self.phases = [PhaseModel(model, max_tokens=max_tokens) for _ in personas]
        self.agents = [PersonaAgent(p, phase) for p, phase in zip(personas, self.phases, strict=True)]
        names = [a.name for a in self.agents]
        reply = ballot_reply_tokens(self.n - 1)
        self.ballot = [(ballot_schema([n for n in names if n != own]), reply) for own in names]
        self.team = RoundRobinGroupChat([a.assistant for a in self.agents], max_turns=self.n)

    def _draft_phase(self) -> None:
        for phase in self.phases:
            phase.max_tokens, phase.json_schema, phase.temperature = self.max_tokens, None, 0.8

    def _review_phase(self) -> None:
        for phase, (schema, reply) in zip(self.phases, self.ballot, strict=True):
            phase.max_tokens, phase.json_schema, phase.temperature = reply, schema, JUDGE_TEMPERATURE

    async def run(self, draft_task: str) -> BaselineResult:
        await self.team.reset()
        self._draft_phase()
        t0 = time.perf_counter()
        drafted = await self.team.run(task=draft_task)
        t1 = time.perf_counter()
        self._review_phase()
        reviewed = await self.team.run(task=REVIEW_TASK)
        t2 = time.perf_counter()
        turns = sum(1 for m in drafted.messages + reviewed.messages if m.source != "user")
        return BaselineResult(t2 - t0, t1 - t0, t2 - t1, turns)

    async def close(self) -> None:
        for agent in self.agents:
            await agent.close()
