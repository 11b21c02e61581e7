"""A seat at the table: one living agent, its AutoGen-backed runner and the model endpoint it talks to."""

from __future__ import annotations

from dataclasses import dataclass

from spacetime.adapters.llm.autogen import PersonaAgent
from spacetime.domain import Agent
from spacetime.ports import ChatModel


@dataclass(slots=True)
class Seat:
    agent: Agent
    runner: PersonaAgent
    model: ChatModel

    @property
    def name(self) -> str:
        return self.agent.name
