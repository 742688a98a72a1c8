"""The wire format of ``seal serve``: pydantic request models, OpenAI-style responses, stream chunks and errors.

Imported by :mod:`seal.serve.app` (the routes) and :mod:`seal.serve.scheduler` (which fails a request with an
:class:`APIError`); nothing here touches the model. Every error the server sends has the OpenAI shape::

    {"error": {"message": "The model `gpt-4` does not exist", "type": "invalid_request_error",
               "code": "model_not_found"}}

Status codes: 400 a well-formed request that is refused (``max_tokens`` over the cap, an empty or binary
document, ``seal@N`` on a merge store), 401 a missing or wrong key, 404 an unknown model, job, document or
version, 413 a body over ``--max-body-bytes``, 422 a body that does not match the schema (a missing field, a
wrong type, a number out of range), 429 a full queue, 500 an internal error (generic message; the traceback
goes to the server log), 503 the engine is not running.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_TOKENS_CAP = 512
"""The most tokens one choice may ask for (a clear 400 above)."""
DEFAULT_MAX_TOKENS = 128
MAX_N = 8
"""The most choices one request may ask for."""
MAX_STOPS = 4

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
          413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
          500: "server_error", 503: "server_error"}


class APIError(Exception):
    """An error to send as ``{"error": {...}}`` with ``status``; ``message`` is meant for the client."""

    def __init__(self, status: int, message: str, code: str | None = None, type: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.type = type or _TYPES.get(status, "invalid_request_error")

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code)


def error_body(message: str, type: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "code": code, "param": None}}


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


# ----------------------------------------------------------------------------------------------- requests
class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI fields seal does not use (user, penalties, ...) are ignored


class ContentPart(_Lenient):
    type: str
    text: str | None = None


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if any(p.type != "text" or p.text is None for p in self.content):
            raise APIError(400, "only text content parts are supported", "unsupported_content")
        return "".join(p.text for p in self.content)


class StreamOptions(_Lenient):
    include_usage: bool = False


class _Sampling(_Lenient):
    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    def checked_max_tokens(self) -> int:
        n = self.max_tokens if self.max_tokens is not None else DEFAULT_MAX_TOKENS
        if n > MAX_TOKENS_CAP:
            raise APIError(400, f"max_tokens is {n}, above this server's limit of {MAX_TOKENS_CAP}",
                           "max_tokens_too_large")
        if self.n > MAX_N:
            raise APIError(400, f"n is {self.n}, above this server's limit of {MAX_N}", "n_too_large")
        return n

    def stops(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > MAX_STOPS or any(not s for s in stops):
            raise APIError(400, f"stop must be at most {MAX_STOPS} non-empty strings", "invalid_stop")
        return stops


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None

    def checked_max_tokens(self) -> int:
        if self.max_tokens is None and self.max_completion_tokens is not None:
            self.max_tokens = self.max_completion_tokens
        if self.logprobs:
            raise APIError(400, "logprobs are not supported by seal serve", "unsupported_parameter")
        return super().checked_max_tokens()


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    logprobs: int | None = None
    echo: bool = False

    def prompts(self) -> list[str]:
        prompts = [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)
        if not prompts or len(prompts) * self.n > MAX_N:
            raise APIError(400, f"give 1 to {MAX_N} prompts (times n)", "invalid_prompt")
        if self.logprobs or self.echo:
            raise APIError(400, "logprobs and echo are not supported by seal serve", "unsupported_parameter")
        return prompts


class DocumentRequest(_Lenient):
    text: str
    title: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=128)
    format: str | None = None
    strategy: str | None = None
    guard: bool = False
    seed: int = Field(0, ge=0, le=2**31 - 1)


# ----------------------------------------------------------------------------------------------- responses
def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_response(rid: str, model: str, choices: list[dict], use: dict, version: int) -> dict[str, Any]:
    """``choices``: dicts with ``text`` and ``finish_reason``."""
    return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "system_fingerprint": f"seal-v{version}", "seal_version": version,
            "choices": [{"index": i, "message": {"role": "assistant", "content": c["text"]}, "logprobs": None,
                         "finish_reason": c["finish_reason"]} for i, c in enumerate(choices)],
            "usage": use}


def completion_response(rid: str, model: str, choices: list[dict], use: dict, version: int) -> dict[str, Any]:
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
            "system_fingerprint": f"seal-v{version}", "seal_version": version,
            "choices": [{"index": i, "text": c["text"], "logprobs": None, "finish_reason": c["finish_reason"]}
                        for i, c in enumerate(choices)],
            "usage": use}


def pieces(text: str) -> list[str]:
    """``text`` cut into word-sized stream deltas whose concatenation is exactly ``text``."""
    return re.findall(r"\s*\S+|\s+$", text)


def _sse(obj: dict | str) -> str:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n"


def stream_events(kind: Literal["chat", "completion"], rid: str, model: str, choices: list[dict], use: dict,
                  version: int, include_usage: bool) -> list[str]:
    """Server-sent events of a finished answer, as the ``openai`` client reads them: per choice a role chunk
    (chat), content chunks and a finish chunk; a usage chunk when asked for; ``data: [DONE]``."""
    created = int(time.time())
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    base = {"id": rid, "object": obj, "created": created, "model": model, "system_fingerprint": f"seal-v{version}",
            "seal_version": version}

    def chunk(index: int, payload: dict, finish: str | None) -> str:
        if kind == "chat":
            choice = {"index": index, "delta": payload, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": index, "text": payload.get("content", ""), "logprobs": None, "finish_reason": finish}
        return _sse({**base, "choices": [choice]})

    out = []
    for i, c in enumerate(choices):
        if kind == "chat":
            out.append(chunk(i, {"role": "assistant", "content": ""}, None))
        out += [chunk(i, {"content": p}, None) for p in pieces(c["text"])]
        out.append(chunk(i, {}, c["finish_reason"]))
    if include_usage:
        out.append(_sse({**base, "choices": [], "usage": use}))
    out.append(_sse("[DONE]"))
    return out


__all__ = ["APIError", "error_body", "ChatRequest", "CompletionRequest", "DocumentRequest", "chat_response",
           "completion_response", "stream_events", "pieces", "usage", "new_id", "MAX_TOKENS_CAP", "MAX_N"]
