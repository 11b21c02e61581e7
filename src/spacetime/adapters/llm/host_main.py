"""The model host's child side: ``python -m spacetime.adapters.llm.host_main --fd N`` (started by
:class:`spacetime.adapters.llm.host.ModelHost`, never by hand).

It loads GGUF models with llama-cpp-python under this machine's :class:`~spacetime.adapters.llm.cpu.LoadPlan` and serves
one request at a time over the connection on file descriptor ``N``: a llama.cpp context is single-threaded, so the
parent queues its callers and this loop stays simple. Everything native runs here, so a crash in llama.cpp
(SIGSEGV, SIGILL, SIGABRT) or the kernel's OOM killer ends this process only; the parent sees the connection close,
reads the exit status and reports it. The loop also ends when the parent goes away (end of file on the connection).

Requests are ``(op, args)`` tuples; replies ``("ok", result, service_s)`` or ``("error", kind, message)`` where
``kind`` is ``"call"`` (llama.cpp refused the request: context overflow, a bad grammar …) or ``"load"``.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import math
import os
import re
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from spacetime.adapters.llm.cpu import LoadPlan, parse_extra_buffers, plan_load, read_cpu

if TYPE_CHECKING:
    from llama_cpp import Llama

EXTRA_BUFFERS_ENV = "SPACETIME_LLAMA_EXTRA_BUFFERS"
_NUMBER = re.compile(r"\s?([0-9]{1,2})")


class LoadFailed(Exception):
    """Raised here when a GGUF cannot be loaded; sent to the parent as a ``load`` error."""


@contextlib.contextmanager
def model_params(use_extra_bufts: bool) -> Iterator[None]:
    """Load models with ``llama_model_params.use_extra_bufts`` set. ``Llama.__init__`` does not expose the field,
    but builds its params with ``llama_cpp.llama_cpp.llama_model_default_params()``: wrap that for the load.

    Raises ``LoadFailed`` when the plan turns extra buffers off but this llama-cpp-python has no such field."""
    import llama_cpp.llama_cpp as low

    fields = {name for name, *_ in low.llama_model_params._fields_}
    if "use_extra_bufts" not in fields:
        if use_extra_bufts:
            yield
            return
        raise LoadFailed(
            "this llama-cpp-python cannot turn off llama.cpp's extra buffer types (no use_extra_bufts), which this "
            "CPU needs: pip install -U llama-cpp-python"
        )
    original = low.llama_model_default_params

    def with_plan() -> Any:
        params = original()
        params.use_extra_bufts = use_extra_bufts
        return params

    low.llama_model_default_params = with_plan
    try:
        yield
    finally:
        low.llama_model_default_params = original


class Host:
    """The models loaded in this process, keyed by the parent's model keys, and the plan they were loaded with."""

    def __init__(self, plan: LoadPlan) -> None:
        self.plan = plan
        self.models: dict[tuple[Any, ...], Llama] = {}
        self.numbers: dict[tuple[Any, ...], NumberTokens] = {}

    def model(self, key: tuple[Any, ...]) -> Llama:
        llama = self.models.get(key)
        if llama is None:
            llama = self.models[key] = self._load(*key)
        return llama

    def _load(self, path: str, n_ctx: int, embedding: bool, n_threads: int, seed: int | None) -> Llama:
        import llama_cpp

        kwargs: dict[str, Any] = {"n_ctx": n_ctx, "n_threads": n_threads, "verbose": False}
        if seed is not None:
            kwargs["seed"] = seed
        if embedding:
            # Per-token embeddings (the model's own pooling, NONE), mean-pooled below: the same vector as
            # pooling_type=MEAN without llama.cpp printing a pooling warning.
            kwargs |= {"embedding": True, "n_batch": n_ctx, "n_ubatch": n_ctx}
        try:
            with model_params(self.plan.use_extra_bufts):
                llama = llama_cpp.Llama(path, **kwargs)
        except (ValueError, RuntimeError, OSError) as err:
            raise LoadFailed(f"cannot load the GGUF model {os.path.basename(path)}: {err}") from err
        if extra_bufts(llama) != self.plan.use_extra_bufts:  # pragma: no cover - the wrapper above did not apply
            raise LoadFailed("llama-cpp-python ignored the extra-buffer setting of this CPU's load plan")
        return llama

    # ------------------------------------------------------------------ operations
    def load(self, key: tuple[Any, ...]) -> dict[str, Any]:
        llama = self.model(key)
        return {"n_embd": int(llama.n_embd()), "use_extra_bufts": extra_bufts(llama)}

    def chat(self, key: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A chat completion; with ``score_logprobs`` in ``kwargs``, the reply also carries ``spacetime_tokens``:
        ``[text, [[number token, logprob], …]]`` per generated token (see :class:`ScoreRecorder`). Its usage gains
        ``prompt_tokens_details.cached_tokens``: the prompt tokens llama.cpp did not have to evaluate because the
        previous call on this model left them in its KV cache (a shared prefix), as OpenAI and vLLM report it."""
        llama = self.model(key)
        before = prompt_evals(llama)
        response = self._chat(llama, key, kwargs)
        after = prompt_evals(llama)
        usage = response.get("usage") if isinstance(response, dict) else None
        if before is not None and after is not None and isinstance(usage, dict):
            prompt = int(usage.get("prompt_tokens") or 0)
            usage["prompt_tokens_details"] = {"cached_tokens": max(0, min(prompt, prompt - (after - before)))}
        return response

    def _chat(self, llama: Llama, key: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not kwargs.pop("score_logprobs", False):
            return dict(llama.create_chat_completion(**kwargs))  # type: ignore[arg-type]
        from llama_cpp import LogitsProcessorList

        numbers = self.numbers.get(key)
        if numbers is None:
            numbers = self.numbers[key] = NumberTokens.of(llama)
        recorder = ScoreRecorder(numbers)
        response: dict[str, Any] = dict(
            llama.create_chat_completion(**kwargs, logits_processor=LogitsProcessorList([recorder]))  # type: ignore[arg-type]
        )
        response["spacetime_tokens"] = recorder.tokens(llama)
        return response

    def embed(self, key: tuple[Any, ...], texts: list[str]) -> list[list[float]]:
        llama = self.model(key)
        # One text per call: llama.cpp cannot embed an empty sequence ("" → " "), and batching several sequences
        # buys nothing on CPU. truncate=True keeps the first n_batch (= the key's n_ctx) tokens.
        return [mean_pool(llama.embed(text or " ", normalize=False, truncate=True)) for text in texts]

    def serve(self, conn: Connection) -> None:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            op, args = request
            if op == "exit":
                return
            started = time.perf_counter()
            try:
                result = getattr(self, op)(*args)
            except LoadFailed as err:
                reply: tuple[Any, ...] = ("error", "load", str(err))
            except Exception as err:  # a Python-level failure of one call (a bad grammar, context overflow …):
                reply = ("error", "call", str(err) or type(err).__name__)  # the host lives on; only native dies
            else:
                reply = ("ok", result, time.perf_counter() - started)
            try:
                conn.send(reply)
            except (OSError, EOFError):
                return


class NumberTokens:
    """The vocabulary's number tokens (``0``–``10``, with or without a leading space): ids and their texts."""

    def __init__(self, ids: list[int], texts: list[str]) -> None:
        import numpy as np

        self.ids = np.asarray(ids, dtype=np.intc)
        self.texts = texts
        self.text_of = dict(zip(ids, texts, strict=True))

    @classmethod
    def of(cls, llama: Llama) -> NumberTokens:
        ids: list[int] = []
        texts: list[str] = []
        for token in range(llama.n_vocab()):
            text = llama.detokenize([token]).decode("utf-8", errors="replace")
            match = _NUMBER.fullmatch(text)
            if match is not None and int(match.group(1)) <= 10:
                ids.append(token)
                texts.append(text)
        return cls(ids, texts)


class ScoreRecorder:
    """A llama-cpp-python logits processor that only looks: at every generated position it keeps the
    log-probabilities of the number tokens under the model's own distribution (the raw logits, before the
    repetition penalty and the JSON grammar), for G-Eval scores (``spacetime.rules.geval``)."""

    def __init__(self, numbers: NumberTokens) -> None:
        self.numbers = numbers
        self.steps: list[tuple[int, list[float]]] = []

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np

        logits = np.asarray(scores, dtype=np.float64)
        top = float(logits.max())
        log_z = top + math.log(float(np.exp(logits - top).sum()))
        self.steps.append((len(input_ids), (logits[self.numbers.ids] - log_z).tolist()))
        return scores

    def tokens(self, llama: Llama) -> list[list[Any]]:
        """The generated tokens in order, each ``[text, [[number text, logprob], …]]``; alternatives are kept at a
        step whose token is a number and at the step after it (where ``0`` may complete a ``10``)."""
        ids = llama.input_ids
        out: list[list[Any]] = []
        previous_number = False
        for position, logprobs in self.steps:
            if position >= llama.n_tokens:
                break  # the last token (end of the answer) is sampled but never evaluated
            token = int(ids[position])
            text = llama.detokenize([token]).decode("utf-8", errors="replace")
            is_number = token in self.numbers.text_of
            keep = is_number or previous_number
            alternatives = [[t, lp] for t, lp in zip(self.numbers.texts, logprobs, strict=True)] if keep else []
            out.append([text, alternatives])
            previous_number = is_number
        return out


def prompt_evals(llama: Llama) -> int | None:
    """Prompt tokens this model's context has evaluated so far (llama.cpp's ``n_p_eval`` performance counter), or
    None when this llama.cpp build does not expose it."""
    try:
        import llama_cpp

        return int(llama_cpp.llama_perf_context(llama._ctx.ctx).n_p_eval)
    except Exception:  # pragma: no cover - an older or different binding: no figure, never a failed call
        return None


def extra_bufts(llama: Llama) -> bool:
    """The ``use_extra_bufts`` a model was loaded with (a llama-cpp-python without the field: llama.cpp's default,
    on)."""
    return bool(getattr(llama.model_params, "use_extra_bufts", True))


def mean_pool(token_vectors: Any) -> list[float]:
    """Mean over tokens, then L2 normalisation (accepts one already-pooled vector too). Raises ``ValueError`` for
    a zero or non-finite vector."""
    import numpy as np

    matrix = np.asarray(token_vectors, dtype=np.float64)
    vector = matrix.mean(axis=0) if matrix.ndim == 2 else matrix
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not math.isfinite(norm):
        raise ValueError("the embedder returned a zero or non-finite vector")
    return [float(x) for x in vector / norm]


def current_plan() -> tuple[LoadPlan, str]:
    """This machine's load plan (CPU flags + llama.cpp's build features + the operator's override) and llama.cpp's
    system info line."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()
    return plan_load(read_cpu(info), parse_extra_buffers(os.environ.get(EXTRA_BUFFERS_ENV))), info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spacetime.adapters.llm.host_main")
    parser.add_argument("--fd", type=int, required=True, help="the connection's file descriptor")
    args = parser.parse_args(argv)
    faulthandler.enable()  # a native crash leaves the Python stack in this process's log
    conn = Connection(args.fd)
    try:
        plan, info = current_plan()
    except ValueError as err:  # a bad SPACETIME_LLAMA_EXTRA_BUFFERS
        conn.send(("error", "load", str(err)))
        return 2
    conn.send(("ready", os.getpid(), plan.use_extra_bufts, plan.reason, info))
    Host(plan).serve(conn)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
