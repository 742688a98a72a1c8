"""An example plug-in domain whose reward is a *style*, not accuracy: answer briefly and cleanly.

Each context is a short invented topic (``examples/brevity_topics.json``) with a few practice questions and a
few held-out questions. The self-edit is the model's own example answers to the practice questions, one per
line, in the wanted style; each becomes a training example ``question -> answer``. The task is the held-out
questions (asked without the topic's description), and the score is the fraction of answers that are

* short: 1 to ``max_words`` words (12 by default),
* finished: they end with a full stop, and
* not an echo: they neither contain the question's text nor consist mostly (3/4 or more) of its words.

The score is computed from the answers alone (deterministic, no grader), so the reward of a self-edit is how
much training on it moved the model toward the style. Run it from the CLI::

    seal train --domain examples/brevity_domain.py:BrevityDomain --data examples/brevity_topics.json \\
        --rounds 1 --contexts 2 --samples 2 --out runs/brevity

or from Python::

    from seal.domains import load_domain
    dom = load_domain("examples/brevity_domain.py:BrevityDomain")
    topics = dom.load_contexts("examples/brevity_topics.json")

A topic file is a JSON list of ``{"id", "title", "about", "practice": [questions], "held_out": [questions]}``
(``id`` is optional: it defaults to a slug of the title).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from seal.domains.base import Domain, ParsedSelfEdit, SelfEditError
from seal.jobs import Example

_NUMBER = re.compile(r"^\s*(?:(\d{1,2})\s*[.):](?=\s)|[-*\u2022])\s*")
_LABEL = re.compile(r"^\s*(?:a|answer)\s*\d*\s*[:.)]\s*", re.I)
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class Topic:
    id: str
    title: str
    about: str
    practice: tuple[str, ...]
    held_out: tuple[str, ...]


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _slug(text: str) -> str:
    return "-".join(_words(text)) or "topic"


def load_topics(path: str | Path) -> list[Topic]:
    """The topics in a JSON file; a ValueError naming the file and the entry when it is malformed."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"topic file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a non-empty JSON list of topics")
    topics, seen = [], set()
    for i, item in enumerate(data):
        where = f"{path}: topic {i}"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected an object")
        for key in ("title", "about"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise ValueError(f"{where}: missing or empty {key!r}")
        lists = {}
        for key in ("practice", "held_out"):
            qs = item.get(key)
            if not isinstance(qs, list) or not qs or not all(isinstance(q, str) and q.strip() for q in qs):
                raise ValueError(f"{where}: {key!r} must be a non-empty list of questions")
            lists[key] = tuple(q.strip() for q in qs)
        tid = item.get("id", _slug(item["title"]))
        if not isinstance(tid, str) or not tid.strip() or tid in seen:
            raise ValueError(f"{where}: 'id' must be a unique non-empty string (got {tid!r})")
        seen.add(tid)
        topics.append(Topic(tid.strip(), item["title"].strip(), item["about"].strip(), lists["practice"],
                            lists["held_out"]))
    return topics


class BrevityDomain(Domain):
    name = "brevity"
    formats = ("answers",)
    default_format = "answers"

    def __init__(self, max_words: int = 12) -> None:
        if max_words < 1:
            raise ValueError("max_words must be >= 1")
        self.max_words = max_words

    # ------------------------------------------------------------------ data
    def load_contexts(self, path: str | Path) -> list[Topic]:
        return load_topics(path)

    def context_id(self, ctx: Topic) -> str:
        return ctx.id

    # ------------------------------------------------------------------ self-edits
    def self_edit_prompt(self, lm, ctx: Topic, fmt: str) -> str:
        questions = "\n".join(f"{i}. {q}" for i, q in enumerate(ctx.practice, 1))
        return lm.chat(
            f"Topic: {ctx.title}\n{ctx.about}\n\n"
            f"Answer each question below in one short sentence of at most {self.max_words} words that ends "
            "with a full stop. Do not repeat the question. Write one answer per line, numbered like the "
            f"questions, and nothing else.\n\n{questions}")

    def question_prompt(self, ctx: Topic, question: str) -> str:
        """The prompt of one question, the same in training and in the task (plain text, no chat template:
        ``parse_self_edit`` has no model to apply one)."""
        return f"Topic: {ctx.title}\nQ: {question}\nA:"

    def parse_self_edit(self, ctx: Topic, text: str, fmt: str) -> ParsedSelfEdit:
        """One example per answer line: a line numbered ``k.`` answers practice question k; when no line is
        numbered, the lines answer the questions in order. Headings (lines ending with ':'), unnumbered lines
        among numbered ones, extra lines and repeated answers are dropped; answers are not filtered by style
        (the reward judges that)."""
        answers: dict[int, str] = {}
        dropped: list[tuple[str, str]] = []
        seen: set[str] = set()
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        numbered = any((m := _NUMBER.match(ln)) and m.group(1) for ln in lines)
        for line in lines:
            m = _NUMBER.match(line)
            number = int(m.group(1)) if m and m.group(1) else None
            if numbered and number is None:  # commentary or a wrapped line between numbered answers
                dropped.append((line, "unnumbered"))
                continue
            answer = _LABEL.sub("", line[m.end():] if m else line).strip()
            if not answer or not _words(answer):
                dropped.append((line, "empty"))
                continue
            if answer.endswith(":"):
                dropped.append((line, "heading"))
                continue
            if number is not None:
                k = number - 1
                if not 0 <= k < len(ctx.practice):
                    dropped.append((line, "no such question"))
                    continue
            else:
                free = [i for i in range(len(ctx.practice)) if i not in answers]
                if not free:
                    dropped.append((line, "extra line"))
                    continue
                k = free[0]
            key = " ".join(_words(answer))
            if k in answers or key in seen:
                dropped.append((line, "duplicate"))
                continue
            answers[k] = answer
            seen.add(key)
        if not answers:
            raise SelfEditError(f"no usable answer lines in the self-edit ({len(dropped)} dropped)")
        examples = [Example(self.question_prompt(ctx, ctx.practice[k]), " " + answers[k]) for k in sorted(answers)]
        return ParsedSelfEdit(examples, dropped, {"n_answers": len(examples)})

    # ------------------------------------------------------------------ task + reward
    def task_prompts(self, lm, ctx: Topic) -> list[str]:
        return [self.question_prompt(ctx, q) for q in ctx.held_out]

    def verdict(self, question: str, answer: str) -> bool:
        """Whether one answer has the style: short, ends with a full stop, does not echo the question."""
        answer = answer.strip()
        words, q_words = _words(answer), _words(question)
        if not 1 <= len(answer.split()) <= self.max_words:
            return False
        if not answer.endswith(".") or answer.endswith(".."):
            return False
        if q_words and " ".join(q_words) in " ".join(words):
            return False
        q_set = set(q_words)
        return not (len(words) >= 3 and sum(w in q_set for w in words) / len(words) >= 0.75)

    def score(self, ctx: Topic, answers: list[str], grader) -> tuple[float, list[bool]]:
        if len(answers) != len(ctx.held_out):
            raise ValueError(f"expected {len(ctx.held_out)} answers, got {len(answers)}")
        verdicts = [self.verdict(q, a) for q, a in zip(ctx.held_out, answers, strict=True)]
        return (sum(verdicts) / len(verdicts) if verdicts else 0.0), verdicts
