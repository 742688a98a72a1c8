"""Answer grading: offline lexical (SQuAD normalisation, containment or token F1) and an LLM judge.

The paper grades with GPT-4.1 asked whether an answer is consistent with the gold answer. seal's default is
offline and deterministic; the judge works with any OpenAI-compatible endpoint::

    grade = LexicalGrader(f1_threshold=0.5)
    grade.grade_many(["who?"], ["Marie Curie, in 1903"], ["Marie Curie"])   # -> [True]
    judge = JudgeGrader(url="http://localhost:8000/v1", model="gpt-4.1", api_key="...")
"""

from __future__ import annotations

import json
import os
import re
import string
import urllib.error
import urllib.request
from collections import Counter
from typing import Protocol

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
    """LLM judge over an OpenAI-compatible ``/chat/completions`` endpoint; verdicts are cached in memory."""

    def __init__(self, url: str = "", model: str = "", api_key: str = "", timeout: float = 60.0) -> None:
        self.url = (url or os.environ.get("SEAL_JUDGE_URL", "")).rstrip("/")
        self.model = model or os.environ.get("SEAL_JUDGE_MODEL", "")
        self.api_key = api_key or os.environ.get("SEAL_JUDGE_KEY") or os.environ.get("OPENAI_API_KEY", "")
        self.timeout = timeout
        if not self.url or not self.model:
            raise JudgeError("the judge grader needs a URL and a model (--judge-url/--judge-model or "
                             "SEAL_JUDGE_URL/SEAL_JUDGE_MODEL)")
        self._cache: dict[tuple[str, str, str], bool] = {}

    def _ask(self, q: str, p: str, g: str) -> bool:
        body = {"model": self.model, "temperature": 0, "max_tokens": 3,
                "messages": [{"role": "user", "content": _JUDGE_PROMPT.format(q=q, g=g, p=p)}]}
        req = urllib.request.Request(f"{self.url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self.api_key}"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                reply = json.load(resp)["choices"][0]["message"]["content"]
        except (urllib.error.URLError, KeyError, IndexError, json.JSONDecodeError, TimeoutError) as exc:
            raise JudgeError(f"judge request to {self.url} failed: {exc}") from exc
        return reply.strip().lower().startswith("yes")

    def grade_many(self, questions, predictions, golds) -> list[bool]:
        out = []
        for q, p, g in zip(questions, predictions, golds, strict=True):
            key = (q, p, g)
            if key not in self._cache:
                self._cache[key] = False if not p.strip() else self._ask(q, p, g)
            out.append(self._cache[key])
        return out


def make_grader(kind: str = "lexical", *, f1_threshold: float = 0.5, url: str = "", model: str = "") -> Grader:
    if kind == "lexical":
        return LexicalGrader(f1_threshold)
    if kind == "judge":
        return JudgeGrader(url=url, model=model)
    raise ValueError(f"unknown grader {kind!r}")
