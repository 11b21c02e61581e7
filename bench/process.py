"""Run the benchmark server in a separate process (so its CPU is not the orchestrator's) and talk to its admin
endpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.server import LatencyModel

REPO = Path(__file__).resolve().parent.parent


class ChildServer:
    """A loopback HTTP server of ``bench`` run as a child process (``python -m <module> --port 0 …``): started on
    ``__enter__`` (it prints ``… listening on <base url>``), terminated, then killed, on ``__exit__``; JSON admin
    calls with ``call``."""

    module = ""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.root = ""

    def _start(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO),
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on " not in line:
            err = self.process.stderr.read() if self.process.stderr else ""
            self.process.kill()
            raise RuntimeError(f"{self.module} did not start: {line}{err}")
        self.base_url = line.rsplit("listening on ", 1)[1].strip()
        self.root = self.base_url.removesuffix("/v1")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
            self.process = None

    def call(self, method: str, path: str, body: Any = None, *, timeout: float = 60) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.root + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())


class ServerProcess(ChildServer):
    """``with ServerProcess(LatencyModel(...)) as server: server.base_url …`` — a ``bench.server`` child process
    on a free loopback port."""

    module = "bench.server"

    def __init__(self, model: LatencyModel | None = None) -> None:
        super().__init__()
        self.model = model or LatencyModel()

    def __enter__(self) -> ServerProcess:
        m = self.model
        self._start(
            "--slots", str(m.slots), "--ttft", repr(m.ttft_s), "--per-token", repr(m.per_token_s),
            "--prefill-per-token", repr(m.prefill_per_token_s), "--output-tokens", str(m.output_tokens),
            "--output-jitter", repr(m.output_jitter), "--embed-s", repr(m.embed_s),
        )  # fmt: skip
        self.configure(asdict(m))  # everything the command line does not carry
        return self

    def stats(self) -> dict[str, Any]:
        return self.call("GET", "/stats")  # type: ignore[no-any-return]

    def reset(self) -> None:
        self.call("POST", "/stats/reset", {})

    def configure(self, changes: dict[str, Any]) -> None:
        self.call("POST", "/config", changes)
        for key, value in changes.items():
            setattr(self.model, key, value)
