"""The model host on the REAL embedded model: llama.cpp runs in a child process, under this CPU's load plan, and
its death (SIGKILL, SIGSEGV) is one clean error or one recorded restart, never a dead test process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spacetime.adapters.llm.cpu import CpuArch, CpuFeatures, plan_load, read_cpu
from spacetime.adapters.llm.embedded import EmbeddedEmbedder, EmbeddedModel, find_smollm2_gguf, unload_all
from spacetime.adapters.llm.host import HostState, ModelHost, Op, shared_host
from spacetime.adapters.llm.host_main import Host
from spacetime.errors import ConfigError, ModelError, ModelHostCrashed
from spacetime.ports import Message

pytestmark = pytest.mark.slow

SAPPHIRE_RAPIDS = frozenset({"avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16"})


@pytest.fixture
def fresh_host() -> Iterator[None]:
    """Every test starts and ends without a model host in this process."""
    unload_all()
    yield
    unload_all()


def _key(n_ctx: int = 1024) -> tuple[str, int, bool, int, None]:
    return (str(find_smollm2_gguf()), n_ctx, False, os.cpu_count() or 1, None)


def _long_prompt() -> list[dict[str, str]]:
    return [{"role": "user", "content": "Write a very long story about clocks. " * 20}]


async def test_generation_and_a_json_ballot_run_in_the_host_with_the_product_settings(fresh_host: None) -> None:
    model = EmbeddedModel()  # the product's defaults: the packaged GGUF, n_ctx 8192
    draft = await model.complete([Message("user", "Write one sentence about time.")], max_tokens=32, seed=1)
    assert draft.text.strip() and 0 < draft.completion_tokens <= 32 and draft.latency_s > 0
    schema = {
        "type": "object",
        "properties": {"Anonymous_Scribe_1": {
            "type": "object",
            "properties": {"score": {"type": "integer", "enum": list(range(1, 11))},
                           "rationale": {"type": "string", "maxLength": 60}},
            "required": ["score", "rationale"], "additionalProperties": False}},
        "required": ["Anonymous_Scribe_1"], "additionalProperties": False,
    }  # fmt: skip
    ballot = await model.complete([Message("user", "Score the draft 'Time flows.' from 1 to 10.")],
                                  max_tokens=80, json_schema=schema, seed=2)  # fmt: skip
    vote = json.loads(ballot.text)["Anonymous_Scribe_1"]
    assert vote["score"] in range(1, 11) and isinstance(vote["rationale"], str)
    vectors = await EmbeddedEmbedder().embed(["a clock", "a book"])
    assert len(vectors) == 2 and len(vectors[0]) == 576

    host = shared_host()
    assert host.state is HostState.READY and host.pid not in (None, os.getpid()) and host.starts == 1
    # the host applied this machine's plan (the CPU's flags plus what llama.cpp reports of its build) to the
    # llama_model_params the model was really loaded with
    machine_plan = plan_load(read_cpu(host.system_info)).use_extra_bufts
    loaded, _ = host.call(Op.LOAD, (str(model.path), model.n_ctx, False, os.cpu_count() or 1, None))
    assert host.use_extra_bufts is machine_plan and loaded["use_extra_bufts"] is machine_plan
    assert host.plan_reason and "AVX" in host.system_info.upper()
    assert Path(f"/proc/{host.pid}").exists()


def test_an_amx_plan_loads_the_real_model_without_extra_buffers() -> None:
    """The load path an AMX machine takes, run for real here: the plan made from Sapphire Rapids flags reaches
    llama.cpp's own ``llama_model_params`` and the model still generates."""
    amx_plan = plan_load(CpuFeatures(CpuArch.X86_64, SAPPHIRE_RAPIDS))
    host = Host(amx_plan)
    info = host.load(_key(512))
    assert info == {"n_embd": 576, "use_extra_bufts": False}
    reply = host.chat(_key(512), {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8, "seed": 1})
    assert reply["usage"]["completion_tokens"] > 0
    for llama in host.models.values():  # (an "on" plan is not loaded in this process: on AMX it would crash it)
        llama.close()


def test_the_operator_can_turn_extra_buffers_off(monkeypatch: pytest.MonkeyPatch, fresh_host: None) -> None:
    monkeypatch.setenv("SPACETIME_LLAMA_EXTRA_BUFFERS", "off")
    host = ModelHost(restarts=0)
    try:
        info, _ = host.call(Op.LOAD, _key(512))
        assert info["use_extra_bufts"] is False and host.use_extra_bufts is False
    finally:
        host.close()
    monkeypatch.setenv("SPACETIME_LLAMA_EXTRA_BUFFERS", "sometimes")
    bad = ModelHost(restarts=0)
    with pytest.raises(ConfigError, match="SPACETIME_LLAMA_EXTRA_BUFFERS"):
        bad.start()
    assert bad.state is HostState.CLOSED


def test_llama_cpp_refusing_a_call_leaves_the_host_alive(fresh_host: None) -> None:
    host = ModelHost(restarts=0)
    try:
        too_long = [{"role": "user", "content": "clock " * 400}]
        with pytest.raises(ModelError, match="exceed context window"):
            host.call(Op.CHAT, _key(256), {"messages": too_long, "max_tokens": 8})
        reply, _ = host.call(Op.CHAT, _key(256), {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
        assert reply["usage"]["completion_tokens"] > 0 and host.state is HostState.READY and not host.crashes
    finally:
        host.close()


def test_a_shared_prefix_is_evaluated_once_and_reported_as_cached(fresh_host: None) -> None:
    """llama.cpp keeps the previous call's tokens: a second prompt with the same long head evaluates only its tail,
    and the host reports the rest as ``prompt_tokens_details.cached_tokens`` (what the ballots' shared layout buys
    on the embedded model)."""
    host = ModelHost(restarts=0)
    head = "Judge these drafts. " + " ".join(f"clock{i}" for i in range(150))
    try:
        replies = [
            host.call(Op.CHAT, _key(1024), {"messages": [{"role": "user", "content": head + tail}], "max_tokens": 2})[0]
            for tail in (" Voter one.", " Voter two, a longer tail.", " Something else entirely here.")
        ]
        fresh = {"messages": [{"role": "user", "content": "A different prompt. " + head}], "max_tokens": 2}
        replies.append(host.call(Op.CHAT, _key(1024), fresh)[0])
    finally:
        host.close()
    usage = [r["usage"] for r in replies]
    cached = [u["prompt_tokens_details"]["cached_tokens"] for u in usage]
    prompts = [u["prompt_tokens"] for u in usage]
    assert prompts[0] > 150 and cached[0] <= 2  # the first call evaluates everything (a BOS at most is kept)
    assert all(prompts[i] - 20 <= cached[i] < prompts[i] for i in (1, 2))  # only the tail is evaluated
    assert cached[3] < 40 < prompts[3] - 100  # a new head is evaluated again (the template's system part is kept)


def _remove_logs(host: ModelHost) -> None:
    for crash in host.crashes:
        if crash.log_path:
            Path(crash.log_path).unlink(missing_ok=True)


def _kill_when_busy(host: ModelHost, sig: int, delay_s: float = 0.5) -> threading.Thread:
    def kill() -> None:
        time.sleep(delay_s)
        host.kill(sig)

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_a_host_killed_mid_generation_is_one_clean_error(sig: int, fresh_host: None) -> None:
    host = ModelHost(restarts=0)
    try:
        host.call(Op.LOAD, _key())
        pid = host.pid
        killer = _kill_when_busy(host, sig)
        with pytest.raises(ModelHostCrashed) as caught:
            host.call(Op.CHAT, _key(), {"messages": _long_prompt(), "max_tokens": 512, "seed": 3})
        killer.join()
        line = str(caught.value)
        assert "\n" not in line and f"pid {pid}" in line and signal.Signals(sig).name in line
        assert "while generating" in line and "run the same command again" in line
        assert host.state is HostState.CRASHED and len(host.crashes) == 1
        with pytest.raises(ModelHostCrashed):  # stays down: the same error, at once
            host.call(Op.LOAD, _key())
        (crash,) = host.crashes
        if sig == signal.SIGSEGV:  # the fault handler's report is kept and named; an empty log is not
            assert crash.log_path is not None and crash.log_path in line
            assert "Segmentation fault" in Path(crash.log_path).read_text()
        else:
            assert crash.log_path is None and "details in" not in line
    finally:
        host.close()
        _remove_logs(host)


async def test_one_crash_is_survived_by_a_recorded_restart(fresh_host: None, caplog: pytest.LogCaptureFixture) -> None:
    host = shared_host()
    assert host.restarts == 1
    model = EmbeddedModel(n_ctx=1024)
    await model.load()
    first_pid = host.pid
    killer = _kill_when_busy(host, signal.SIGSEGV)
    done = await model.complete([Message("user", m["content"]) for m in _long_prompt()], max_tokens=256, seed=4)
    killer.join()
    assert done.completion_tokens > 0  # the call in flight was retried on the new host
    assert host.state is HostState.READY and host.starts == 2 and host.pid != first_pid
    assert [c.cause for c in host.crashes] == ["killed by SIGSEGV (a crash in llama.cpp)"]
    assert any("restarted it (1 of 1)" in r.getMessage() for r in caplog.records)
    # a second death exceeds the budget: every caller gets the error, none hangs
    host.kill(signal.SIGKILL)
    results = await asyncio.gather(*(model.complete([Message("user", "Hi")], max_tokens=4) for _ in range(3)),
                                   return_exceptions=True)  # fmt: skip
    assert all(isinstance(r, ModelHostCrashed) and "after 1 restart" in str(r) for r in results)
    _remove_logs(host)


async def test_a_host_killed_while_embedding_is_the_same_clean_error(fresh_host: None) -> None:
    """The embedder shares the host (and the GGUF): its calls fail the same way, never as a bad vector."""
    host = ModelHost(restarts=0)
    embedder = EmbeddedEmbedder()
    key = (str(embedder.path), embedder.max_tokens, True, os.cpu_count() or 1, None)
    try:
        host.call(Op.EMBED, key, ["warm-up"])
        killer = _kill_when_busy(host, signal.SIGKILL, delay_s=0.3)
        with pytest.raises(ModelHostCrashed, match="SIGKILL.*while embedding"):
            host.call(Op.EMBED, key, ["clocks and memory " * 150] * 40)  # ~20 s of work: killed midway
        killer.join()
    finally:
        host.close()
        _remove_logs(host)
