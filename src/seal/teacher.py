"""A teacher model as an external self-edit writer, like the paper's GPT-4.1 synthetic-data baseline.

Any OpenAI-compatible ``/chat/completions`` endpoint works (OpenAI, vLLM, llama.cpp server, ...)::

    teacher = TeacherWriter(url="http://localhost:8000/v1", model="Qwen2.5-7B-Instruct")
    text = teacher(passage)       # implications, one per line

The key comes from ``--teacher-key`` or the env ``SEAL_TEACHER_KEY`` / ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from seal.domains.knowledge import Passage, self_edit_instruction


class TeacherError(RuntimeError):
    pass


class TeacherWriter:
    def __init__(self, url: str, model: str, api_key: str = "", max_tokens: int = 512, temperature: float = 0.7,
                 timeout: float = 120.0) -> None:
        if not url or not model:
            raise TeacherError("a teacher needs both --teacher-url and --teacher-model")
        self.url, self.model = url.rstrip("/"), model
        self.api_key = api_key or os.environ.get("SEAL_TEACHER_KEY") or os.environ.get("OPENAI_API_KEY", "")
        self.max_tokens, self.temperature, self.timeout = max_tokens, temperature, timeout

    def __call__(self, passage: Passage) -> str:
        body = {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens,
                "messages": [{"role": "user", "content": self_edit_instruction(passage, "implications")}]}
        req = urllib.request.Request(f"{self.url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self.api_key}"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.load(resp)["choices"][0]["message"]["content"]
        except (urllib.error.URLError, KeyError, IndexError, json.JSONDecodeError, TimeoutError) as exc:
            raise TeacherError(f"teacher request to {self.url} failed: {exc}") from exc
