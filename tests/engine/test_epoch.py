"""One epoch without PostgreSQL: ``run_epoch`` (pure of storage) and the Director on an in-memory repository,
with a scripted model and the hashing embedder."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from spacetime.adapters.llm.fake import HashEmbedder, ScriptedCall, ScriptedModel
from spacetime.book import BookConfig, load_book
from spacetime.domain import BallotStatus, Completion, EpochRecord, FinishReason
from spacetime.engine.director import Director
from spacetime.engine.epoch import epoch_rng, run_epoch
from spacetime.engine.events import EmbeddingsSkipped, EpochRetry, Listener
from spacetime.engine.models import ModelPool
from spacetime.errors import CapacityError, ConfigError, ModelError
from spacetime.ports import Embedder
from spacetime.rules.canon import DraftContext, split_title
from spacetime.rules.selection import judge
from tests.engine.memory_repo import MemoryRepository
from tests.engine.scripted import speaks_for
from tests.factories import ballot_tokens


def _responder(seed: int) -> tuple[ScriptedModel, random.Random]:
    """Drafts that never name their author (so a name in a ballot prompt could only come from the engine); valid
    ballots with random scores."""
    rng = random.Random(seed)

    def respond(call: ScriptedCall) -> str:
        if call.json_schema is not None:
            return json.dumps({a: {"insight_score": rng.randint(1, 10), "rationale": f"{a} is clear."}
                               for a in call.json_schema["properties"]})  # fmt: skip
        return "On time and its measure\n" + " ".join(f"idea{rng.randint(1, 500)}" for _ in range(30))

    return ScriptedModel(replies=respond, name="embedded"), rng


def _config(seed: int = 1) -> BookConfig:
    return dataclasses.replace(load_book(None), seed=seed, max_tokens=64)


@asynccontextmanager
async def _director(repo: MemoryRepository, model: ScriptedModel, config: BookConfig) -> AsyncIterator[Director]:
    book = await repo.create_book("book", config.topic, config.outline, config.to_json())
    await repo.upsert_personas(config.roster + config.reserve)
    pool = ModelPool(config, prebuilt={"embedded": model}, prebuilt_embedder=HashEmbedder(dim=16))
    async with Director(store=repo, book=book, config=config, models=pool, retry_waits_s=(0.0,)) as director:
        yield director


async def _opening(
    director: Director, config: BookConfig, *, embedder: Embedder | None = None, emit: Listener | None = None
) -> EpochRecord:
    """Epoch 1 (no canon, no notes) played by ``run_epoch`` with the director's seats; nothing is written."""
    return await run_epoch(
        list(director.seats.values()), book=director.book, config=config, epoch_no=1,
        context=DraftContext(previous=None, passages=(), retrieved=False), memories={},
        rng=epoch_rng(config.seed, 1, 1), embedder=embedder, started=0.0, clock=lambda: 1.0,
        emit=emit or director.emit,
    )  # fmt: skip


async def test_one_epoch_is_played_by_the_rules_and_writes_nothing() -> None:
    repo = MemoryRepository()
    model, _ = _responder(11)
    config = _config()
    async with _director(repo, model, config) as director:
        seats = list(director.seats.values())
        record = await run_epoch(
            seats, book=director.book, config=config, epoch_no=1,
            context=DraftContext(previous=None, passages=(), retrieved=False), memories={},
            rng=epoch_rng(config.seed, 1, 1), embedder=director.models.embedder(), started=100.0,
            clock=lambda: 160.0, emit=director.emit,
        )  # fmt: skip
    assert repo.epochs == {} and await repo.chapters(director.book.book_id) == []  # nothing written

    living = {a.agent_id: a for a in await repo.agents(director.book.book_id, alive_only=True)}
    assert len(living) == len(config.roster) == 5
    # one draft per living agent; each is masked by its own alias
    assert sorted(map(str, (d.agent_id for d in record.drafts))) == sorted(map(str, living))
    assert set(record.active_agent_ids) == set(living) and set(record.aliases) == set(living)
    assert len(set(record.aliases.values())) == 5
    # every voter scores every draft but its own
    assert len(record.ballots) == 5
    for ballot in record.ballots:
        assert {v.target_id for v in ballot.votes} == set(living) - {ballot.voter_id}
    # the ballot prompts show aliases, never who wrote what: no name or discipline of any agent outside the
    # voter's own persona paragraph, and never the voter's own alias
    calls = [c for c in model.calls if c.json_schema is not None]
    assert len(calls) == 5
    for call in calls:
        (voter,) = [a for a in living.values() if a.persona.system_prompt in call.prompt]
        aliases = set(call.json_schema["properties"])  # type: ignore[index]
        assert aliases == {record.aliases[a] for a in living if a != voter.agent_id}
        shown = call.prompt.replace(voter.persona.system_prompt, "").lower()
        assert all(alias.lower() in shown for alias in aliases)
        for agent in living.values():
            assert agent.name.lower() not in shown and agent.persona.discipline.lower() not in shown
    # the chapter is the winning draft: the best total among the judged drafts
    scores = {s.agent_id: s for s in record.scores}
    winner = next(d for d in record.drafts if d.agent_id == record.decision.winner_id)
    assert scores[winner.agent_id].total == max(s.total for s in scores.values() if s.votes > 0)
    assert all(1.0 <= s.ci_low <= s.insight <= s.ci_high <= 10.0 for s in scores.values())
    assert record.verdict_confidence is not None and 0.0 <= record.verdict_confidence <= 1.0
    assert (record.chapter_title, record.chapter_text) == split_title(winner.text, 1)
    assert record.chapter_embedding == record.draft_embeddings[winner.agent_id] and len(record.draft_embeddings) == 5
    assert record.embedding_model == "hash-bow-16"
    # ratings are the rules' verdict on these ballots, and the loser is the lowest-rated agent after them (the
    # winner spared)
    before = {r.agent_id: r.before for r in record.ratings}
    after = {r.agent_id: r.after for r in record.ratings}
    assert before == {a: agent.rating for a, agent in living.items()}
    votes = [v for b in record.ballots for v in b.votes]
    verdict = judge(list(record.drafts), votes, [living[a] for a in record.active_agent_ids], random.Random(0))
    assert record.ratings == verdict.ratings and {s.agent_id: s.total for s in record.scores} == {
        a: s.total for a, s in verdict.scores.items()
    }
    assert after[record.decision.loser_id] == min(r for a, r in after.items() if a != winner.agent_id)
    assert record.decision.loser_id != winner.agent_id
    assert (record.start_time, record.end_time) == (100.0, 160.0)


async def test_the_director_writes_one_epoch_and_one_chapter() -> None:
    repo = MemoryRepository()
    model, _ = _responder(12)
    async with _director(repo, model, _config()) as director:
        assert director.reaper is None  # the Reaper needs PostgreSQL: here the loser just leaves the table
        [outcome] = await director.play(1)
        seated = {s.agent.agent_id for s in director.seats.values()}
    book_id = director.book.book_id
    [(epoch_id, record)] = repo.epochs.items()
    assert outcome.epoch_id == epoch_id and outcome.epoch_no == record.epoch_no == 1
    assert (outcome.drafts, outcome.votes, outcome.forfeits) == (5, 20, 0)
    [chapter] = await repo.chapters(book_id)
    assert (chapter.position, chapter.title, chapter.text) == (1, record.chapter_title, record.chapter_text)
    assert chapter.agent_name == outcome.winner
    names = {a.agent_id: a.name for a in await repo.agents(book_id)}
    assert names[record.decision.loser_id] == outcome.loser
    alive = {a.agent_id: a for a in await repo.agents(book_id, alive_only=True)}
    assert set(alive) == set(record.active_agent_ids) - {record.decision.loser_id} == seated
    assert {a: agent.rating for a, agent in alive.items()} == {
        r.agent_id: r.after for r in record.ratings if r.agent_id in alive
    }
    assert len(model.calls) == 2 * 5  # N drafts + N ballots


async def test_epochs_follow_each_other_on_the_canon() -> None:
    repo = MemoryRepository()
    model, _ = _responder(13)
    async with _director(repo, model, _config(seed=2)) as director:
        outcomes = await director.play(2)
    book_id = director.book.book_id
    first, second = repo.epochs.values()
    assert [o.epoch_no for o in outcomes] == [first.epoch_no, second.epoch_no] == [1, 2]
    assert set(second.active_agent_ids) == set(first.active_agent_ids) - {first.decision.loser_id}
    assert [c.position for c in await repo.chapters(book_id)] == [1, 2]
    # epoch 2's draft prompts carry chapter 1 (the whole canon fits the budget)
    drafts_2 = [c for c in model.calls[-8:] if c.json_schema is None]
    assert len(drafts_2) == 4 and all(first.chapter_text in c.prompt for c in drafts_2)
    assert len(await repo.agents(book_id, alive_only=True)) == 3


async def test_a_director_that_fails_to_start_releases_its_table() -> None:
    class FailingReaper:
        stopped = False

        async def start(self) -> None:
            raise ConfigError("the reaper could not start")

        async def stop(self) -> None:
            self.stopped = True

    repo = MemoryRepository()
    model, _ = _responder(14)
    config = _config()
    book = await repo.create_book("book", config.topic, config.outline, config.to_json())
    reaper = FailingReaper()
    director = Director(store=repo, book=book, config=config, models=ModelPool(config, prebuilt={"embedded": model}),
                        reaper=reaper)  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(ConfigError, match="could not start"):
        async with director:
            pytest.fail("the Director did not start")
    assert reaper.stopped and director.seats == {}
    assert len(await repo.agents(book.book_id, alive_only=True)) == 5  # the roster was seated, then released


async def test_an_epoch_without_a_counted_vote_is_retried_then_stops_with_one_line() -> None:
    rng = random.Random(15)

    def respond(call: ScriptedCall) -> str:
        if call.json_schema is not None:
            return "I decline to judge."  # no usable ballot, even after the re-ask: every voter abstains
        return "On time and its measure\n" + " ".join(f"idea{rng.randint(1, 500)}" for _ in range(30))

    repo = MemoryRepository()
    retries: list[object] = []
    async with _director(repo, ScriptedModel(replies=respond, name="embedded"), _config()) as director:
        director.emit = retries.append
        with pytest.raises(ModelError, match="no judge produced a counted vote after 2 tries"):
            await director.play(1)
    assert repo.epochs == {} and await repo.chapters(director.book.book_id) == []  # nothing decided, nothing written
    assert [e for e in retries if isinstance(e, EpochRetry)] == [EpochRetry(1, 5, 0.0)]


async def test_judges_that_write_one_number_are_read_by_their_probabilities() -> None:
    """Every judge writes 5 for every draft (SmolLM2's habit) while its number probabilities favour the better
    drafts: the votes carry the G-Eval expectations, the verdict ranks by them, and the audit counts the ballots
    tied as written but not as ranked."""
    config = _config(seed=5)
    quality = {p.name: 2 + i for i, p in enumerate(config.roster)}  # hidden quality 2..6, by roster order
    shown = re.compile(r"Draft (Anonymous_\w+?)(?: \(excerpt\))?:\n(.*?)<<END-", re.DOTALL)

    def respond(call: ScriptedCall) -> str | Completion:
        if call.json_schema is None:
            who = next(n for n in quality if speaks_for(call, n))
            return f"On time\nA draft of quality q{quality[who]} " + " ".join(["word"] * 20)
        aliases = list(call.json_schema["properties"])
        texts = {m.group(1): m.group(2) for m in shown.finditer(call.prompt)}
        text = json.dumps({a: {"insight_score": 5, "rationale": "fine"} for a in aliases})
        numbers = {}
        for i, alias in enumerate(aliases):
            q = int(re.search(r"q(\d)", texts[alias]).group(1))  # type: ignore[union-attr]
            numbers[i] = {"5": 0.5, str(q + 3): 0.5}  # expectation 4 + q / 2
        return Completion(text, FinishReason.STOP, 10, 10, 0.0, tuple(ballot_tokens(text, numbers)))

    repo = MemoryRepository()
    model = ScriptedModel(replies=respond, name="embedded")
    async with _director(repo, model, config) as director:
        seats = list(director.seats.values())
        record = await _opening(director, config)
    names = {s.agent.agent_id: s.name for s in seats}
    votes = [v for b in record.ballots for v in b.votes]
    assert len(votes) == 20 and all(v.insight_score == 5 for v in votes)
    assert all(v.expected_score == 5.0 / 2 + (quality[names[v.target_id]] + 3) / 2 for v in votes)
    assert names[record.decision.winner_id] == config.roster[-1].name  # the best draft, by the probabilities
    assert names[record.decision.loser_id] == config.roster[0].name  # the worst
    audit = record.audit or {}
    ties = audit["ties"]
    assert isinstance(ties, dict) and (ties["ballots"], ties["written"], ties["ranked"]) == (5, 5, 0)


async def test_a_failed_re_ask_keeps_the_usable_first_answer() -> None:
    """The Physicist's first ballot scores two of its four drafts; the re-ask then fails at the endpoint: the two
    valid scores still count (status repaired, the failure recorded), as rules §3 promises."""
    model, _ = _responder(17)
    base = model.replies
    assert callable(base)

    def respond(call: ScriptedCall) -> str | BaseException:
        if call.json_schema is not None and speaks_for(call, "Physicist"):
            if "could not be read as the requested ballot" in call.prompt:
                return ModelError("model endpoint 'embedded': HTTP 503 after 4 attempts")
            first_two = list(call.json_schema["properties"])[:2]
            return json.dumps({a: {"insight_score": 7, "rationale": "fine"} for a in first_two})
        return base(call)  # type: ignore[return-value]

    config = _config(seed=9)
    repo = MemoryRepository()
    async with _director(repo, ScriptedModel(replies=respond, name="embedded"), config) as director:
        seats = list(director.seats.values())
        record = await _opening(director, config)
    physicist = next(s.agent.agent_id for s in seats if s.name == "Physicist")
    ballot = next(b for b in record.ballots if b.voter_id == physicist)
    assert ballot.status is BallotStatus.REPAIRED and len(ballot.votes) == 2
    assert all(v.insight_score == 7 for v in ballot.votes)
    assert any("re-ask failed: model error: model endpoint 'embedded': HTTP 503" in p for p in ballot.problems)


class _BrokenEmbedder:
    name = "broken-embedder"

    async def embed(self, texts: object) -> list[list[float]]:
        raise ModelError("embedder 'vllm-embed': HTTP 503 after 4 attempts")

    async def aclose(self) -> None:
        return None


async def test_a_failing_embedder_never_costs_an_epoch() -> None:
    model, _ = _responder(19)
    config = _config(seed=3)
    repo = MemoryRepository()
    heard: list[object] = []
    async with _director(repo, model, config) as director:
        record = await _opening(director, config, embedder=_BrokenEmbedder(), emit=heard.append)
    assert len(record.drafts) == 5 and record.chapter_text  # the epoch was played and decided
    assert record.draft_embeddings == {} and record.chapter_embedding is None and record.embedding_model is None
    assert EmbeddingsSkipped("embedder 'vllm-embed': HTTP 503 after 4 attempts") in heard


async def test_an_epoch_its_judges_cannot_hold_stops_before_any_draft_is_written() -> None:
    """A judge window too small for a ballot over four cap-length drafts (even cut to the shortest excerpt) is found
    before the burst: no model call is made, and the error says what to change."""
    model = ScriptedModel(replies=_responder(21)[0].replies, name="embedded", context_window=700)
    config = dataclasses.replace(_config(seed=2), max_tokens=600)
    repo = MemoryRepository()
    async with _director(repo, model, config) as director:
        with pytest.raises(CapacityError, match="judge"):
            await _opening(director, config)
    assert model.calls == []
