"""The benchmark scenarios. Each returns plain dicts of figures (medians over repeats); ``bench.suite`` prints them.

Every scenario that talks to a model server starts a ``bench.server`` child process (its CPU is not ours) and the
engine reaches it through its normal OpenAI-compatible backend (``OpenAICompatModel``, ``OpenAICompatEmbedder``).
Every scenario that writes gets a fresh database on the benchmark's PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.baseline import RoundRobinBaseline
from bench.db import BenchDatabase
from bench.process import ServerProcess
from bench.recording import RecordingModel
from bench.roster import bench_book, personas
from bench.server import LatencyModel
from spacetime.adapters.llm.registry import build_model
from spacetime.adapters.pg.store import Store, open_store
from spacetime.config import Settings
from spacetime.domain import (
    Agent,
    Ballot,
    BallotStatus,
    CollapseDecision,
    Draft,
    DraftScore,
    EpochRecord,
    FinishReason,
    RatingChange,
    Vote,
)
from spacetime.engine.director import Director
from spacetime.engine.events import EpochCommitted
from spacetime.engine.models import ModelPool
from spacetime.prompts import render

Row = dict[str, Any]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def _director(store: Store, config: Any, name: str, **pool: Any) -> tuple[Director, ModelPool]:
    book = await store.create_book(name, config.topic, config.outline, config.to_json())
    await store.upsert_personas(config.roster + config.reserve)
    models = ModelPool(config, **pool)
    director = Director(store=store, book=book, config=config, models=models)
    await director.setup()
    return director, models


def _draft_task(config: Any, chapter_no: int) -> str:
    """The draft prompt of the burst (shared part + a persona line), used as the baseline team's task."""
    return render("draft.j2", topic=config.topic, outline=config.outline, passages=(), previous=None,
                  chapter_no=chapter_no, persona_prompt="Write from your own discipline.", memory=(),
                  max_words=max(20, int(config.max_tokens * 0.6)))  # fmt: skip


# --------------------------------------------------------------------------- 1. speedup and overhead
async def _speedup(db_url: str, server: ServerProcess, n: int, repeats: int, max_tokens: int) -> Row:
    config = bench_book(n, base_url=server.base_url, concurrency=max(64, 2 * n), max_tokens=max_tokens,
                        reserve=2 * repeats + 4)  # fmt: skip
    spec = config.endpoints["bench"]
    recorder = RecordingModel(build_model(spec))
    async with open_store(db_url) as store:
        director, models = await _director(store, config, f"speedup-{n}", prebuilt={"bench": recorder})
        baseline = RoundRobinBaseline(list(personas(n)), recorder, max_tokens=config.max_tokens)
        parallel, sequential, ratios, calls, turns = [], [], [], [], []
        try:
            await director.play_epoch()  # warm-up: connections, first-call imports
            for _ in range(repeats):
                recorder.calls.clear()
                server.reset()
                t0 = time.perf_counter()
                await director.play_epoch()
                wall = time.perf_counter() - t0
                stats = server.stats()
                drafts = [c.latency_s for c in recorder.calls if not c.ballot]
                ballots = [c.latency_s for c in recorder.calls if c.ballot]
                parallel.append(wall)
                ratios.append(wall / (max(drafts) + max(ballots)))
                calls.append(stats["requests"])
                result = await baseline.run(_draft_task(config, 2))
                sequential.append(result.wall_s)
                turns.append(result.turns)
        finally:
            await baseline.close()
            await director.close()
            await models.aclose()
            await recorder.aclose()
    return {
        "n": n,
        "parallel_s": median(parallel),
        "sequential_s": median(sequential),
        "speedup": median(sequential) / median(parallel),
        "overhead_ratio": median(ratios),
        "calls": median(calls),
        "baseline_turns": median(turns),
        "repeats": repeats,
    }


def speedup(db: BenchDatabase, model: LatencyModel, *, n: int, repeats: int, max_tokens: int) -> Row:
    """Parallel epochs (the Director) and the RoundRobinGroupChat baseline, alternated on one server."""
    model = dataclasses.replace(model, slots=max(64, 2 * n))  # every call of an epoch runs at once
    with ServerProcess(model) as server, db.fresh() as url:
        row = asyncio.run(_speedup(url, server, n, repeats, max_tokens))
    row["server"] = dataclasses.asdict(model)
    return row


# --------------------------------------------------------------------------- 2+3. calls, tokens, CPU vs N
async def _scaling(db_url: str, server: ServerProcess, n: int, repeats: int, max_tokens: int) -> Row:
    config = bench_book(n, base_url=server.base_url, concurrency=max(64, n), max_tokens=max_tokens,
                        reserve=repeats + 4)  # fmt: skip
    async with open_store(db_url) as store:
        director, models = await _director(store, config, f"scale-{n}")
        cpu, wall, calls, ballots, prompt, shared, completion, shared_ballot, prompt_ballot = ([] for _ in range(9))
        shared_draft, prompt_draft = [], []
        seated = []
        try:
            await director.play_epoch()  # warm-up
            for _ in range(repeats):
                server.reset()
                c0, t0 = time.process_time(), time.perf_counter()
                outcome = await director.play_epoch()
                seated.append(outcome.drafts + outcome.forfeits)
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - t0)
                s = server.stats()
                calls.append(s["requests"])
                ballots.append(s["ballots"])
                prompt.append(s["prompt_tokens"])
                shared.append(s["shared_prompt_tokens"])
                completion.append(s["completion_tokens"])
                prompt_ballot.append(s["by_kind"]["ballot"]["prompt_tokens"])
                shared_ballot.append(s["by_kind"]["ballot"]["shared_prompt_tokens"])
                prompt_draft.append(s["by_kind"]["draft"]["prompt_tokens"])
                shared_draft.append(s["by_kind"]["draft"]["shared_prompt_tokens"])
        finally:
            await director.close()
            await models.aclose()
    return {
        "n": n,
        "agents": median(seated),
        "calls": median(calls),
        "calls_all_2n": all(c == 2 * a for c, a in zip(calls, seated, strict=True)),
        "ballots": median(ballots),
        "prompt_tokens": median(prompt),
        "shared_prompt_tokens": median(shared),
        "shared_fraction": median([s / p for s, p in zip(shared, prompt, strict=True) if p]),
        "ballot_shared_fraction": median([s / p for s, p in zip(shared_ballot, prompt_ballot, strict=True) if p]),
        "draft_shared_fraction": median([s / p for s, p in zip(shared_draft, prompt_draft, strict=True) if p]),
        "ballot_prompt_tokens": median(prompt_ballot),
        "completion_tokens": median(completion),
        "cpu_ms": 1000 * median(cpu),
        "wall_ms": 1000 * median(wall),
        "repeats": repeats,
    }


def scaling(db: BenchDatabase, *, ns: list[int], repeats: int, max_tokens: int) -> list[Row]:
    """Epochs on an instant server (no latency): LLM calls, tokens and orchestrator CPU per epoch as N grows."""
    rows = []
    instant = LatencyModel(ttft_s=0.0, per_token_s=0.0, output_tokens=200, slots=128)
    with ServerProcess(instant) as server:
        for n in ns:
            with db.fresh() as url:
                rows.append(asyncio.run(_scaling(url, server, n, repeats, max_tokens)))
    return rows


# --------------------------------------------------------------------------- per-call CPU by layer
async def _layers(base_url: str, rounds: int, per_round: int) -> Row:
    import httpx
    import openai

    from spacetime.adapters.llm.autogen import PersonaAgent
    from spacetime.adapters.llm.openai_compat import OpenAICompatModel
    from spacetime.ports import Message
    from spacetime.rules.ballot import ballot_schema

    prompt = "word " * 1200
    schema = ballot_schema([f"Anonymous_Scribe_{i}" for i in range(1, 7)])
    system = render("system.j2").strip()
    raw = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
    response_format = {"type": "json_schema", "json_schema": {"name": "ballot", "schema": schema, "strict": True}}
    body = {"model": "bench-model", "messages": raw, "max_tokens": 700, "response_format": response_format}
    model = OpenAICompatModel(name="bench", model="bench-model", base_url=base_url, concurrency=8)
    agent = PersonaAgent(personas(1)[0], model, system_message=system)
    client = openai.AsyncOpenAI(base_url=base_url, api_key="none", max_retries=0)
    http = httpx.AsyncClient(timeout=30)
    autogen_client, autogen_history = _autogen_client(base_url, system, prompt)
    autogen_args = {"max_tokens": 700, "temperature": 0.8, "extra_body": {"response_format": response_format}}

    async def plain_httpx() -> Any:
        reply = await http.post(f"{base_url}/chat/completions", content=json.dumps(body),
                                headers={"content-type": "application/json"})  # fmt: skip
        return json.loads(reply.content)

    layers: dict[str, Callable[[], Any]] = {
        "httpx POST + json": plain_httpx,
        "openai SDK chat.completions.create": lambda: client.chat.completions.create(
            model="bench-model", messages=raw, max_tokens=700, extra_body={"response_format": response_format}
        ),  # type: ignore[arg-type]
        "AutoGen OpenAIChatCompletionClient.create (the backend before #10)": lambda: autogen_client.create(
            autogen_history, extra_create_args=autogen_args
        ),
        "OpenAICompatModel.complete (AsyncOpenAI, since #10)": lambda: model.complete(
            [Message("system", system), Message("user", prompt)], max_tokens=700, json_schema=schema
        ),
        "PersonaAgent.judge (AutoGen AssistantAgent)": lambda: agent.judge(prompt, json_schema=schema,
                                                                            max_tokens=700),  # fmt: skip
    }
    samples: dict[str, list[float]] = {k: [] for k in layers}
    try:
        for _ in range(rounds):
            for label, call in layers.items():
                for _ in range(3):
                    await call()
                c0 = time.process_time()
                for _ in range(per_round):
                    await call()
                samples[label].append(1000 * (time.process_time() - c0) / per_round)
    finally:
        await agent.close()
        await model.aclose()
        await client.close()
        await autogen_client.close()
        await http.aclose()
    return {label: median(values) for label, values in samples.items()}


def _autogen_client(base_url: str, system: str, prompt: str) -> tuple[Any, list[Any]]:
    """AutoGen's ``OpenAIChatCompletionClient`` configured as ``OpenAICompatModel`` wrapped it before #10 (the
    comparison row of the layers figure; the product no longer uses it)."""
    import warnings

    from autogen_core.models import ModelFamily, ModelInfo, SystemMessage, UserMessage
    from autogen_ext.models.openai import OpenAIChatCompletionClient

    warnings.filterwarnings("ignore", message=r"Resolved model mismatch", category=UserWarning)
    info = ModelInfo(vision=False, function_calling=False, json_output=True, structured_output=True,
                     family=ModelFamily.UNKNOWN, multiple_system_messages=True)  # fmt: skip
    client = OpenAIChatCompletionClient(model="bench-model", api_key="none", base_url=base_url, model_info=info,
                                        timeout=30, max_retries=0, include_name_in_message=False)  # fmt: skip
    return client, [SystemMessage(content=system), UserMessage(content=prompt, source="user")]


def layers(*, rounds: int, per_round: int) -> Row:
    """Orchestrator CPU of ONE ballot call, layer by layer (instant server): where the per-call cost goes."""
    with ServerProcess(LatencyModel(ttft_s=0.0, per_token_s=0.0, slots=8)) as server:
        return asyncio.run(_layers(server.base_url, rounds, per_round))


# --------------------------------------------------------------------------- 5. many books
def rss_bytes() -> int:
    """This process's resident set size now (Linux ``/proc/self/statm``; elsewhere the peak from ``getrusage``)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def _books(
    db_url: str, server: ServerProcess, count: int, *, agents: int, slots: int, warmup_epochs: int, window_s: float,
    max_tokens: int,
) -> Row:  # fmt: skip
    from spacetime.engine.play import BookPlan, play_books

    template = bench_book(agents, base_url=server.base_url, concurrency=slots, max_tokens=max_tokens, reserve=20)
    plans = [BookPlan(f"books-{i}", template, i - 1) for i in range(1, count + 1)]
    committed = 0

    def emit_for(_name: str) -> Callable[[object], None]:
        def listener(event: object) -> None:
            nonlocal committed
            if isinstance(event, EpochCommitted):
                committed += 1

        return listener

    settings = Settings(data_dir=Path("/nonexistent"), database_url=db_url)
    task = asyncio.create_task(play_books(settings, plans, epochs=10_000, emit_for=emit_for))
    runs = None
    try:
        deadline = time.perf_counter() + 120
        while committed < warmup_epochs and not task.done() and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        if task.done():
            runs = task.result()
            failures = [f"{r.name}: {r.error}" for r in runs if r.error is not None]
            raise RuntimeError(f"the books stopped during warm-up: {failures[:3]}")
        # Books start in lock-step (every burst at once), so a fixed time window can fall between commits: the
        # window is a number of epochs instead (two per book, at least ten) and at least ``window_s``.
        await asyncio.to_thread(server.reset)
        start, c0, t0 = committed, time.process_time(), time.perf_counter()
        target = start + max(2 * count, 10)
        rss_peak = rss_bytes()
        while (committed < target or time.perf_counter() - t0 < window_s) and not task.done():
            if time.perf_counter() - t0 > 600:
                raise RuntimeError(f"{count} books: only {committed - start} epochs in 600 s")
            await asyncio.sleep(0.02)
            rss_peak = max(rss_peak, rss_bytes())
        stats = await asyncio.to_thread(server.stats)
        elapsed, cpu, epochs = time.perf_counter() - t0, time.process_time() - c0, committed - start
    finally:
        task.cancel()
        try:
            runs = await task
        except asyncio.CancelledError:
            pass
    failed = [r for r in (runs or []) if r.error is not None]
    waits = stats["queue_wait_s"]
    return {
        "books": count,
        "agents": agents,
        "slots": slots,
        "utilisation": stats["utilisation"],
        "epochs_per_s": epochs / elapsed,
        "requests_per_s": stats["completed"] / elapsed,
        "orchestrator_cpu_share": cpu / elapsed,
        "server_queue_wait_max_s": waits["max"],
        "failed_books": len(failed),
        "window_s": elapsed,
        "rss_peak_mib": rss_peak / 2**20,
    }


def books(
    db: BenchDatabase, model: LatencyModel, *, counts: list[int], agents: int, window_s: float, max_tokens: int
) -> list[Row]:
    """1 → 100 books × ``agents`` agents at once (``play_books``) against ``model.slots`` slots shared by all."""
    rows = []
    with ServerProcess(model) as server:
        for count in counts:
            with db.fresh() as url:
                row = asyncio.run(
                    _books(url, server, count, agents=agents, slots=model.slots, warmup_epochs=count,
                           window_s=window_s, max_tokens=max_tokens)  # fmt: skip
                )
            row["server"] = dataclasses.asdict(model)
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- 6. commit
def epoch_record(
    book_id: uuid.UUID, epoch_no: int, agents: list[Agent], rng: random.Random, *, dim: int
) -> EpochRecord:
    """A realistic epoch record: N drafts of ~200 words with embeddings, N·(N−1) votes with rationales."""
    ids = [a.agent_id for a in agents]
    words = "time clock entropy memory signal order change future history value market proof machine".split()

    def text(k: int) -> str:
        return f"Chapter {epoch_no} by {k}\n" + " ".join(rng.choice(words) for _ in range(200))

    drafts = tuple(
        Draft(agent_id=i, text=text(k), finish_reason=FinishReason.STOP if k else FinishReason.LENGTH,
              prompt_tokens=900, completion_tokens=260, latency_s=2.0 + k / 100)
        for k, i in enumerate(ids)
    )  # fmt: skip
    aliases = {i: f"Anonymous_Scribe_{k + 1}" for k, i in enumerate(ids)}
    ballots = tuple(
        Ballot(voter_id=v, status=BallotStatus.OK, raw="{}", votes=tuple(
            Vote(voter_id=v, target_id=t, insight_score=rng.randint(1, 10),
                 rationale=f"{aliases[t]} makes a concrete, well argued point about clocks and memory.")
            for t in ids if t != v))
        for v in ids
    )  # fmt: skip
    scores = tuple(DraftScore(agent_id=i, mean_insight=5.0, truncation_penalty=0.0, lateness_penalty=0.0,
                              total=float(k), votes=len(ids) - 1) for k, i in enumerate(ids))  # fmt: skip
    ratings = tuple(RatingChange(a.agent_id, a.rating, a.rating + rng.uniform(-8, 8)) for a in agents)
    vectors = {i: [rng.uniform(-1, 1) for _ in range(dim)] for i in ids}
    return EpochRecord(
        book_id=book_id, epoch_no=epoch_no, active_agent_ids=tuple(ids), drafts=drafts, aliases=aliases,
        ballots=ballots, scores=scores, ratings=ratings, decision=CollapseDecision(winner_id=ids[-1], loser_id=ids[0]),
        chapter_title=f"Chapter {epoch_no}", chapter_text=drafts[-1].text, draft_embeddings=vectors,
        chapter_embedding=vectors[ids[-1]], embedding_model="bench-576", start_time=time.time() - 5,
        end_time=time.time(),
    )  # fmt: skip


async def _commit(db_url: str, n: int, repeats: int, dim: int) -> Row:
    rng = random.Random(n)
    async with open_store(db_url) as store:
        config = bench_book(n, base_url=None, reserve=0)
        book = await store.create_book(f"commit-{n}", config.topic, None, config.to_json())
        await store.upsert_personas(config.roster)
        agents = [await store.add_agent(book.book_id, p, rating=1000.0, born_epoch=0) for p in config.roster]
        records = [epoch_record(book.book_id, e, agents, rng, dim=dim) for e in range(1, repeats + 2)]
        await store.write_epoch(records[0])  # warm-up (prepared statements, caches)
        times = []
        for record in records[1:]:
            t0 = time.perf_counter()
            await store.write_epoch(record)
            times.append(time.perf_counter() - t0)
    votes = n * (n - 1)
    return {"n": n, "commit_ms": 1000 * median(times), "votes": votes, "votes_per_s": votes / median(times),
            "dim": dim, "repeats": repeats}  # fmt: skip


def commit(db: BenchDatabase, *, ns: list[int], repeats: dict[int, int], dim: int = 576) -> list[Row]:
    """``Store.write_epoch`` on the embedded PostgreSQL: one epoch (drafts with embeddings, votes, ballots,
    ratings, chapter) in one transaction."""
    rows = []
    for n in ns:
        with db.fresh() as url:
            rows.append(asyncio.run(_commit(url, n, repeats.get(n, 10), dim)))
    return rows


# --------------------------------------------------------------------------- 7. embedded model
async def _embedded(db_url: str, n: int, epochs: int, max_tokens: int, replay: bool = True) -> Row:
    from spacetime.adapters.llm.embedded import EmbeddedModel, unload_all
    from spacetime.ports import Message

    config = bench_book(n, base_url=None, max_tokens=max_tokens, reserve=epochs + 3)
    chat = EmbeddedModel()
    await chat.load()
    recorder = RecordingModel(chat)
    plain = [Message("user", "Write a short chapter about time, clocks and memory.")]

    async def direct_loop() -> float:
        """The same model called directly in a loop: N plain drafts at the book's cap; tokens/s."""
        t0, tokens = time.perf_counter(), 0
        for i in range(n):
            tokens += (await chat.complete(plain, max_tokens=max_tokens, seed=i)).completion_tokens
        return tokens / (time.perf_counter() - t0)

    async with open_store(db_url) as store:
        director, models = await _director(store, config, "embedded", prebuilt={"embedded": recorder})
        embedder = models.embedder()
        walls, tokens, rates, direct, embed_s, draft_s, ballot_s = [], [], [], [], [], [], []
        prefill, prompts = [], []
        try:
            await director.play_epoch()  # warm-up: loads the embedder
            for _ in range(epochs):  # a tournament epoch and a direct loop, side by side
                recorder.calls.clear()
                t0 = time.perf_counter()
                await director.play_epoch()
                walls.append(time.perf_counter() - t0)
                tokens.append(sum(c.completion_tokens for c in recorder.calls))
                prompts.append(sum(c.prompt_tokens for c in recorder.calls))
                prefill.append(sum(c.prompt_tokens - c.cached_tokens for c in recorder.calls))
                draft_s.append(sum(c.latency_s for c in recorder.calls if not c.ballot))
                ballot_s.append(sum(c.latency_s for c in recorder.calls if c.ballot))
                rates.append(tokens[-1] / walls[-1])
                direct.append(await direct_loop())
            calls = list(recorder.calls)
            if embedder is not None:  # the last epoch's drafts, embedded alone (no generation beside it)
                t0 = time.perf_counter()
                await embedder.embed([c.text.strip() for c in calls if not c.ballot])
                embed_s.append(time.perf_counter() - t0)
        finally:
            await director.close()
            await models.aclose()
    # Diagnostic: a direct replay of the last epoch's own calls (same prompts, caps and schemas), one by one.
    t0, replay_tokens = time.perf_counter(), 0
    for c in calls if replay else []:
        done = await chat.complete(list(c.messages), max_tokens=c.max_tokens, json_schema=c.json_schema,
                                   temperature=c.temperature, seed=c.seed)  # fmt: skip
        replay_tokens += done.completion_tokens
    replay_rate = replay_tokens / (time.perf_counter() - t0) if replay else float("nan")
    await chat.aclose()
    recorder.calls.clear()
    unload_all()  # free the weights now, not during interpreter shutdown (llama.cpp's finalizers fail there)
    gc.collect()
    return {
        "n": n,
        "max_tokens": max_tokens,
        "epoch_s": median(walls),
        "completion_tokens": median(tokens),
        "tournament_tokens_per_s": median(rates),
        "direct_tokens_per_s": median(direct),
        "ratio": median([r / d for r, d in zip(rates, direct, strict=True)]),
        "replay_tokens_per_s": replay_rate,
        "ratio_vs_replay": rates[-1] / replay_rate,
        "draft_calls_s": median(draft_s),
        "ballot_calls_s": median(ballot_s),
        "other_s": median([w - d - b for w, d, b in zip(walls, draft_s, ballot_s, strict=True)]),
        "draft_completion_tokens": sum(c.completion_tokens for c in calls if not c.ballot),
        "ballot_completion_tokens": sum(c.completion_tokens for c in calls if c.ballot),
        "ballot_prompt_tokens": sum(c.prompt_tokens for c in calls if c.ballot),
        "draft_prompt_tokens": sum(c.prompt_tokens for c in calls if not c.ballot),
        "prompt_tokens_per_epoch": median(prompts),
        "prefill_tokens_per_epoch": median(prefill),
        "ballot_prefill_tokens": sum(c.prompt_tokens - c.cached_tokens for c in calls if c.ballot),
        "draft_prefill_tokens": sum(c.prompt_tokens - c.cached_tokens for c in calls if not c.ballot),
        "embed_drafts_s": embed_s[0] if embed_s else None,
        "threads": chat.n_threads or os.cpu_count(),
        "epochs": epochs,
    }


def embedded(db: BenchDatabase, *, n: int, epochs: int, max_tokens: int) -> Row:
    """A tournament on the embedded SmolLM2 vs the same model called directly in a loop, alternated."""
    with db.fresh() as url:
        return asyncio.run(_embedded(url, n, epochs, max_tokens))
