"""The embedded model in-process (the old path) vs in the model host (the product's path), and llama.cpp's extra
buffer types on vs off, side by side in one run; plus the host's start-up time.

    .venv/bin/python -m bench.model_host [--repeats 5] [--max-tokens 128] [--q4-0]

Prints medians (and min–max) of:

* generation tokens/s (a free-text draft, ``max_tokens`` tokens, fixed seed) and prompt tokens/s (a ~900-token
  prompt, one token out), in-process with ``use_extra_bufts`` on and off, and through the model host;
* the host's start-up: spawn → ready (llama.cpp imported, load plan made), and its first model load;
* with ``--q4-0``: the same on/off pair for a Q4_0 copy of SmolLM2 (requantised into a temp dir), the quantisation
  llama.cpp's AVX2 repack does support, to show what the extra buffers buy where they apply.

Calls alternate between the variants inside each repeat, so machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spacetime.adapters.llm.embedded import find_smollm2_gguf
from spacetime.adapters.llm.host import ModelHost, Op
from spacetime.adapters.llm.host_main import current_plan, model_params

DRAFT = [{"role": "user", "content": "Write a long chapter about time, clocks, memory and the physics of entropy."}]
LONG = " ".join(f"Sentence {i} describes a clock that measures the entropy of memory." for i in range(70))
PREFILL = [{"role": "user", "content": LONG + "\nSummarise in one word."}]


def _load(path: str, extra: bool) -> Any:
    import llama_cpp

    with model_params(extra):
        return llama_cpp.Llama(path, n_ctx=4096, n_threads=os.cpu_count() or 1, verbose=False)


def _kwargs(messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
    return {"messages": messages, "max_tokens": max_tokens, "temperature": 0.8, "seed": 7, "repeat_penalty": 1.1}


def _rates(response: Any, seconds: float) -> tuple[float, float]:
    usage = response["usage"]
    return usage["completion_tokens"] / seconds, usage["prompt_tokens"] / seconds


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f}  ({min(values):.1f}–{max(values):.1f})"


def measure(repeats: int, max_tokens: int, q4_0: Path | None) -> None:
    plan, info = current_plan()
    print(f"llama.cpp: {info}\nload plan here: use_extra_bufts={plan.use_extra_bufts} — {plan.reason}\n")
    path = str(find_smollm2_gguf())
    variants: dict[str, Callable[[list[dict[str, str]], int], tuple[Any, float]]] = {}
    settings = (True, False) if plan.use_extra_bufts else (False,)
    if not plan.use_extra_bufts:
        print("extra buffers are off on this CPU: only the 'off' variants run in this process\n")
    for label, gguf in (("Q4_1", path), *((("Q4_0", str(q4_0)),) if q4_0 else ())):
        for extra in settings:
            llama = _load(gguf, extra)

            def call(messages: list[dict[str, str]], n: int, llama: Any = llama) -> tuple[Any, float]:
                t0 = time.perf_counter()
                response = llama.create_chat_completion(**_kwargs(messages, n))
                return response, time.perf_counter() - t0

            variants[f"{label} in-process, extra buffers {'on ' if extra else 'off'}"] = call

    host = ModelHost(restarts=0)
    starts = []
    for _ in range(repeats):  # spawn → ready, each a fresh host
        probe = ModelHost(restarts=0)
        t0 = time.perf_counter()
        probe.start()
        starts.append(time.perf_counter() - t0)
        probe.close()
    key = (path, 4096, False, os.cpu_count() or 1, None)
    host.start()
    t0 = time.perf_counter()
    host.call(Op.LOAD, key)
    first_load = time.perf_counter() - t0

    def via_host(messages: list[dict[str, str]], n: int) -> tuple[Any, float]:
        t0 = time.perf_counter()
        response, _service = host.call(Op.CHAT, key, _kwargs(messages, n))
        return response, time.perf_counter() - t0  # wall time seen by the caller: IPC included

    variants[f"Q4_1 model host (plan: extra buffers {'on' if host.use_extra_bufts else 'off'})"] = via_host

    gen: dict[str, list[float]] = {name: [] for name in variants}
    pre: dict[str, list[float]] = {name: [] for name in variants}
    for call in variants.values():  # warm-up
        call(DRAFT, 8)
    for _ in range(repeats):
        for name, call in variants.items():
            response, seconds = call(DRAFT, max_tokens)
            gen[name].append(_rates(response, seconds)[0])
            response, seconds = call(PREFILL, 1)
            pre[name].append(_rates(response, seconds)[1])
    host.close()

    width = max(map(len, variants))
    print(f"{'variant':<{width}}  generation tok/s (min–max)   prompt tok/s (min–max)")
    for name in variants:
        print(f"{name:<{width}}  {_summary(gen[name])}          {_summary(pre[name])}")
    print(
        f"\nmodel host start (spawn → ready), median of {repeats}: {statistics.median(starts) * 1000:.0f} ms "
        f"({min(starts) * 1000:.0f}–{max(starts) * 1000:.0f}); first model load in it: {first_load * 1000:.0f} ms"
    )


def requantise_q4_0(source: str, into: Path) -> Path:
    """A Q4_0 copy of ``source`` (llama.cpp's own quantiser, allowed to requantise a Q4_1 file)."""
    import llama_cpp

    target = into / "smollm2-q4_0.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    code = llama_cpp.llama_model_quantize(source.encode(), str(target).encode(), params)
    if code != 0:
        raise SystemExit(f"requantising failed ({code})")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.model_host", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--q4-0", action="store_true", help="also measure a Q4_0 copy (AVX2 repack applies)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="spacetime-bench-") as tmp:
        q4_0 = requantise_q4_0(str(find_smollm2_gguf()), Path(tmp)) if args.q4_0 else None
        measure(args.repeats, args.max_tokens, q4_0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
