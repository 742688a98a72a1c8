"""A `seal serve` process for scripts and benchmarks: start it on a free 127.0.0.1 port, wait until it is
healthy, call its JSON routes, and stop it by its pid (the OpenAI routes are for the ``openai`` client)::

    with ServeProcess(store="/tmp/store", key="k", sets=["inner_loop.epochs=5"]) as srv:
        client = openai.OpenAI(base_url=srv.url, api_key="k")
        status, job = srv.call("POST", "/v1/documents", {"text": "..."})
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(method: str, url: str, body: dict | None = None, key: str = "", timeout: float = 60
              ) -> tuple[int, Any]:
    """(status, parsed JSON body) of one request (the standard library only; error statuses are returned)."""
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {key}"} if key else {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class ServeProcess:
    """``seal serve`` as a child process (its own session), its output in ``log``; see the module docstring."""

    def __init__(self, store: str | Path | None = None, *, key: str = "", model: str | None = None,
                 sets: Sequence[str] = (), startup_s: float = 600) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="seal-serve-"))
        self.store, self.key, self.port = Path(store) if store else self.work / "store", key, free_port()
        self.log = self.work / "serve.log"
        self.cmd = [sys.executable, "-m", "seal.cli", "serve", "--store", str(self.store), "--port", str(self.port),
                    *(["--api-key", key] if key else []), *(["--model", model] if model else []),
                    *[x for s in sets for x in ("--set", s)]]
        self.startup_s, self.proc = startup_s, None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 60) -> tuple[int, Any]:
        return http_json(method, f"http://127.0.0.1:{self.port}{path}", body, self.key, timeout)

    def start(self) -> ServeProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + self.startup_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"seal serve exited with status {self.proc.returncode}: "
                                   f"{self.log.read_text(errors='replace')[-1000:]}")
            try:
                if self.call("GET", "/health", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"seal serve did not become healthy within {self.startup_s:.0f} s (log: {self.log})")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=60)

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
