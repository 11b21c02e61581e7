"""A seat at the table: one living agent, its AutoGen-backed runner and the model endpoint it talks to."""

from __future__ import annotations

from dataclasses import dataclass

from spacetime.domain import Agent
from spacetime.models.agents import PersonaAgent
from spacetime.models.base import ChatModel


@dataclass(slots=True)
class Seat:
    agent: Agent
    runner: PersonaAgent
    model: ChatModel

    @property
    def name(self) -> str:
        return self.agent.name
