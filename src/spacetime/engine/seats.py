"""A seat at the table: one living agent, its AutoGen-backed runner and the model endpoint it talks to.

A seat is a value: the Director owns the roster (agent id → seat) and replaces a seat
(``dataclasses.replace(seat, agent=...)``) when its agent changes, e.g. after a rating update."""

from __future__ import annotations

from dataclasses import dataclass

from spacetime.adapters.llm.autogen import PersonaAgent
from spacetime.domain import Agent
from spacetime.ports import ChatModel


@dataclass(frozen=True, slots=True)
class Seat:
    agent: Agent
    runner: PersonaAgent
    model: ChatModel

    @property
    def name(self) -> str:
        return self.agent.name
