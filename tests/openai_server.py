"""A real, tiny OpenAI-compatible ``/v1/chat/completions`` server on 127.0.0.1 for the judge/teacher tests.

It runs ``http.server.ThreadingHTTPServer`` in a thread on a free port, records every request (path, headers
with lower-case names, JSON body), can fail the next N requests with a status, and can sleep per request::

    with FakeChat(respond=lambda body: "yes") as server:
        server.fail(429, times=2)           # the next two requests get 429, then replies again
        ... JudgeGrader(url=server.url, ...) ...
        server.requests[0]["headers"].get("authorization")
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Respond = Callable[[dict[str, Any]], "str | int"]
"""Request body -> reply text, or an HTTP status to fail with."""


def student_answer(body: dict[str, Any]) -> str:
    """The student answer inside a judge prompt."""
    return body["messages"][0]["content"].split("Student answer: ", 1)[1].split("\n", 1)[0]


def judge_reply(body: dict[str, Any]) -> str | int:
    """Yes iff the student answer contains 'right'; HTTP 500 iff it contains 'boom'."""
    student = student_answer(body)
    if "boom" in student:
        return 500
    return " Yes." if "right" in student else "No, it is not."


class FakeChat:
    def __init__(self, respond: Respond = judge_reply, delay: float = 0.0) -> None:
        self.respond, self.delay = respond, delay
        self.requests: list[dict[str, Any]] = []
        self.in_flight = self.max_in_flight = 0
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None  # clients that timed out and hung up
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def fail(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._failures += [status] * times

    def header_values(self) -> list[str]:
        """Every header value of every request so far."""
        return [v for r in self.requests for v in r["headers"].values()]

    def __enter__(self) -> FakeChat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append({"path": self.path, "body": body,
                                          "headers": {k.lower(): v for k, v in self.headers.items()}})
                    status = fake._failures.pop(0) if fake._failures else None
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    if fake.delay:
                        time.sleep(fake.delay)
                    reply = fake.respond(body) if status is None else status
                    if isinstance(reply, int):
                        self._send(reply, {"error": {"message": f"failing with {reply}", "type": "test"}})
                    else:
                        self._send(200, {"id": "c1", "object": "chat.completion", "created": 0,
                                         "model": body.get("model", ""),
                                         "choices": [{"index": 0, "finish_reason": "stop",
                                                      "message": {"role": "assistant", "content": reply}}]})
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _send(self, status: int, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler
