"""Fixtures of the model-layer tests: a tiny loopback HTTP stub (fast tests) and a real ``llama_cpp.server``
on the packaged SmolLM2 GGUF (slow tests)."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from spacetime.adapters.llm.embedded import find_smollm2_gguf


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StubRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


Handler = Callable[[StubRequest], "tuple[Any, ...] | Awaitable[tuple[Any, ...]]"]
"""``(status, payload)`` or ``(status, payload, {header: value})``."""


def chat_response(text: str, finish_reason: str = "stop", prompt_tokens: int = 7, completion_tokens: int = 3) -> dict:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": "stub-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@dataclass
class StubServer:
    """An OpenAI-ish HTTP/1.1 server on loopback answering with ``handler``; records requests and the most
    requests it ever had in flight."""

    handler: Handler
    requests: list[StubRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    port: int = 0
    _server: asyncio.base_events.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    key, _, value = header.decode().partition(":")
                    headers[key.strip().lower()] = value.strip()
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                request = StubRequest(method, path, headers, json.loads(raw) if raw else None)
                self.requests.append(request)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    outcome = self.handler(request)
                    status, payload, *more = await outcome if inspect.isawaitable(outcome) else outcome
                finally:
                    self.in_flight -= 1
                data = json.dumps(payload).encode()
                extra = "".join(f"{k}: {v}\r\n" for k, v in (more[0] if more else {}).items())
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}"
                    f"Content-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
async def stub() -> AsyncIterator[Callable[[Handler], Awaitable[StubServer]]]:
    """Factory: ``server = await stub(handler)`` starts a stub on a free loopback port (stopped after the test)."""
    servers: list[StubServer] = []

    async def make(handler: Handler) -> StubServer:
        server = StubServer(handler)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


@pytest.fixture(name="chat_response")
def chat_response_fixture() -> Callable[..., dict]:
    """The ``chat_response(text, finish_reason, prompt_tokens, completion_tokens)`` body builder."""
    return chat_response


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    return free_port()


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    return find_smollm2_gguf()


@pytest.fixture(scope="session")
def llama_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``llama_cpp.server`` (under this CPU's load plan: ``plan_server.py``) on the packaged GGUF, on a free
    loopback port; yields its base URL
    (``http://127.0.0.1:PORT/v1``) and stops it at the end of the session. The served model id is ``smollm2``."""
    port = free_port()
    command = [
        sys.executable, str(Path(__file__).with_name("plan_server.py")),
        "--model", str(gguf_path),
        "--model_alias", "smollm2",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", "4096",
        "--n_threads", str(os.cpu_count() or 1),
        "--verbose", "False",
    ]  # fmt: skip
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    log = log_path.open("w")  # a file, not a pipe: a full pipe would block the server
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    try:
        while True:
            if process.poll() is not None:
                log.flush()
                output = log_path.read_text(errors="replace")
                pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{output[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not answer /v1/models within 120 s")
            time.sleep(0.25)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
