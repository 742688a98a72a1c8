"""Tests for seal.openai_api (the judge's and the teacher's client): where keys go, retries with backoff, the
bounded thread pool; with the real ``openai`` client against a real local server (tests/openai_server.py)."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from seal.grading import JudgeError, JudgeGrader
from seal.openai_api import ChatClient, is_loopback, is_openai_api, resolve_key
from seal.teacher import TeacherError, TeacherWriter
from tests.openai_server import FakeChat

ENV = ("SEAL_JUDGE_URL", "SEAL_JUDGE_MODEL", "SEAL_JUDGE_KEY", "SEAL_TEACHER_KEY", "OPENAI_API_KEY",
       "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_CUSTOM_HEADERS", "OPENAI_ADMIN_KEY", "OPENAI_BASE_URL")
MSG = [{"role": "user", "content": "hello"}]
FAST = {"backoff": 0.001, "max_backoff": 0.01}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture()
def server():
    with FakeChat(respond=lambda body: "hi") as s:
        yield s


@pytest.fixture()
def no_network(monkeypatch):
    """Any name lookup or connection attempt fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network used: {args}")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def chat(url: str, key: str = "", **kw) -> ChatClient:
    return ChatClient(url, key, what="judge", error=JudgeError, timeout=kw.pop("timeout", 5), **{**FAST, **kw})


# --------------------------------------------------------------------------- which key goes where
@pytest.mark.parametrize(("host", "loop"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("localhost", True), ("LOCALHOST.", True), ("::1", True),
    ("[::1]", True), ("10.0.0.1", False), ("example.invalid", False), ("localhost.example.com", False),
    ("128.0.0.1", False), ("::2", False),
])
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


def test_is_openai_api():
    assert is_openai_api("https://api.openai.com/v1")
    assert is_openai_api("https://API.OpenAI.com/v1/")
    assert not is_openai_api("http://api.openai.com/v1")  # plain http
    assert not is_openai_api("https://api.openai.com.evil.example/v1")
    assert not is_openai_api("https://evil.example/api.openai.com/v1")


def test_resolve_key_sources(monkeypatch):
    r = lambda url, key="", what="judge": resolve_key(url, key, what=what, error=JudgeError)  # noqa: E731
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert r("https://api.openai.com/v1") == "sk-openai"
    assert r("http://127.0.0.1:8000/v1") == ""  # OPENAI_API_KEY only for OpenAI
    assert r("https://my-vllm.example/v1") == ""
    assert r("http://api.openai.com/v1") == ""
    monkeypatch.setenv("SEAL_JUDGE_KEY", "judge-env")
    assert r("https://api.openai.com/v1") == "judge-env"  # the specific key wins
    assert r("https://my-vllm.example/v1") == "judge-env"
    assert r("https://my-vllm.example/v1", "judge-cli") == "judge-cli"
    assert r("https://my-vllm.example/v1", what="teacher") == ""  # the judge key is not the teacher's
    monkeypatch.setenv("SEAL_TEACHER_KEY", "teacher-env")
    assert r("https://my-vllm.example/v1", what="teacher") == "teacher-env"


@pytest.mark.parametrize("url", ["http://example.invalid/v1", "http://10.1.2.3:8000/v1", "HTTP://Example.Invalid/v1",
                                 "http://localhost.example.com/v1"])
def test_key_over_plain_http_to_a_remote_host_is_refused_before_connecting(url, no_network, monkeypatch):
    with pytest.raises(JudgeError, match=r"refusing to send the judge key \(--judge-key\) over plain http to .*"
                                         r"use an https:// URL or a loopback address") as exc:
        JudgeGrader(url=url, model="m", api_key="sk-secret")
    assert "sk-secret" not in str(exc.value) and "\n" not in str(exc.value)
    monkeypatch.setenv("SEAL_TEACHER_KEY", "sk-secret")
    with pytest.raises(TeacherError, match=r"\(SEAL_TEACHER_KEY\) over plain http"):
        TeacherWriter(url, "m")
    JudgeGrader(url=url, model="m")  # no key: nothing secret to protect


def test_teacher_env_key_refused_but_keyless_teacher_allowed(no_network, monkeypatch):
    monkeypatch.setenv("SEAL_TEACHER_KEY", "sk-secret")
    with pytest.raises(TeacherError, match="use an https:// URL or a loopback address"):
        TeacherWriter("http://example.invalid/v1", "m")
    monkeypatch.delenv("SEAL_TEACHER_KEY")
    TeacherWriter("http://example.invalid/v1", "m")


def test_key_allowed_over_https_and_loopback(no_network):
    for url in ("https://example.invalid/v1", "http://127.0.0.1:9/v1", "http://localhost:9/v1", "http://[::1]:9/v1",
                "http://127.0.0.2/v1"):
        assert JudgeGrader(url=url, model="m", api_key="k").api_key == "k"


@pytest.mark.parametrize("url", ["ftp://example.invalid/v1", "example.invalid/v1", "https:///v1",
                                 "https://user:pw@example.invalid/v1"])
def test_bad_urls(url, no_network):
    with pytest.raises(JudgeError, match="the judge URL must") as exc:
        JudgeGrader(url=url, model="m")
    assert "pw" not in str(exc.value)


def test_keys_reach_only_their_own_server(monkeypatch):
    with FakeChat(respond=lambda b: "yes") as judge_srv, FakeChat(respond=lambda b: "a fact") as teacher_srv:
        from seal.domains.knowledge import Passage

        passage = Passage(title="T", context="Some text.")
        judge = JudgeGrader(url=judge_srv.url, model="j", api_key="judge-secret", **FAST)
        teacher = TeacherWriter(teacher_srv.url, "t", api_key="teacher-secret", **FAST)
        assert judge.grade_many(["q"], ["a"], ["g"]) == [True]
        assert teacher(passage) == "a fact"
        monkeypatch.setenv("SEAL_JUDGE_KEY", "judge-env-secret")
        monkeypatch.setenv("SEAL_TEACHER_KEY", "teacher-env-secret")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
        assert JudgeGrader(url=judge_srv.url, model="j", **FAST).grade_many(["q2"], ["a"], ["g"]) == [True]
        assert TeacherWriter(teacher_srv.url, "t", **FAST)(passage) == "a fact"

    assert [r["headers"].get("authorization") for r in judge_srv.requests] == \
        ["Bearer judge-secret", "Bearer judge-env-secret"]
    assert [r["headers"].get("authorization") for r in teacher_srv.requests] == \
        ["Bearer teacher-secret", "Bearer teacher-env-secret"]
    for srv, foreign in ((judge_srv, "teacher"), (teacher_srv, "judge")):
        assert not any(foreign in v or "sk-openai" in v for v in srv.header_values())
        assert all(r["path"] == "/v1/chat/completions" for r in srv.requests)


def test_no_key_means_no_authorization_header(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-secret")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-secret")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "Authorization: Bearer custom-secret\nX-Proxy-Key: custom-secret")
    c = chat(server.url)
    assert c.complete(MSG, model="m") == "hi"
    headers = server.requests[0]["headers"]
    assert "authorization" not in headers and "x-proxy-key" not in headers
    assert "openai-organization" not in headers and "openai-project" not in headers
    assert not any("secret" in v or "seal-no-key" in v for v in server.header_values())


def test_loopback_servers_are_reached_without_the_environment_proxy(server, monkeypatch):
    with socket.socket() as s:  # a "proxy" nobody listens on: using it would fail
        s.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{s.getsockname()[1]}"
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert chat(server.url, "sk-local", retries=0).complete(MSG, model="m") == "hi"
    assert server.requests[0]["headers"]["authorization"] == "Bearer sk-local"


def test_missing_openai_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)  # import openai -> ImportError
    with pytest.raises(JudgeError, match=r"pip install 'seal\[openai\]'"):
        JudgeGrader(url="http://127.0.0.1:9/v1", model="m")
    with pytest.raises(TeacherError, match=r"pip install 'seal\[openai\]'"):
        TeacherWriter("http://127.0.0.1:9/v1", "m")


# --------------------------------------------------------------------------- retries
@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_retries_transient_errors_then_succeeds(server, status):
    server.fail(status, times=2)
    assert chat(server.url, retries=2).complete(MSG, model="m") == "hi"
    assert len(server.requests) == 3


def test_gives_up_after_the_retries(server):
    server.fail(503, times=10)
    with pytest.raises(JudgeError, match=rf"^judge request to {server.url} failed after 3 attempt\(s\): HTTP 503"):
        chat(server.url, "sk-secret", retries=2).complete(MSG, model="m")
    assert len(server.requests) == 3


def test_client_errors_are_not_retried(server):
    server.fail(400, times=5)
    with pytest.raises(JudgeError, match=r"failed after 1 attempt\(s\): HTTP 400"):
        chat(server.url, retries=3).complete(MSG, model="m")
    assert len(server.requests) == 1


def test_backoff_is_exponential_and_configurable(server):
    server.fail(500, times=3)
    t0 = time.perf_counter()
    chat(server.url, retries=3, backoff=0.05, max_backoff=1.0).complete(MSG, model="m")
    # jittered delays: (0.5..1) x (0.05 + 0.1 + 0.2) = 0.175..0.35 s
    assert 0.17 <= time.perf_counter() - t0 < 2.0


def test_connection_refused_is_retried_then_an_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(JudgeError, match=rf"judge request to http://127.0.0.1:{port}/v1 failed after 2 attempt\(s\): "
                                         r"connection failed"):
        chat(f"http://127.0.0.1:{port}/v1", retries=1).complete(MSG, model="m")


def test_timeout_is_retried_then_an_error():
    with FakeChat(respond=lambda b: "late", delay=0.5) as slow:
        with pytest.raises(JudgeError, match=r"failed after 2 attempt\(s\): no reply within 0.1 s"):
            chat(slow.url, retries=1, timeout=0.1).complete(MSG, model="m")
        assert len(slow.requests) == 2


def test_teacher_retries_then_teacher_error(server):
    from seal.domains.knowledge import Passage

    passage = Passage(title="T", context="Some text.")
    server.fail(429, times=1)
    assert TeacherWriter(server.url, "t", retries=1, **FAST)(passage) == "hi"
    server.fail(500, times=5)
    with pytest.raises(TeacherError, match=r"^teacher request to .* failed after 2 attempt\(s\): HTTP 500"):
        TeacherWriter(server.url, "t", retries=1, **FAST)(passage)


# --------------------------------------------------------------------------- thread pool
def test_complete_many_is_concurrent_and_bounded():
    with FakeChat(respond=lambda b: b["messages"][0]["content"].upper(), delay=0.2) as slow:
        c = chat(slow.url, workers=8)
        seen: list[int] = []
        t0 = time.perf_counter()
        out = c.complete_many([[{"role": "user", "content": f"m{i}"}] for i in range(16)],
                              on_result=lambda i, text: seen.append(i), model="m")
        elapsed = time.perf_counter() - t0
    assert out == [f"M{i}" for i in range(16)]
    assert sorted(seen) == list(range(16))
    assert elapsed < 1.6  # sequentially 16 x 0.2 = 3.2 s; 8 at a time about 0.4 s
    assert 1 < slow.max_in_flight <= 8


def test_complete_many_stops_at_a_persistent_failure_and_keeps_the_rest():
    def respond(body):
        return 500 if body["messages"][0]["content"] == "m0" else "ok"

    with FakeChat(respond=respond) as srv:
        got: dict[int, str] = {}
        with pytest.raises(JudgeError, match="HTTP 500"):
            chat(srv.url, workers=1, retries=1).complete_many(
                [[{"role": "user", "content": f"m{i}"}] for i in range(50)],
                on_result=lambda i, text: got.__setitem__(i, text), model="m")
    # one worker: m0 failed (twice), the queued requests were dropped; m1 may have started meanwhile
    assert got in ({}, {1: "ok"})
    assert len(srv.requests) == 2 + len(got)


def test_bad_options():
    with pytest.raises(ValueError):
        chat("http://127.0.0.1:9/v1", workers=0)
    with pytest.raises(ValueError):
        chat("http://127.0.0.1:9/v1", retries=-1)
