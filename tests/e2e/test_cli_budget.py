"""Tokens, cost and a budget through the real CLI against the benchmark server (it reports cached prompt tokens as
vLLM does): every epoch's usage is stored, ``status --json`` adds it up, and a book whose budget is reached stops
at the next epoch boundary with one line and exit 0."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.process import ServerProcess
from bench.server import LatencyModel
from tests.conftest import run_cli

KEYS = ("calls", "prompt_tokens", "cached_tokens", "completion_tokens", "total_tokens")
PRICE = {"input": 0.5, "cached_input": 0.25, "output": 1.5}


def _book(path: Path, base_url: str, budget: str = "") -> Path:
    path.write_text(f"""
name = "thrifty"
seed = 3
max_tokens = 32
model = "bench"
embedder = "bench"
[endpoints.bench]
kind = "openai"
base_url = "{base_url}"
model = "bench-model"
concurrency = 8
[endpoints.bench.price]
input = {PRICE["input"]}
cached_input = {PRICE["cached_input"]}
output = {PRICE["output"]}
{budget}
""")
    return path


def _status(env: dict[str, str]) -> dict[str, Any]:
    shown = run_cli("status", "--book", "thrifty", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    found: dict[str, Any] = json.loads(shown.stdout)
    return found


def test_a_book_stops_at_the_epoch_boundary_where_its_token_budget_is_reached(
    tmp_path: Path, migrated_url: str
) -> None:
    env = {"SPACETIME_DATABASE_URL": migrated_url}
    with ServerProcess(LatencyModel(ttft_s=0.0, per_token_s=0.0, output_tokens=20, slots=8)) as server:
        book = _book(tmp_path / "thrifty.toml", server.base_url)
        first = run_cli("run", str(book), "--epochs", "1", env=env, timeout=300)
        assert first.returncode == 0, first.stderr
        assert "tokens drafted; " in first.stdout and " call(s), $" in first.stdout  # the progress line
        spent = _status(env)["usage"]["total_tokens"]
        assert spent > 0
        # a budget epoch 1 has not reached: epoch 2 is played, then the book stops before epoch 3
        limit = spent + 1
        _book(book, server.base_url, f"[budget]\nmax_tokens_total = {limit}\n")
        second = run_cli("run", str(book), "--epochs", "5", env=env, timeout=300)
        assert second.returncode == 0, second.stderr
        assert second.stderr.strip() == ""
        usage = _status(env)["usage"]
        total = usage["total_tokens"]
        stop = f'book "thrifty": token budget reached ({total:,} of {limit:,} tokens) after epoch 2'
        assert [line for line in second.stdout.splitlines() if "budget" in line] == [stop]
        assert "played 1 epoch(s) of 'thrifty'" in second.stdout
        # run again: nothing is played, the same line, exit 0
        third = run_cli("run", str(book), "--epochs", "1", env=env, timeout=300)
        assert third.returncode == 0, third.stderr
        assert stop in third.stdout and "played 0 epoch(s)" in third.stdout
        asked = server.stats()
    status = _status(env)
    assert status["epochs"] == 2
    usage = status["usage"]
    epochs = usage["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2] and usage["last_epoch"] == epochs[-1]
    for key in KEYS:  # the book's totals are the sum of its epochs', and of its kinds of call
        assert usage[key] == sum(e[key] for e in epochs) == sum(k[key] for k in usage["by_kind"].values()), key
    assert usage["cost"] == pytest.approx(sum(e["cost"] for e in epochs), abs=1e-5)
    assert set(usage["by_kind"]) == {"draft", "ballot", "embedding"} and list(usage["by_endpoint"]) == ["bench"]
    # every chat call the server answered is counted, with the prefix it found in its cache
    chat = asked["by_kind"]["draft"]["requests"] + asked["by_kind"]["ballot"]["requests"]
    assert usage["by_kind"]["draft"]["calls"] + usage["by_kind"]["ballot"]["calls"] == chat == 2 * 10
    assert 0 < usage["cached_tokens"] < usage["prompt_tokens"]
    uncached = usage["prompt_tokens"] - usage["cached_tokens"]
    dollars = (uncached * PRICE["input"] + usage["cached_tokens"] * PRICE["cached_input"]
               + usage["completion_tokens"] * PRICE["output"]) / 1e6  # fmt: skip
    assert usage["cost"] == pytest.approx(dollars, rel=1e-4)
    assert usage["budget"] is None  # status reads the settings the book was created with (it had no budget then)
    text = run_cli("status", "--book", "thrifty", env=env)
    assert f"usage: {total:,} tokens" in " ".join(text.stdout.split())
