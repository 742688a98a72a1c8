"""Tests for seal.grading: SQuAD normalisation, token F1, containment, the lexical grader and the LLM judge
(with the real ``openai`` client against a tiny OpenAI-compatible server on 127.0.0.1, tests/openai_server.py)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from seal.grading import JudgeError, JudgeGrader, LexicalGrader, contains, make_grader, normalize, token_f1
from tests.openai_server import FakeChat, student_answer

FAST = {"backoff": 0.001, "max_backoff": 0.01}


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


def test_make_grader(no_judge_env):
    g = make_grader("lexical", f1_threshold=0.9)
    assert isinstance(g, LexicalGrader) and g.f1_threshold == 0.9
    assert isinstance(make_grader("judge", url="http://x/v1", model="m"), JudgeGrader)
    assert make_grader("judge", url="https://x/v1", model="m", api_key="k").api_key == "k"
    with pytest.raises(JudgeError, match="over plain http"):
        make_grader("judge", url="http://x/v1", model="m", api_key="k")
    with pytest.raises(ValueError, match="unknown grader 'nope'"):
        make_grader("nope")


# --------------------------------------------------------------------------- judge
@pytest.fixture()
def no_judge_env(monkeypatch):
    for var in ("SEAL_JUDGE_URL", "SEAL_JUDGE_MODEL", "SEAL_JUDGE_KEY", "SEAL_TEACHER_KEY", "OPENAI_API_KEY",
                "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_CUSTOM_HEADERS", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def test_judge_needs_url_and_model(no_judge_env):
    with pytest.raises(JudgeError, match=r"^the judge grader needs a URL and a model "):
        JudgeGrader()
    with pytest.raises(JudgeError, match="--judge-url/--judge-model"):
        JudgeGrader(url="http://127.0.0.1:1/v1")
    with pytest.raises(JudgeError):
        JudgeGrader(model="gpt-4.1")


def test_judge_from_env(no_judge_env, monkeypatch):
    monkeypatch.setenv("SEAL_JUDGE_URL", "https://h/v1/")
    monkeypatch.setenv("SEAL_JUDGE_MODEL", "m")
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    j = JudgeGrader()
    assert (j.url, j.model, j.api_key) == ("https://h/v1", "m", "")  # OPENAI_API_KEY is for OpenAI only
    monkeypatch.setenv("SEAL_JUDGE_KEY", "jk")
    assert JudgeGrader().api_key == "jk"
    monkeypatch.setenv("SEAL_JUDGE_URL", "https://api.openai.com/v1")
    monkeypatch.delenv("SEAL_JUDGE_KEY")
    assert JudgeGrader().api_key == "k"
    assert "k" not in repr(JudgeGrader()).replace("api.openai.com", "")


@pytest.fixture()
def judge_server():
    """An OpenAI-compatible /v1/chat/completions: yes iff the student answer contains 'right', 500 for 'boom'."""
    with FakeChat() as server:
        yield server.url + "/", server


def test_judge_verdicts_and_request(no_judge_env, judge_server):
    url, server = judge_server
    j = JudgeGrader(url=url, model="judge-model", api_key="sk-test", timeout=10)
    verdicts = j.grade_many(["Who?", "Where?"], ["the right one", "wrong place"], ["Ilsabet", "Marrowick"])
    assert verdicts == [True, False]
    assert len(server.requests) == 2
    first = next(r for r in server.requests if student_answer(r["body"]) == "the right one")
    assert first["path"] == "/v1/chat/completions"
    assert first["headers"]["authorization"] == "Bearer sk-test"
    assert first["body"]["model"] == "judge-model" and first["body"]["temperature"] == 0
    assert first["body"]["max_tokens"] == 3
    content = first["body"]["messages"][0]["content"]
    assert "Question: Who?" in content and "Reference answer: Ilsabet" in content
    assert "Student answer: the right one" in content
    assert content.endswith("Reply with exactly one word: yes or no.")


def test_judge_without_key_sends_no_authorization(no_judge_env, judge_server, monkeypatch):
    url, server = judge_server
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    assert JudgeGrader(url=url, model="m").grade_many(["Q"], ["right"], ["g"]) == [True]
    assert "authorization" not in server.requests[0]["headers"]
    assert not any("sk-openai" in v for v in server.header_values())


def test_judge_caches_repeated_triples(no_judge_env, judge_server):
    url, server = judge_server
    j = JudgeGrader(url=url, model="m")
    assert j.grade_many(["Q", "Q", "Q"], ["right", "right", "right"], ["g", "g", "g"]) == [True, True, True]
    assert len(server.requests) == 1
    assert j.grade_many(["Q"], ["right"], ["g"]) == [True]
    assert len(server.requests) == 1
    assert j.grade_many(["Q"], ["right"], ["other gold"]) == [True]  # a different triple is a new call
    assert len(server.requests) == 2


def test_judge_empty_prediction_is_wrong_without_a_call(no_judge_env, judge_server):
    url, server = judge_server
    j = JudgeGrader(url=url, model="m")
    assert j.grade_many(["Q", "Q"], ["", "  \n"], ["g", "g"]) == [False, False]
    assert server.requests == []
    assert j.grade_many([], [], []) == []
    with pytest.raises(ValueError):
        j.grade_many(["Q"], ["a", "b"], ["g"])


def test_judge_server_down(no_judge_env):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    j = JudgeGrader(url=f"http://127.0.0.1:{port}/v1", model="m", timeout=5, retries=1, **FAST)
    with pytest.raises(JudgeError, match=rf"^judge request to http://127.0.0.1:{port}/v1 failed after 2 attempt"):
        j.grade_many(["Q"], ["an answer"], ["gold"])


def test_judge_retries_429_and_5xx_then_succeeds(no_judge_env, judge_server):
    url, server = judge_server
    server.fail(429, times=1)
    server.fail(500, times=1)
    j = JudgeGrader(url=url, model="m", retries=2, **FAST)
    assert j.grade_many(["Q"], ["right"], ["g"]) == [True]
    assert len(server.requests) == 3


def test_failing_judge_stops_and_keeps_what_was_graded(no_judge_env, judge_server):
    url, server = judge_server
    # backoff 0.05 s: 'boom' fails after >= 75 ms, long after the other five requests went out
    j = JudgeGrader(url=url, model="m", retries=2, workers=8, backoff=0.05, max_backoff=0.1)
    qs, golds = [f"Q{i}" for i in range(6)], ["g"] * 6
    preds = ["right", "wrong", "boom", "right", "wrong", "right"]  # 'boom' always gets HTTP 500
    with pytest.raises(JudgeError, match=r"failed after 3 attempt\(s\): HTTP 500") as exc:
        j.grade_many(qs, preds, golds)
    assert "\n" not in str(exc.value)
    asked = {student_answer(r["body"]) for r in server.requests}
    kept = dict(j._cache)
    # every verdict that came back before the failure is cached (all five, with 8 workers for 6 answers)
    assert kept == {(q, p, "g"): p == "right" for q, p in zip(qs, preds, strict=True) if p != "boom"}
    assert asked == set(preds)
    n = len(server.requests)
    with pytest.raises(JudgeError):  # a rerun re-asks only the missing verdict
        j.grade_many(qs, preds, golds)
    assert len(server.requests) == n + 3
    assert {student_answer(r["body"]) for r in server.requests[n:]} == {"boom"}
    preds[2] = "right again"  # the judge recovers for a continuation: only the new answer is asked
    assert j.grade_many(qs, preds, golds) == [True, False, True, True, False, True]
    assert len(server.requests) == n + 4


def test_judge_grades_concurrently(no_judge_env):
    with FakeChat(delay=0.2) as slow:
        j = JudgeGrader(url=slow.url, model="m", workers=8)
        preds = [f"right {i}" if i % 2 else f"wrong {i}" for i in range(16)]
        t0 = time.perf_counter()
        verdicts = j.grade_many([f"Q{i}" for i in range(16)], preds, ["g"] * 16)
        elapsed = time.perf_counter() - t0
    assert verdicts == [bool(i % 2) for i in range(16)]
    assert elapsed < 1.6  # one at a time: 16 x 0.2 s = 3.2 s
    assert 1 < slow.max_in_flight <= 8


def test_judge_http_error_is_a_judge_error(no_judge_env, judge_server):
    url, server = judge_server
    server.fail(500, times=2)
    j = JudgeGrader(url=url, model="m", timeout=5, retries=1, **FAST)
    with pytest.raises(JudgeError, match="HTTP 500"):
        j.grade_many(["Q"], ["an answer"], ["gold"])
    server.fail(401, times=2)  # not retried
    n = len(server.requests)
    with pytest.raises(JudgeError, match=r"failed after 1 attempt\(s\): HTTP 401"):
        JudgeGrader(url=url, model="m", retries=3, **FAST).grade_many(["Q"], ["an answer"], ["gold"])
    assert len(server.requests) == n + 1


# --------------------------------------------------------------------------- CLI wiring of the keys
class _Stop(Exception):
    pass


def test_cli_passes_the_keys_and_never_puts_them_in_the_config(no_judge_env, judge_server, monkeypatch):
    from typer.testing import CliRunner

    from seal import cli, teacher

    url, server = judge_server
    seen: dict = {}

    def fake_load_seal(cfg, slots=1, grader=None):
        seen["cfg"], seen["grader"] = cfg, grader
        raise _Stop

    made = []
    real_init = teacher.TeacherWriter.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(cli, "load_seal", fake_load_seal)
    monkeypatch.setattr(teacher.TeacherWriter, "__init__", init)
    with FakeChat(respond=lambda b: "a fact") as teacher_srv:
        r = CliRunner().invoke(cli.app, ["eval", "knowledge", "--limit", "1", "--methods", "base", "--grader", "judge",
                                         "--judge-url", url, "--judge-model", "jm", "--judge-key", "judge-secret",
                                         "--teacher-url", teacher_srv.url, "--teacher-model", "tm",
                                         "--teacher-key", "teacher-secret"])
        assert isinstance(r.exception, _Stop), r.output
        assert seen["grader"].grade_many(["Q"], ["right"], ["g"]) == [True]
        from seal.domains.knowledge import Passage

        assert made[0](Passage("T", "text")) == "a fact"
    assert server.requests[0]["headers"]["authorization"] == "Bearer judge-secret"
    assert teacher_srv.requests[0]["headers"]["authorization"] == "Bearer teacher-secret"
    saved = json.dumps(seen["cfg"].to_dict())
    assert "secret" not in saved and seen["cfg"].eval.judge_url == url


def test_cli_refuses_a_key_over_plain_http_before_loading_the_model(no_judge_env, monkeypatch, capsys):
    import sys

    from seal import cli

    monkeypatch.setattr(cli, "load_seal", lambda *a, **k: pytest.fail("the model was loaded"))
    for args, fragment in ((["--grader", "judge", "--judge-url", "http://example.invalid/v1", "--judge-model", "m",
                             "--judge-key", "sk-secret"], "refusing to send the judge key (--judge-key)"),
                           (["--teacher-url", "http://example.invalid/v1", "--teacher-model", "m",
                             "--teacher-key", "sk-secret"], "refusing to send the teacher key (--teacher-key)")):
        monkeypatch.setattr(sys, "argv", ["seal", "eval", "knowledge", "--limit", "1", "--methods", "base", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            cli.main()
        err = capsys.readouterr().err
        assert exc.value.code == 1
        assert fragment in err and "use an https:// URL or a loopback address" in err and "sk-secret" not in err
