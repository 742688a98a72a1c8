"""Answer grading: offline lexical (SQuAD normalisation, containment or token F1) and an LLM judge.

The paper grades with GPT-4.1 asked whether an answer is consistent with the gold answer. seal's default is
offline and deterministic; the judge works with any OpenAI-compatible endpoint (through ``seal.openai_api``,
which needs ``pip install 'seal[openai]'``)::

    grade = LexicalGrader(f1_threshold=0.5)
    grade.grade_many(["who?"], ["Marie Curie, in 1903"], ["Marie Curie"])   # -> [True]
    judge = JudgeGrader(url="https://api.openai.com/v1", model="gpt-4.1")  # key: SEAL_JUDGE_KEY / OPENAI_API_KEY
    judge = JudgeGrader(url="http://127.0.0.1:8000/v1", model="qwen", workers=8)  # local server, no key

The judge's key is ``api_key`` (``--judge-key``) or env ``SEAL_JUDGE_KEY``; ``OPENAI_API_KEY`` only for
https://api.openai.com; never over plain http to a non-loopback host (see ``seal.openai_api``). The key is
not part of ``SealConfig``, so it never lands in a saved config or result. ``grade_many`` asks up to
``workers`` questions at a time, retries transient failures, and caches every verdict as it arrives: when
the judge keeps failing it raises ``JudgeError``, and a rerun with the same grader re-asks only what is missing.
"""

from __future__ import annotations

import os
import re
import string
from collections import Counter
from typing import Protocol

from seal.openai_api import ChatClient, resolve_key

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def contains(prediction: str, gold: str) -> bool:
    """The normalised gold answer appears as whole words in the normalised prediction."""
    g, p = normalize(gold), normalize(prediction)
    return bool(g) and f" {g} " in f" {p} "


class Grader(Protocol):
    def grade_many(self, questions: list[str], predictions: list[str], golds: list[str]) -> list[bool]: ...


class LexicalGrader:
    """Correct when the gold answer is contained in the prediction, or token F1 >= threshold."""

    def __init__(self, f1_threshold: float = 0.5) -> None:
        self.f1_threshold = f1_threshold

    def grade(self, prediction: str, gold: str) -> bool:
        return contains(prediction, gold) or token_f1(prediction, gold) >= self.f1_threshold

    def grade_many(self, questions, predictions, golds) -> list[bool]:
        return [self.grade(p, g) for p, g in zip(predictions, golds, strict=True)]


class JudgeError(RuntimeError):
    pass


_JUDGE_PROMPT = (
    "You grade short answers. Question: {q}\nReference answer: {g}\nStudent answer: {p}\n"
    "Is the student answer consistent with the reference answer (same fact, wording may differ, extra "
    "correct detail is fine)? Reply with exactly one word: yes or no."
)


class JudgeGrader:
    """LLM judge over an OpenAI-compatible ``/chat/completions`` endpoint; verdicts are cached in memory.

    ``retries`` / ``backoff`` (seconds, doubled per retry) / ``workers`` (concurrent requests) tune the
    client, see ``seal.openai_api.ChatClient``."""

    def __init__(self, url: str = "", model: str = "", api_key: str = "", timeout: float = 60.0, *,
                 retries: int = 3, backoff: float = 1.0, max_backoff: float = 30.0, workers: int = 8) -> None:
        self.url = (url or os.environ.get("SEAL_JUDGE_URL", "")).rstrip("/")
        self.model = model or os.environ.get("SEAL_JUDGE_MODEL", "")
        if not self.url or not self.model:
            raise JudgeError("the judge grader needs a URL and a model (--judge-url/--judge-model or "
                             "SEAL_JUDGE_URL/SEAL_JUDGE_MODEL)")
        self.api_key = resolve_key(self.url, api_key, what="judge", error=JudgeError)
        self._chat = ChatClient(self.url, self.api_key, what="judge", error=JudgeError, timeout=timeout,
                                retries=retries, backoff=backoff, max_backoff=max_backoff, workers=workers)
        self._cache: dict[tuple[str, str, str], bool] = {}

    def __repr__(self) -> str:
        return f"JudgeGrader(url={self.url!r}, model={self.model!r})"

    @staticmethod
    def _messages(q: str, p: str, g: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": _JUDGE_PROMPT.format(q=q, g=g, p=p)}]

    @staticmethod
    def _verdict(reply: str) -> bool:
        return reply.strip().lower().startswith("yes")

    def grade_many(self, questions, predictions, golds) -> list[bool]:
        triples = list(zip(questions, predictions, golds, strict=True))
        todo: list[tuple[str, str, str]] = []
        for key in dict.fromkeys(triples):  # unique, in order
            if key in self._cache:
                continue
            if not key[1].strip():
                self._cache[key] = False  # an empty answer is wrong, no need to ask
            else:
                todo.append(key)

        def keep(i: int, reply: str) -> None:  # each verdict is cached as it arrives, even if another fails
            self._cache[todo[i]] = self._verdict(reply)

        self._chat.complete_many([self._messages(*key) for key in todo], on_result=keep, model=self.model,
                                 temperature=0, max_tokens=3)
        return [self._cache[key] for key in triples]


def make_grader(kind: str = "lexical", *, f1_threshold: float = 0.5, url: str = "", model: str = "",
                api_key: str = "") -> Grader:
    """``api_key`` is the judge's key (``--judge-key``); "" = env SEAL_JUDGE_KEY, or OPENAI_API_KEY for OpenAI."""
    if kind == "lexical":
        return LexicalGrader(f1_threshold)
    if kind == "judge":
        return JudgeGrader(url=url, model=model, api_key=api_key)
    raise ValueError(f"unknown grader {kind!r}")
