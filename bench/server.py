"""A latency-modelled OpenAI-compatible server for benchmarks (not part of Space Time's runtime).

    python -m bench.server --port 8000 --slots 8 --ttft 0.2 --per-token 0.005 --output-tokens 200

A real HTTP/1.1 server on loopback (asyncio streams, keep-alive, no third-party dependency) answering:

* ``POST /v1/chat/completions`` — a reply after ``ttft + prefill_per_token × uncached prompt tokens +
  per_token × completion tokens`` seconds, holding one of ``slots`` slots while it "generates"; requests beyond
  the slots queue in arrival order, like a real server's scheduler. A plain request gets a draft of
  ``output_tokens`` words (± ``output_jitter``, seeded by the request's ``seed``); past ``max_tokens`` it is cut and
  ``finish_reason`` is ``"length"``. A request whose ``response_format`` carries a JSON schema (OpenAI's
  ``{"type": "json_schema", "json_schema": {"schema": …}}`` or llama-cpp-python's
  ``{"type": "json_object", "schema": …}``) gets a valid ballot: an object keyed by the schema's ``required``
  properties, each ``{"insight_score": int, "rationale": str}``. ``usage`` reports prompt and completion tokens,
  and the prompt tokens found in the prefix cache (``prompt_tokens_details.cached_tokens``, as vLLM does).
* ``POST /v1/embeddings`` — deterministic unit vectors (hashed bag of words; base64 float32 when asked with
  ``encoding_format``, as openai's client does), ``embed_s`` per request, no slot.
* ``GET /v1/models`` — the one served model id.
* ``GET /stats`` — utilisation since the last reset: busy seconds per slot (a request still running counts up to
  now), requests, the most requests open at once, queue waits, prompt / shared-prefix / completion tokens;
  ``POST /stats/reset`` starts a new window; ``POST /config`` changes the latency model (JSON body with any
  :class:`LatencyModel` field).

Tokens are whitespace-separated words (prompts: each message's role and content). Prefix-cache accounting works
like vLLM's automatic prefix caching: a prompt is cut into blocks of ``block_tokens`` tokens, each block is
identified by a hash chained over all blocks before it, and a request's *shared prompt tokens* are the tokens of
its leading blocks that an earlier request already had. With ``prefill_per_token > 0`` only the uncached tokens
cost prefill time, so a server with prefix caching rewards prompts that put shared text first.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import random
import statistics
import struct
import sys
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields
from typing import Any

MODEL_ID = "bench-model"

_WORDS = (
    "time space clock entropy memory measure moment river light signal order change future past present history "
    "value price market vote law rule number proof symmetry machine network feedback system energy matter wave "
    "observer frame motion rest season calendar debt interest risk trust power state field theory model limit"
).split()


@dataclass
class LatencyModel:
    """How long the simulated model takes, and how much it writes."""

    ttft_s: float = 0.2
    """Time to first token (queueing excluded)."""
    per_token_s: float = 0.005
    """Time per generated token, per request (each slot decodes independently)."""
    prefill_per_token_s: float = 0.0
    """Extra time to first token per prompt token NOT found in the prefix cache."""
    output_tokens: int = 200
    """Words a plain (draft) reply wants to write; cut at the request's max_tokens."""
    output_jitter: float = 0.0
    """Uniform ± fraction of ``output_tokens``, drawn from the request's seed (none: from a server RNG)."""
    rationale_words: int = 6
    """Words of each ballot rationale."""
    slots: int = 8
    """Requests generated at once; more queue."""
    embed_s: float = 0.0
    """Service time of one /v1/embeddings request (no slot taken)."""
    embed_dim: int = 64
    block_tokens: int = 16
    """Prefix-cache block size in tokens."""
    cache_blocks: int = 1_000_000
    """Prefix-cache capacity in blocks (least recently used blocks are evicted)."""

    def validate(self) -> None:
        if self.slots < 1 or self.block_tokens < 1 or self.embed_dim < 2 or self.cache_blocks < 1:
            raise ValueError("slots, block_tokens, cache_blocks must be >= 1 and embed_dim >= 2")
        if min(self.ttft_s, self.per_token_s, self.prefill_per_token_s, self.embed_s, self.output_jitter) < 0:
            raise ValueError("times and jitter must not be negative")
        if self.output_tokens < 1 or self.rationale_words < 1:
            raise ValueError("output_tokens and rationale_words must be >= 1")


@dataclass
class Stats:
    started: float = field(default_factory=time.perf_counter)
    requests: int = 0
    completed: int = 0
    ballots: int = 0
    truncated: int = 0
    embeddings: int = 0
    embedded_texts: int = 0
    prompt_tokens: int = 0
    shared_prompt_tokens: int = 0
    completion_tokens: int = 0
    queue_waits: list[float] = field(default_factory=list)
    service: list[float] = field(default_factory=list)
    max_queue: int = 0
    repeats: int = 0
    """Chat requests whose body (messages, seed, schema, cap) an earlier request already had: retries and calls
    made again."""
    max_in_flight: int = 0
    """Most chat requests open at once (arrived, not yet answered): what the clients' concurrency limits let
    through, whatever the slots."""
    by_kind: dict[str, dict[str, int]] = field(
        default_factory=lambda: {k: {"requests": 0, "prompt_tokens": 0, "shared_prompt_tokens": 0,
                                     "completion_tokens": 0} for k in ("draft", "ballot")}
    )  # fmt: skip


class PrefixCache:
    """Chained block hashes of every prompt seen (LRU-bounded), as in vLLM's automatic prefix caching."""

    def __init__(self, block_tokens: int, capacity: int) -> None:
        self.block_tokens = block_tokens
        self.capacity = capacity
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def admit(self, tokens: list[str]) -> int:
        """Insert the prompt's blocks; return how many of its leading tokens were already cached."""
        b = self.block_tokens
        parent = 0
        shared = 0
        matching = True
        for start in range(0, len(tokens) - len(tokens) % b, b):
            key = hash((parent, *tokens[start : start + b]))
            if matching and key in self._blocks:
                shared += b
                self._blocks.move_to_end(key)
            else:
                matching = False
                self._blocks[key] = None
                if len(self._blocks) > self.capacity:
                    self._blocks.popitem(last=False)
            parent = key
        return shared


def prompt_tokens_of(messages: list[dict[str, Any]]) -> list[str]:
    tokens: list[str] = []
    for m in messages:
        tokens.append(f"<|{m.get('role', 'user')}|>")
        content = m.get("content") or ""
        if isinstance(content, list):  # content parts
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        tokens.extend(str(content).split())
    return tokens


def schema_of(response_format: Any) -> dict[str, Any] | None:
    if not isinstance(response_format, dict):
        return None
    if isinstance(response_format.get("json_schema"), dict):
        schema = response_format["json_schema"].get("schema")
        return schema if isinstance(schema, dict) else None
    schema = response_format.get("schema")
    return schema if isinstance(schema, dict) else None


def ballot_for(schema: dict[str, Any], rng: random.Random, rationale_words: int) -> str:
    keys = schema.get("required") or list((schema.get("properties") or {}).keys())
    return json.dumps(
        {
            str(k): {
                "insight_score": rng.randint(1, 10),
                "rationale": " ".join(rng.choice(_WORDS) for _ in range(rationale_words)).capitalize() + ".",
            }
            for k in keys
        }
    )


def draft_text(n_words: int, rng: random.Random) -> str:
    title = " ".join(rng.choice(_WORDS) for _ in range(min(3, n_words))).title()
    body = " ".join(rng.choice(_WORDS) for _ in range(max(0, n_words - 3)))
    return f"{title}\n{body}" if body else title


def embed_vector(text: str, dim: int) -> list[float]:
    vec = [0.0] * dim
    for word in text.lower().split():
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vec[int.from_bytes(digest[:4], "little") % dim] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vec))
    if norm == 0.0:
        vec[0], norm = 1.0, 1.0
    return [x / norm for x in vec]


class BenchServer:
    """The server state: latency model, slots, prefix cache, statistics."""

    def __init__(self, model: LatencyModel | None = None) -> None:
        self.model = model or LatencyModel()
        self.model.validate()
        self.rng = random.Random(0)
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._reset_slots()
        self.cache = PrefixCache(self.model.block_tokens, self.model.cache_blocks)
        self.reset()

    # ------------------------------------------------------------------ slots and stats
    def _reset_slots(self) -> None:
        self._free: asyncio.Queue[int] = asyncio.Queue()
        for i in range(self.model.slots):
            self._free.put_nowait(i)
        self._busy_since: dict[int, float] = {}
        self._waiting = 0
        self._open = 0
        self._seen: set[str] = set()

    def reset(self) -> None:
        now = time.perf_counter()
        self.stats = Stats(started=now)
        self.busy = [0.0] * self.model.slots
        # a request still being served counts from the reset on
        for slot in list(self._busy_since):
            self._busy_since[slot] = now

    def snapshot(self) -> dict[str, Any]:
        now = time.perf_counter()
        busy = list(self.busy)
        for slot, since in self._busy_since.items():
            if slot < len(busy):
                busy[slot] += now - since
        window = now - self.stats.started
        s = self.stats
        waits = s.queue_waits
        return {
            "window_s": window,
            "slots": self.model.slots,
            "busy_s": busy,
            "utilisation": sum(busy) / (window * self.model.slots) if window > 0 else 0.0,
            "requests": s.requests,
            "completed": s.completed,
            "ballots": s.ballots,
            "truncated": s.truncated,
            "in_flight": len(self._busy_since),
            "queued": self._waiting,
            "max_queue": s.max_queue,
            "max_in_flight": s.max_in_flight,
            "repeats": s.repeats,
            "queue_wait_s": {
                "total": sum(waits),
                "max": max(waits, default=0.0),
                "median": statistics.median(waits) if waits else 0.0,
            },
            "service_s": {"median": statistics.median(s.service) if s.service else 0.0},
            "prompt_tokens": s.prompt_tokens,
            "shared_prompt_tokens": s.shared_prompt_tokens,
            "completion_tokens": s.completion_tokens,
            "by_kind": s.by_kind,
            "embeddings": s.embeddings,
            "embedded_texts": s.embedded_texts,
            "config": asdict(self.model),
        }

    def configure(self, changes: dict[str, Any]) -> None:
        known = {f.name for f in fields(LatencyModel)}
        bad = sorted(set(changes) - known)
        if bad:
            raise ValueError(f"unknown setting(s) {', '.join(bad)}")
        candidate = LatencyModel(**{**asdict(self.model), **changes})
        candidate.validate()
        if candidate.slots != self.model.slots and (self._busy_since or self._waiting):
            raise ValueError("cannot change slots while requests are running")
        slots_changed = candidate.slots != self.model.slots
        cache_changed = (candidate.block_tokens, candidate.cache_blocks) != (
            self.model.block_tokens,
            self.model.cache_blocks,
        )
        self.model = candidate
        if slots_changed:
            self._reset_slots()
            self.reset()
        if cache_changed:
            self.cache = PrefixCache(candidate.block_tokens, candidate.cache_blocks)

    # ------------------------------------------------------------------ endpoints
    async def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        arrived = time.perf_counter()
        self.stats.requests += 1
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
        if digest in self._seen:
            self.stats.repeats += 1
        self._seen.add(digest)
        self._open += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self._open)
        try:
            return await self._chat(body, arrived)
        finally:
            self._open -= 1

    async def _chat(self, body: dict[str, Any], arrived: float) -> dict[str, Any]:
        m = self.model
        tokens = prompt_tokens_of(body.get("messages") or [])
        shared = self.cache.admit(tokens)
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 1 << 30)
        seed = body.get("seed")
        rng = random.Random(seed) if seed is not None else random.Random(self.rng.getrandbits(64))
        schema = schema_of(body.get("response_format"))
        if schema is not None:
            text = ballot_for(schema, rng, m.rationale_words)
            n = len(text.split())
        else:
            wanted = m.output_tokens
            if m.output_jitter:
                wanted = max(1, round(wanted * (1 + rng.uniform(-m.output_jitter, m.output_jitter))))
            n = wanted
            text = ""
        finish = "stop"
        if n > max_tokens:
            n, finish = max_tokens, "length"
            if schema is not None:
                text = " ".join(text.split()[:n])
        if schema is None:
            text = draft_text(n, rng)
        self._waiting += 1
        self.stats.max_queue = max(self.stats.max_queue, self._waiting)
        try:
            slot = await self._free.get()
        finally:
            self._waiting -= 1
        started = time.perf_counter()
        self._busy_since[slot] = started
        try:
            duration = m.ttft_s + m.prefill_per_token_s * (len(tokens) - shared) + m.per_token_s * n
            if duration > 0:
                await asyncio.sleep(duration)
        finally:
            ended = time.perf_counter()
            since = self._busy_since.pop(slot)
            if slot < len(self.busy):
                self.busy[slot] += ended - since
            self._free.put_nowait(slot)
        s = self.stats
        s.completed += 1
        s.ballots += schema is not None
        s.truncated += finish == "length"
        s.queue_waits.append(started - arrived)
        s.service.append(ended - started)
        s.prompt_tokens += len(tokens)
        s.shared_prompt_tokens += shared
        s.completion_tokens += n
        kind = s.by_kind["ballot" if schema is not None else "draft"]
        kind["requests"] += 1
        kind["prompt_tokens"] += len(tokens)
        kind["shared_prompt_tokens"] += shared
        kind["completion_tokens"] += n
        return {
            "id": f"chatcmpl-bench-{s.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or MODEL_ID,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": len(tokens), "completion_tokens": n, "total_tokens": len(tokens) + n,
                      "prompt_tokens_details": {"cached_tokens": shared}},  # as vLLM with prefix caching says
        }

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list):
            raise ValueError("input must be a string or a list of strings")
        if self.model.embed_s:
            await asyncio.sleep(self.model.embed_s)
        self.stats.embeddings += 1
        self.stats.embedded_texts += len(texts)
        n_tokens = sum(len(str(t).split()) for t in texts)
        as_base64 = body.get("encoding_format") == "base64"  # what openai's client asks for by default

        def encode(vector: list[float]) -> list[float] | str:
            return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector

        return {
            "object": "list",
            "model": body.get("model") or MODEL_ID,
            "data": [
                {"object": "embedding", "index": i, "embedding": encode(embed_vector(str(t), self.model.embed_dim))}
                for i, t in enumerate(texts)
            ],
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
        }

    async def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        path = path.split("?", 1)[0].rstrip("/")
        if method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
            return 200, await self.chat(body or {})
        if method == "POST" and path in ("/v1/embeddings", "/embeddings"):
            return 200, await self.embeddings(body or {})
        if method == "GET" and path in ("/v1/models", "/models"):
            return 200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "owned_by": "bench"}]}
        if method == "GET" and path == "/stats":
            return 200, self.snapshot()
        if method == "POST" and path == "/stats/reset":
            self.reset()
            return 200, {"ok": True}
        if method == "POST" and path == "/config":
            self.configure(body or {})
            return 200, asdict(self.model)
        return 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}}

    # ------------------------------------------------------------------ HTTP
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, backlog=4096)
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def serve_forever(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                try:
                    method, target, _ = line.decode("latin-1").split(" ", 2)
                except ValueError:
                    return
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    key, _, value = header.decode("latin-1").partition(":")
                    headers[key.strip().lower()] = value.strip()
                raw = await reader.readexactly(int(headers.get("content-length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                    status, payload = await self.route(method.upper(), target, body)
                except (ValueError, TypeError, KeyError) as exc:
                    status, payload = 400, {"error": {"message": str(exc), "type": "invalid_request_error"}}
                data = json.dumps(payload).encode()
                close = headers.get("connection", "").lower() == "close"
                writer.write(
                    f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                    f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, LatencyModel]:
    parser = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 = any free port (printed on stdout)")
    defaults = LatencyModel()
    parser.add_argument("--slots", type=int, default=defaults.slots)
    parser.add_argument("--ttft", type=float, default=defaults.ttft_s, help="seconds to first token")
    parser.add_argument("--per-token", type=float, default=defaults.per_token_s, help="seconds per output token")
    parser.add_argument("--prefill-per-token", type=float, default=defaults.prefill_per_token_s,
                        help="seconds per uncached prompt token")  # fmt: skip
    parser.add_argument("--output-tokens", type=int, default=defaults.output_tokens)
    parser.add_argument("--output-jitter", type=float, default=defaults.output_jitter)
    parser.add_argument("--embed-s", type=float, default=defaults.embed_s)
    args = parser.parse_args(argv)
    model = LatencyModel(
        ttft_s=args.ttft, per_token_s=args.per_token, prefill_per_token_s=args.prefill_per_token,
        output_tokens=args.output_tokens, output_jitter=args.output_jitter, slots=args.slots, embed_s=args.embed_s,
    )  # fmt: skip
    model.validate()
    return args, model


def serve(label: str, server: BenchServer, host: str, port: int) -> None:
    """Run ``server`` until Ctrl-C, after printing the ``<label> listening on <base url>`` line that
    ``bench.process.ChildServer`` waits for."""

    async def run() -> None:
        await server.start(host, port)
        print(f"{label} listening on http://{host}:{server.port}/v1", flush=True)
        await server.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    args, model = parse_args(argv)
    serve("bench server", BenchServer(model), args.host, args.port)


if __name__ == "__main__":
    main()
