"""Tokens and cost in the engine, without PostgreSQL: every call of an epoch is counted by kind in the book's meter
and stored with the epoch; a book with a budget stops at the first epoch boundary where it has reached it."""

from __future__ import annotations

import dataclasses
import json
import math
import random

from spacetime.adapters.llm.fake import HashEmbedder, ScriptedCall, ScriptedModel
from spacetime.book import BookConfig, load_book
from spacetime.domain import Budget, CallKind, Completion, FinishReason, Price, Usage, UsageLine
from spacetime.engine import metering
from spacetime.engine.director import Director
from spacetime.engine.events import BudgetReached, EpochCommitted
from spacetime.engine.models import ModelPool
from spacetime.ports import Message
from spacetime.rules.cost import total
from tests.engine.memory_repo import MemoryRepository

REASK = "could not be read as the requested ballot"


def _model(seed: int, *, reask: bool = False) -> ScriptedModel:
    """Drafts whose prompts are half cached; ballots valid (``reask``: the first answer of each voter unusable)."""
    rng = random.Random(seed)

    def respond(call: ScriptedCall) -> str | Completion:
        if call.json_schema is not None:
            if reask and REASK not in call.prompt:
                return "I would rather not say."
            return json.dumps({a: {"insight_score": rng.randint(1, 10), "rationale": f"{a} is clear."}
                               for a in call.json_schema["properties"]})  # fmt: skip
        text = "On time\n" + " ".join(f"idea{rng.randint(1, 500)}" for _ in range(20))
        prompt = sum(len(m.content.split()) for m in call.messages)
        return Completion(text, FinishReason.STOP, prompt, 21, 0.0, cached_tokens=prompt // 2)

    return ScriptedModel(replies=respond, name="embedded")


def _config(**changes: object) -> BookConfig:
    return dataclasses.replace(load_book(None), seed=3, max_tokens=64, **changes)  # type: ignore[arg-type]


async def _play(config: BookConfig, model: ScriptedModel, epochs: int) -> tuple[MemoryRepository, list[object]]:
    repo = MemoryRepository()
    book = await repo.create_book("book", config.topic, config.outline, config.to_json())
    await repo.upsert_personas(config.roster + config.reserve)
    pool = ModelPool(config, prebuilt={"embedded": model}, prebuilt_embedder=HashEmbedder(dim=16))
    events: list[object] = []
    async with Director(store=repo, book=book, config=config, models=pool, retry_waits_s=(0.0,),
                        emit=events.append) as director:  # fmt: skip
        await director.play(epochs)
    return repo, events


async def test_every_call_of_an_epoch_is_counted_by_kind_and_stored_with_it() -> None:
    config = _config(prices={"embedded": Price(input=1.0, output=2.0, cached_input=0.5)})
    model = _model(1, reask=True)
    repo, events = await _play(config, model, 1)
    (record,) = repo.epochs.values()
    by = {line.kind: line for line in record.usage}
    assert set(by) == {CallKind.DRAFT, CallKind.BALLOT, CallKind.REASK, CallKind.EMBEDDING}
    assert all(line.endpoint == "embedded" for line in record.usage)
    drafts = by[CallKind.DRAFT].usage
    assert drafts.calls == 5 and drafts.prompt_tokens == sum(d.prompt_tokens for d in record.drafts)
    assert drafts.cached_tokens == sum(d.prompt_tokens // 2 for d in record.drafts) > 0
    assert drafts.completion_tokens == sum(d.completion_tokens for d in record.drafts)
    assert by[CallKind.BALLOT].usage.calls == 5 and by[CallKind.REASK].usage.calls == 5  # one re-ask per voter
    ballots = [c for c in model.calls if c.json_schema is not None]
    assert by[CallKind.BALLOT].usage.prompt_tokens + by[CallKind.REASK].usage.prompt_tokens == sum(
        sum(model.count_tokens(m.content) for m in c.messages) for c in ballots)  # fmt: skip
    # the hashing embedder counts nothing: its input is estimated (utf-8 bytes / 4, per text)
    texts = [d.text for d in record.drafts]
    estimate = sum(math.ceil(len(t.encode()) / metering.ESTIMATE_BYTES_PER_TOKEN) for t in texts)
    assert by[CallKind.EMBEDDING].usage == Usage(calls=1, prompt_tokens=estimate)
    (committed,) = [e for e in events if isinstance(e, EpochCommitted)]
    assert committed.usage == total(record.usage) and committed.usage.calls == 16
    assert committed.cost is not None and committed.cost > 0
    assert await repo.book_usage(record.book_id) == record.usage


async def test_a_book_stops_cleanly_at_the_epoch_boundary_where_its_budget_is_reached() -> None:
    repo, _ = await _play(_config(), _model(2), 2)
    first, second = (total(r.usage).total_tokens for r in repo.epochs.values())
    # a budget the first epoch does not reach but the first two do: two epochs are played, the third is not
    limit = first + second // 2
    repo, events = await _play(_config(budget=Budget(max_tokens_total=limit)), _model(2), 5)
    assert len(repo.epochs) == 2
    spent = sum(total(r.usage).total_tokens for r in repo.epochs.values())
    (stop,) = [e for e in events if isinstance(e, BudgetReached)]
    assert stop.line == f'book "book": token budget reached ({spent:,} of {limit:,} tokens) after epoch 2'
    # without a budget the same book plays every epoch asked for
    repo, events = await _play(_config(), _model(2), 3)
    assert len(repo.epochs) == 3 and not [e for e in events if isinstance(e, BudgetReached)]


async def test_breeding_and_replayed_calls_are_counted_where_they_belong() -> None:
    meter = metering.UsageMeter()
    inner = ScriptedModel(replies=["{}"], cycle=True, name="m")
    model = metering.MeteredModel(inner, meter, "vllm")
    with metering.calls(CallKind.BREEDING):
        done = await model.complete([Message("user", "breed one")], max_tokens=8)
    await model.complete([Message("user", "a draft")], max_tokens=8)  # nothing said: a draft
    assert done.endpoint == "vllm"
    assert [(x.kind, x.endpoint, x.usage.calls) for x in meter.pending()] == [
        (CallKind.DRAFT, "vllm", 1), (CallKind.BREEDING, "vllm", 1)]  # fmt: skip
    # a durable step answered from its record: counted in the epoch's meter, under the endpoint it was made on
    with metering.metering(meter):
        metering.replayed("spacetime.reask", dataclasses.replace(done, prompt_tokens=40, completion_tokens=2))
        metering.replayed("spacetime.ballot", Completion("{}", FinishReason.STOP, 9, 1, 0.0))  # no endpoint: not ours
        metering.replayed("spacetime.embed", [[1.0, 0.0]])
    taken = meter.take()
    assert UsageLine(CallKind.REASK, "vllm", Usage(1, 40, 0, 2)) in taken and len(taken) == 3
    assert meter.pending() == ()
    meter.give_back(taken)
    assert meter.pending() == taken
