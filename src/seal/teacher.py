"""A teacher model as an external self-edit writer, like the paper's GPT-4.1 synthetic-data baseline.

Any OpenAI-compatible ``/chat/completions`` endpoint works (OpenAI, vLLM, llama.cpp server, ...), through
``seal.openai_api`` (``pip install 'seal[openai]'``)::

    teacher = TeacherWriter(url="http://127.0.0.1:8000/v1", model="Qwen2.5-7B-Instruct")
    text = teacher(passage)       # implications, one per line

The key is ``api_key`` (``--teacher-key``) or env ``SEAL_TEACHER_KEY``; ``OPENAI_API_KEY`` only for
https://api.openai.com; never over plain http to a non-loopback host. Transient failures (429, 5xx,
connection errors, timeouts) are retried ``retries`` times with exponential ``backoff``; then ``TeacherError``.
"""

from __future__ import annotations

from seal.domains.knowledge import Passage, self_edit_instruction
from seal.openai_api import ChatClient, resolve_key


class TeacherError(RuntimeError):
    pass


class TeacherWriter:
    def __init__(self, url: str, model: str, api_key: str = "", max_tokens: int = 512, temperature: float = 0.7,
                 timeout: float = 120.0, *, retries: int = 3, backoff: float = 1.0,
                 max_backoff: float = 30.0) -> None:
        if not url or not model:
            raise TeacherError("a teacher needs both --teacher-url and --teacher-model")
        self.url, self.model = url.rstrip("/"), model
        self.api_key = resolve_key(self.url, api_key, what="teacher", error=TeacherError)
        self.max_tokens, self.temperature, self.timeout = max_tokens, temperature, timeout
        self._chat = ChatClient(self.url, self.api_key, what="teacher", error=TeacherError, timeout=timeout,
                                retries=retries, backoff=backoff, max_backoff=max_backoff, workers=1)

    def __repr__(self) -> str:
        return f"TeacherWriter(url={self.url!r}, model={self.model!r})"

    def __call__(self, passage: Passage) -> str:
        return self._chat.complete([{"role": "user", "content": self_edit_instruction(passage, "implications")}],
                                   model=self.model, temperature=self.temperature, max_tokens=self.max_tokens)
