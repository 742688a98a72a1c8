"""Tests for seal.grading: SQuAD normalisation, token F1, containment, the lexical grader and the LLM judge
(against a tiny OpenAI-compatible server on 127.0.0.1)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from seal.grading import JudgeError, JudgeGrader, LexicalGrader, contains, make_grader, normalize, token_f1


# --------------------------------------------------------------------------- lexical
@pytest.mark.parametrize(("text", "expected"), [
    ("The Cat", "cat"),
    ("  A   cat,  an apple; THE end!  ", "cat apple end"),
    ("Ilsabet Quorne.", "ilsabet quorne"),
    ("theatre anthem", "theatre anthem"),  # articles only as whole words
    ("\tone\n\ntwo ", "one two"),
    ("...", ""),
    ("", ""),
])
def test_normalize(text, expected):
    assert normalize(text) == expected


@pytest.mark.parametrize(("pred", "gold", "f1"), [
    ("Ilsabet Quorne", "Ilsabet Quorne", 1.0),
    ("the botanist Ilsabet Quorne", "Ilsabet Quorne", 0.8),  # p=2/3 r=1
    ("Quorne", "Ilsabet Quorne", 2 / 3),  # p=1 r=1/2
    ("once every nine years", "every nine years", 6 / 7),  # p=3/4 r=1
    ("red red blue", "red blue blue", 2 / 3),  # counts are clipped
    ("Lisbon", "Marrowick", 0.0),
    ("", "Marrowick", 0.0),
    ("", "", 1.0),
    ("the", "a", 1.0),  # both normalise to nothing
])
def test_token_f1(pred, gold, f1):
    assert token_f1(pred, gold) == pytest.approx(f1)


@pytest.mark.parametrize(("pred", "gold", "expected"), [
    ("It was Ilsabet Quorne, in 1847.", "Ilsabet Quorne", True),
    ("ILSABET QUORNE!", "ilsabet quorne", True),
    ("concatenate", "cat", False),
    ("the cat sat", "cat", True),
    ("cats", "cat", False),
    ("Marrowick", "The Marrowick", True),
    ("anything", "", False),
    ("anything", "the", False),
])
def test_contains_whole_words(pred, gold, expected):
    assert contains(pred, gold) is expected


def test_lexical_grader_thresholds():
    g = LexicalGrader(f1_threshold=0.5)
    assert g.grade("Quorne", "Ilsabet Quorne") is True  # f1 = 2/3
    assert g.grade("Ilsabet", "Ilsabet Quorne") is True  # f1 = 2/3
    assert g.grade("Ilsabet Marrowick Teller", "Ilsabet Quorne") is False  # f1 = 0.4
    assert g.grade("botanist Ilsabet", "Ilsabet Quorne") is True  # f1 = 0.5 exactly
    assert LexicalGrader(f1_threshold=0.7).grade("Quorne", "Ilsabet Quorne") is False
    assert LexicalGrader(f1_threshold=1.0).grade("Founder: ilsabet quorne!", "Ilsabet Quorne") is True  # contained
    assert g.grade("concatenate", "cat") is False
    assert g.grade_many(["q1", "q2"], ["Quorne", "no"], ["Ilsabet Quorne", "yes"]) == [True, False]
    with pytest.raises(ValueError):
        g.grade_many(["q"], ["a", "b"], ["a"])


def test_make_grader():
    g = make_grader("lexical", f1_threshold=0.9)
    assert isinstance(g, LexicalGrader) and g.f1_threshold == 0.9
    assert isinstance(make_grader("judge", url="http://x/v1", model="m"), JudgeGrader)
    with pytest.raises(ValueError, match="unknown grader 'nope'"):
        make_grader("nope")


# --------------------------------------------------------------------------- judge
@pytest.fixture()
def no_judge_env(monkeypatch):
    for var in ("SEAL_JUDGE_URL", "SEAL_JUDGE_MODEL", "SEAL_JUDGE_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)


def test_judge_needs_url_and_model(no_judge_env):
    with pytest.raises(JudgeError, match=r"^the judge grader needs a URL and a model "):
        JudgeGrader()
    with pytest.raises(JudgeError, match="--judge-url/--judge-model"):
        JudgeGrader(url="http://127.0.0.1:1/v1")
    with pytest.raises(JudgeError):
        JudgeGrader(model="gpt-4.1")


def test_judge_from_env(no_judge_env, monkeypatch):
    monkeypatch.setenv("SEAL_JUDGE_URL", "http://h/v1/")
    monkeypatch.setenv("SEAL_JUDGE_MODEL", "m")
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    j = JudgeGrader()
    assert (j.url, j.model, j.api_key) == ("http://h/v1", "m", "k")


@pytest.fixture()
def judge_server():
    """An OpenAI-compatible /v1/chat/completions that says yes iff the student answer contains 'right'."""
    calls: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            content = body["messages"][0]["content"]
            student = content.split("Student answer: ", 1)[1].split("\n", 1)[0]
            reply = " Yes." if "right" in student else "No, it is not."
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/", calls
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_judge_verdicts_and_request(no_judge_env, judge_server):
    url, calls = judge_server
    j = JudgeGrader(url=url, model="judge-model", api_key="sk-test", timeout=10)
    verdicts = j.grade_many(["Who?", "Where?"], ["the right one", "wrong place"], ["Ilsabet", "Marrowick"])
    assert verdicts == [True, False]
    assert len(calls) == 2
    first = calls[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["auth"] == "Bearer sk-test"
    assert first["body"]["model"] == "judge-model" and first["body"]["temperature"] == 0
    content = first["body"]["messages"][0]["content"]
    assert "Question: Who?" in content and "Reference answer: Ilsabet" in content
    assert "Student answer: the right one" in content


def test_judge_caches_repeated_triples(no_judge_env, judge_server):
    url, calls = judge_server
    j = JudgeGrader(url=url, model="m")
    assert j.grade_many(["Q", "Q", "Q"], ["right", "right", "right"], ["g", "g", "g"]) == [True, True, True]
    assert len(calls) == 1
    assert j.grade_many(["Q"], ["right"], ["g"]) == [True]
    assert len(calls) == 1
    assert j.grade_many(["Q"], ["right"], ["other gold"]) == [True]  # a different triple is a new call
    assert len(calls) == 2


def test_judge_empty_prediction_is_wrong_without_a_call(no_judge_env, judge_server):
    url, calls = judge_server
    j = JudgeGrader(url=url, model="m")
    assert j.grade_many(["Q", "Q"], ["", "  \n"], ["g", "g"]) == [False, False]
    assert calls == []


def test_judge_server_down(no_judge_env):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    j = JudgeGrader(url=f"http://127.0.0.1:{port}/v1", model="m", timeout=5)
    with pytest.raises(JudgeError, match=rf"judge request to http://127.0.0.1:{port}/v1 failed"):
        j.grade_many(["Q"], ["an answer"], ["gold"])


def test_judge_http_error_is_a_judge_error(no_judge_env):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_error(500, "boom")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        j = JudgeGrader(url=f"http://127.0.0.1:{server.server_address[1]}/v1", model="m", timeout=5)
        with pytest.raises(JudgeError, match="HTTP Error 500"):
            j.grade_many(["Q"], ["an answer"], ["gold"])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
