"""Helpers for tests/test_serve.py: a real ``seal serve`` subprocess on 127.0.0.1 and small HTTP utilities.

    with ServeProcess(store, model_dir, log_path, extra=["--max-queue", "1"]) as srv:
        client = srv.client()                       # the real openai client, no retries
        status, body, headers = srv.raw("GET", "/health")
        job = srv.wait_job(job_id, {"done"})

Every process started here is stopped by its pid (SIGTERM, then SIGKILL after a bounded wait); every wait is
bounded.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

KEY = "test-key-123"
SETS = ["--set", "inner_loop.epochs=2", "--set", "self_edit.max_new_tokens=16", "--set", "eval.answer_tokens=4",
        "--set", "model.threads=1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    def __init__(self, store: Path, model_dir: Path | None, log_path: Path, *, key: str | None = None,
                 sets: list[str] = SETS, extra: list[str] = ()) -> None:
        self.store, self.model_dir, self.log_path, self.key = store, model_dir, log_path, key
        self.args, self.port, self.proc = [*sets, *extra], free_port(), None

    # ------------------------------------------------------------------ process
    def start(self, timeout: float = 90) -> ServeProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "SEAL_API_KEY")}
        if self.key:
            env["SEAL_API_KEY"] = self.key  # the key through the environment, as documented
        cmd = [sys.executable, "-m", "seal.cli", "serve", "--store", str(self.store), "--port", str(self.port),
               *(["--model", str(self.model_dir)] if self.model_dir is not None else []), *self.args]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"seal serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.raw("GET", "/health")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"seal serve did not start within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._log.close()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self._log.close()

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ clients
    def client(self, key: str | None = None):
        import openai

        return openai.OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key=key or self.key or "none",
                             max_retries=0, timeout=60)

    def raw(self, method: str, path: str, body=None, headers: dict | None = None, key: str | None = None):
        """(status, parsed JSON body or None, headers); ``body`` a dict is sent as JSON."""
        hdrs = dict(headers or {})
        if key or self.key:
            hdrs.setdefault("Authorization", f"Bearer {key or self.key}")
        if isinstance(body, dict):
            body, hdrs["Content-Type"] = json.dumps(body).encode(), "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        return r.status, parsed, {k.lower(): v for k, v in r.getheaders()}

    def health(self) -> dict:
        return self.raw("GET", "/health")[1]

    def job(self, job_id: str) -> dict:
        return self.raw("GET", f"/v1/jobs/{job_id}")[1]

    def wait_job(self, job_id: str, statuses=("done", "failed", "rejected"), timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            time.sleep(0.02)
        raise AssertionError(f"job {job_id} not {statuses} within {timeout} s: {job}\n{self.log()}")

    def learn(self, text: str, timeout: float = 60, **fields) -> dict:
        status, body, _ = self.raw("POST", "/v1/documents", {"text": text, **fields})
        assert status == 202, (status, body)
        return self.wait_job(body["job_id"], timeout=timeout)
