"""The shared client for OpenAI-compatible ``/chat/completions`` endpoints: the LLM judge and the teacher.

``seal.grading.JudgeGrader`` and ``seal.teacher.TeacherWriter`` each resolve their key and build one
:class:`ChatClient` (one ``openai.OpenAI`` client for their (URL, key)); it is not meant for other use::

    key = resolve_key(url, cli_key, what="judge", error=JudgeError)   # "" = send no key
    chat = ChatClient(url, key, what="judge", error=JudgeError, retries=3, backoff=1.0, workers=8)
    text = chat.complete(model="m", messages=[{"role": "user", "content": "..."}], max_tokens=3)
    chat.complete_many([messages, ...], on_result=lambda i, text: ..., model="m")  # bounded thread pool

Key rules (:func:`resolve_key`): the ``what`` key comes from ``--<what>-key`` or env ``SEAL_<WHAT>_KEY``;
``OPENAI_API_KEY`` is used only for ``https://api.openai.com``. A key is never sent over plain http except to
a loopback host (127.0.0.0/8, localhost, ::1; reached without any proxy from the environment): that is
refused before any connection. Without a key no ``Authorization`` header is sent at all. To a non-OpenAI
host the openai library's ambient ``OPENAI_ORG_ID`` / ``OPENAI_PROJECT_ID`` / ``OPENAI_CUSTOM_HEADERS``
headers are not sent either.

Failures: 408/409/429/5xx replies, connection errors and timeouts are retried ``retries`` times with
exponential backoff (``backoff * 2**attempt`` seconds, jittered, at most ``max_backoff``, or a longer
``Retry-After``); other errors, and the last failed attempt, raise ``error`` (``JudgeError`` /
``TeacherError``) with a one-line message that never contains the key.

Needs the optional ``openai`` package: ``pip install 'seal[openai]'``.
"""

from __future__ import annotations

import ipaddress
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any
from urllib.parse import urlsplit

OPENAI_HOST = "api.openai.com"
NO_KEY = "seal-no-key-sent"
"""The openai client insists on an api_key string: this placeholder, never a real key, is given to it when
there is no key, and the request omits the Authorization header anyway."""

Message = dict[str, str]


def is_loopback(host: str) -> bool:
    host = host.lower().rstrip(".").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split(url: str, what: str, error: type[Exception]):
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise error(f"the {what} URL must look like https://host[:port]/v1 (or http:// for a loopback host), "
                    f"not {display_url(url)!r}")
    if parts.username is not None or parts.password is not None:
        raise error(f"the {what} URL must not contain credentials: give the key with --{what}-key or "
                    f"SEAL_{what.upper()}_KEY")
    return parts


def display_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def is_openai_api(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme.lower() == "https" and (parts.hostname or "").rstrip(".") == OPENAI_HOST


def resolve_key(url: str, key: str = "", *, what: str, error: type[Exception]) -> str:
    """The key to send to ``url`` ("" for none), by the rules in the module docstring.

    ``key`` is the one given on the command line ("" = not given). Raises ``error`` when the URL is not
    http(s) or when a key would travel over plain http to a non-loopback host."""
    parts = _split(url, what, error)
    env = f"SEAL_{what.upper()}_KEY"
    source = f"--{what}-key"
    if not key:
        key, source = os.environ.get(env, ""), env
    if not key and is_openai_api(url):
        key, source = os.environ.get("OPENAI_API_KEY", ""), "OPENAI_API_KEY"
    if key and parts.scheme.lower() == "http" and not is_loopback(parts.hostname or ""):
        raise error(f"refusing to send the {what} key ({source}) over plain http to {parts.hostname}: "
                    "use an https:// URL or a loopback address (127.0.0.1, localhost, ::1)")
    return key


def _import_openai(error: type[Exception]):
    try:
        import openai
    except ImportError as exc:
        raise error("the OpenAI-compatible judge/teacher needs the openai package: pip install 'seal[openai]'") \
            from exc
    return openai


def _one_line(text: object, limit: int = 300) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[:limit - 3] + "..."


class ChatClient:
    """One ``openai.OpenAI`` client for one (URL, key), with retries and a bounded thread pool."""

    def __init__(self, url: str, api_key: str, *, what: str, error: type[Exception], timeout: float = 60.0,
                 retries: int = 3, backoff: float = 1.0, max_backoff: float = 30.0, workers: int = 8) -> None:
        if retries < 0 or backoff < 0 or max_backoff < 0 or workers < 1 or timeout <= 0:
            raise ValueError("need retries >= 0, backoff >= 0, max_backoff >= 0, workers >= 1, timeout > 0")
        parts = _split(url, what, error)
        openai = _import_openai(error)
        self.url, self.what, self.error = url, what, error
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        self.workers = workers
        self._openai = openai
        # the library's own retries are off: ours are configurable, stop early and keep messages one line
        extra: dict[str, Any] = {}
        if parts.scheme.lower() == "http" and is_loopback(parts.hostname or ""):
            # no HTTP_PROXY / ALL_PROXY between us and a loopback server: the key must not leave the machine
            extra["http_client"] = openai.DefaultHttpxClient(trust_env=False)
        self._client = openai.OpenAI(base_url=url, api_key=api_key or NO_KEY, timeout=timeout, max_retries=0,
                                     **extra)
        omit = openai.Omit()
        headers: dict[str, Any] = {"Authorization": f"Bearer {api_key}" if api_key else omit}
        if not is_openai_api(url):  # OpenAI account identifiers and env headers are for OpenAI only
            headers |= {"OpenAI-Organization": omit, "OpenAI-Project": omit}
            for line in os.environ.get("OPENAI_CUSTOM_HEADERS", "").split("\n"):
                if ":" in line:
                    headers[line.split(":", 1)[0].strip()] = omit
        self._headers = headers

    def __repr__(self) -> str:
        return f"ChatClient({display_url(self.url)!r}, what={self.what!r})"

    def complete(self, messages: list[Message], **params: Any) -> str:
        """The reply text of one chat completion (``params``: model, temperature, max_tokens, ...)."""
        return self._complete(messages, params, None)

    def complete_many(self, requests: Sequence[list[Message]], on_result: Callable[[int, str], None] | None = None,
                      **params: Any) -> list[str]:
        """Replies to many requests, ``workers`` at a time; ``on_result(i, text)`` is called (in this thread) as
        each one succeeds. On a failure the queued requests are dropped, those in flight finish (their
        ``on_result`` still runs, without further retries), and the first error is raised."""
        results: list[str] = [""] * len(requests)
        if not requests:
            return results
        stop = threading.Event()
        first: BaseException | None = None
        pool = ThreadPoolExecutor(max_workers=min(self.workers, len(requests)),
                                  thread_name_prefix=f"seal-{self.what}")
        try:
            futures = {pool.submit(self._complete, m, params, stop): i for i, m in enumerate(requests)}
            for fut in as_completed(futures):
                if fut.cancelled():
                    continue
                exc = fut.exception()
                if exc is None:
                    results[futures[fut]] = fut.result()
                    if on_result is not None:
                        on_result(futures[fut], results[futures[fut]])
                elif first is None:
                    first = exc
                    stop.set()
                    for f in futures:
                        f.cancel()
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
        if first is not None:
            raise first
        return results

    def _complete(self, messages: list[Message], params: dict[str, Any], stop: threading.Event | None) -> str:
        openai = self._openai
        attempts = self.retries + 1
        for attempt in range(attempts):
            retry_after = 0.0
            try:
                resp = self._client.chat.completions.create(messages=messages, extra_headers=self._headers,
                                                            **params)
            except openai.APIStatusError as exc:
                status = exc.status_code
                problem = f"HTTP {status}: {_one_line(exc.message)}"
                retryable = status in (408, 409, 429) or status >= 500
                try:
                    retry_after = float(exc.response.headers.get("retry-after", 0))
                except ValueError:
                    retry_after = 0.0
            except openai.APITimeoutError:
                problem, retryable = f"no reply within {self.timeout:g} s", True
            except openai.APIConnectionError as exc:
                problem, retryable = f"connection failed ({_one_line(exc.__cause__ or exc)})", True
            except (openai.OpenAIError, ValueError) as exc:
                problem, retryable = f"bad reply ({_one_line(exc)})", False
            else:
                try:
                    text = resp.choices[0].message.content
                except (AttributeError, IndexError, KeyError, TypeError):
                    text = None
                if isinstance(text, str):
                    return text
                problem, retryable = f"reply without a message text ({_one_line(resp, 120)})", False
            if not retryable or attempt == attempts - 1:
                raise self.error(f"{self.what} request to {display_url(self.url)} failed after {attempt + 1} "
                                 f"attempt(s): {problem}")
            delay = min(self.max_backoff, self.backoff * 2 ** attempt * random.uniform(0.5, 1.0))
            delay = max(delay, min(retry_after, self.max_backoff))
            if stop is None:
                time.sleep(delay)
            elif stop.wait(delay):
                raise self.error(f"{self.what} request to {display_url(self.url)} abandoned: another one failed")
        raise AssertionError("unreachable")
