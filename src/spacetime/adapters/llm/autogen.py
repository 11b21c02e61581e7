"""Living agents as AutoGen agents.

Each agent of a book is an ``autogen_agentchat.agents.AssistantAgent`` whose system message is its persona's
system prompt. Its ``model_client`` is a per-agent :class:`AgentModelAdapter`, an AutoGen ``ChatCompletionClient``
that forwards to our own ``ChatModel`` (shared by every agent on the same endpoint) and keeps what AutoGen drops:
the ``Completion`` with its finish reason, token counts and service time.

Per-call settings (``max_tokens``, ``json_schema``, ``temperature``, ``seed``) cannot travel through
``AssistantAgent.run``: each agent has its own adapter, calls on one :class:`PersonaAgent` run one at a time (the
``AssistantAgent`` keeps one model context), so the adapter simply holds the :class:`CallSettings` of the call in
flight (``AgentModelAdapter.calling``) and returns its ``Completion`` in them. No agent ever sees another's call.

No conversation accumulates: the agent's model context is cleared before and after every call. The book's
bounded memory lives elsewhere and is rendered into the prompt by the caller.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from autogen_agentchat.agents import AssistantAgent
from autogen_core import CancellationToken
from autogen_core.models import (
    AssistantMessage,
    ChatCompletionClient,
    CreateResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelCapabilities,
    ModelFamily,
    ModelInfo,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel

from spacetime.domain import NAME_MAX, Completion, FinishReason, Persona
from spacetime.ports import ChatModel, Message

DRAFT_TEMPERATURE = 0.8
JUDGE_TEMPERATURE = 0.2
"""Ballots are judgments, not prose: sampled cooler than drafts."""


@dataclass(slots=True)
class CallSettings:
    """Settings of one model call, and the ``Completion`` it produced (filled in by the adapter)."""

    max_tokens: int
    json_schema: dict[str, Any] | None = None
    temperature: float = DRAFT_TEMPERATURE
    seed: int | None = None
    completion: Completion | None = None


_AUTOGEN_FINISH: dict[FinishReason, Literal["stop", "length", "unknown"]] = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.OTHER: "unknown",
}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal user content / function calls: keep the text parts
        return "\n".join(part for part in content if isinstance(part, str))
    return str(content)


def to_messages(messages: Sequence[LLMMessage]) -> list[Message]:
    """AutoGen ``LLMMessage``s → our ``Message``s (tool results have no place in Space Time and are dropped)."""
    converted: list[Message] = []
    for m in messages:
        if isinstance(m, SystemMessage):
            converted.append(Message("system", m.content))
        elif isinstance(m, UserMessage):
            converted.append(Message("user", _text_of(m.content)))
        elif isinstance(m, AssistantMessage):
            converted.append(Message("assistant", _text_of(m.content)))
        elif isinstance(m, FunctionExecutionResultMessage):
            continue
        else:  # pragma: no cover - future message kinds
            raise TypeError(f"unsupported message type {type(m).__name__}")
    return converted


class AgentModelAdapter(ChatCompletionClient):
    """AutoGen ``ChatCompletionClient`` forwarding to a Space Time ``ChatModel``.

    One adapter per agent (so ``last_completion`` and usage are that agent's); many adapters share one
    ``ChatModel``. Settings come from the :class:`CallSettings` of the call in flight (``calling``, see module
    docs) or, outside ``PersonaAgent`` calls, from ``defaults``. ``close()`` does not close the shared model.
    """

    component_type = "model"

    def __init__(self, model: ChatModel, *, defaults: CallSettings | None = None) -> None:
        self._model = model
        self._defaults = defaults or CallSettings(max_tokens=512)
        self.last_completion: Completion | None = None
        self._call: CallSettings | None = None
        self._total = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._info = ModelInfo(
            vision=False,
            function_calling=False,
            json_output=True,
            structured_output=True,
            family=ModelFamily.UNKNOWN,
            multiple_system_messages=True,
        )

    @property
    def model(self) -> ChatModel:
        return self._model

    @contextmanager
    def calling(self, settings: CallSettings) -> Iterator[CallSettings]:
        """Use ``settings`` for the model calls made inside the block (one call at a time: the caller holds the
        agent's lock); the ``Completion`` is left in ``settings.completion``."""
        if self._call is not None:
            raise RuntimeError("one call at a time per agent adapter")
        self._call = settings
        try:
            yield settings
        finally:
            self._call = None

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        if tools:
            raise ValueError("Space Time agents use no tools")
        call = self._call
        if call is None:
            call = CallSettings(
                self._defaults.max_tokens,
                self._defaults.json_schema,
                self._defaults.temperature,
                self._defaults.seed,
            )
        completion = await self._model.complete(
            to_messages(messages),
            max_tokens=call.max_tokens,
            json_schema=call.json_schema,
            temperature=call.temperature,
            seed=call.seed,
        )
        call.completion = completion
        self.last_completion = completion
        usage = RequestUsage(prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens)
        self._total = RequestUsage(
            prompt_tokens=self._total.prompt_tokens + usage.prompt_tokens,
            completion_tokens=self._total.completion_tokens + usage.completion_tokens,
        )
        return CreateResult(
            finish_reason=_AUTOGEN_FINISH[completion.finish_reason],
            content=completion.text,
            usage=usage,
            cached=False,
        )

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        """No token streaming: yields the whole reply, then the result."""
        result = await self.create(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            json_output=json_output,
            extra_create_args=extra_create_args,
            cancellation_token=cancellation_token,
        )
        if isinstance(result.content, str) and result.content:
            yield result.content
        yield result

    async def close(self) -> None:
        """Nothing to release: the shared ``ChatModel`` belongs to whoever built it."""

    def actual_usage(self) -> RequestUsage:
        return self._total

    def total_usage(self) -> RequestUsage:
        return self._total

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return sum(self._model.count_tokens(m.content) for m in to_messages(messages))

    def remaining_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return self._model.context_window - self.count_tokens(messages)

    @property
    def capabilities(self) -> ModelCapabilities:
        return ModelCapabilities(vision=False, function_calling=False, json_output=True)

    @property
    def model_info(self) -> ModelInfo:
        return self._info


_NOT_IDENT = re.compile(r"[^0-9A-Za-z_]+")


def agent_name_for(persona_name: str) -> str:
    """A valid AutoGen agent name (a Python identifier, ASCII, ≤ 50 chars) from a persona name:
    ``"Dr. Ada Lovelace"`` → ``"Dr_Ada_Lovelace"``, ``"Émile"`` → ``"Emile"``, ``"42"`` → ``"agent_42"``."""
    ascii_name = unicodedata.normalize("NFKD", persona_name).encode("ascii", "ignore").decode("ascii")
    name = _NOT_IDENT.sub("_", ascii_name).strip("_")
    if not name:
        name = "agent"
    if name[0].isdigit():
        name = f"agent_{name}"
    return name[:NAME_MAX]


class PersonaAgent:
    """A persona alive in one book, as an AutoGen ``AssistantAgent`` on a shared ``ChatModel``.

    ``draft`` and ``judge`` each make exactly one model call on a fresh context (system prompt + the prompt) and
    return its ``Completion``; a failing backend raises ``ModelError``. Calls on one agent run one at a time.
    """

    def __init__(
        self, persona: Persona, model: ChatModel, *, name: str | None = None, system_message: str | None = None
    ) -> None:
        """``system_message`` defaults to the persona's system prompt; the engine passes one shared by all agents
        (and puts the persona in the prompt) so servers with prefix caching can reuse the common prefix."""
        self.persona = persona
        self.model = model
        self.name = name or agent_name_for(persona.name)
        self._adapter = AgentModelAdapter(model)
        self._agent: AssistantAgent | None = AssistantAgent(
            name=self.name,
            model_client=self._adapter,
            system_message=system_message if system_message is not None else persona.system_prompt,
            description=f"{persona.name} ({persona.discipline})",
        )
        self._lock = asyncio.Lock()

    @property
    def assistant(self) -> AssistantAgent:
        """The underlying AutoGen agent. Raises ``RuntimeError`` once closed."""
        if self._agent is None:
            raise RuntimeError(f"agent {self.name} is closed")
        return self._agent

    @property
    def last_completion(self) -> Completion | None:
        return self._adapter.last_completion

    async def draft(
        self, prompt: str, *, max_tokens: int, seed: int | None = None, temperature: float = DRAFT_TEMPERATURE
    ) -> Completion:
        """Write one chapter draft. Cut by ``max_tokens`` → ``finish_reason`` is ``LENGTH`` (kept, penalised)."""
        return await self._call(prompt, CallSettings(max_tokens, None, temperature, seed))

    async def judge(
        self,
        prompt: str,
        *,
        json_schema: dict[str, Any],
        max_tokens: int,
        seed: int | None = None,
        temperature: float = JUDGE_TEMPERATURE,
    ) -> Completion:
        """Return one ballot: the backend is asked for JSON matching ``json_schema`` when it can do it; the text
        is returned raw (parsing and repair belong to the tournament)."""
        return await self._call(prompt, CallSettings(max_tokens, json_schema, temperature, seed))

    async def _call(self, prompt: str, settings: CallSettings) -> Completion:
        if settings.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        agent = self.assistant
        async with self._lock:
            try:
                with self._adapter.calling(settings):
                    await agent.model_context.clear()
                    await agent.run(task=prompt)
            finally:
                await agent.model_context.clear()
        if settings.completion is None:  # pragma: no cover - AssistantAgent always calls the model once
            raise RuntimeError("the AutoGen agent returned without calling its model")
        return settings.completion

    async def close(self) -> None:
        """Release the AutoGen agent and its adapter; the shared ``ChatModel`` stays open."""
        agent, self._agent = self._agent, None
        if agent is not None:
            await agent.close()
            await self._adapter.close()
