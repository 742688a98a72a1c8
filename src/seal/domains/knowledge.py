"""Knowledge incorporation: passages in, self-edits (implications, rewrite, self-QA) out, questions to score.

Data is SEAL's SQuAD format, ``[{title, context, questions: [{question, answer}]}]``. Each usable line of a
self-edit becomes one training sequence prefixed with the title; the passage itself is added too (as in the
paper). Questions are asked as ``Topic: {title}\\n{question}`` *without* the passage::

    passages = load_passages("../shared/data/squad/squad_dev.json")
    dom = KnowledgeDomain()
    prompt = dom.self_edit_prompt(lm, passages[0], "implications")

Your own self-edit prompt and parse rule come from a template file (``seal.domains.templates``)::

    dom = KnowledgeDomain(template=load_template("examples/templates/study_notes.toml"))
    prompt = dom.self_edit_prompt(lm, passages[0], "template")
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seal.config import KNOWLEDGE_FORMATS as FORMATS  # noqa: E402  (``passage``: train on the passage alone)
from seal.domains.base import Domain, ParsedSelfEdit, SelfEditError
from seal.jobs import Example

if TYPE_CHECKING:
    from seal.domains.templates import Template

_PROMPTS = {
    "implications": (
        "Read this passage carefully.\n\nTitle: {title}\n{context}\n\n"
        "Now write a list of implications of the passage: facts it states or that follow from it. "
        "Write each as one complete sentence that names its subject (no pronouns like 'it' or 'they'), "
        "one per line."
    ),
    "rewrite": (
        "Rewrite the following passage in your own words. Keep every name, number and date, and write "
        "each fact as its own sentence on its own line.\n\nTitle: {title}\n{context}"
    ),
    "self-qa": (
        "Read the passage, then write question and answer pairs that cover its facts. Write each pair as a "
        "line 'Q: <question>' followed by a line 'A: <answer>'.\n\nTitle: {title}\n{context}"
    ),
}

_QUESTION_PROMPT = "Topic: {title}\n{question}\nAnswer briefly."


@dataclass(frozen=True)
class QA:
    question: str
    answer: str


@dataclass(frozen=True)
class Passage:
    title: str
    context: str
    questions: tuple[QA, ...] = ()

    @property
    def id(self) -> str:
        return hashlib.sha256(f"{self.title}\n{self.context}".encode()).hexdigest()[:16]


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file and the entry."""


def parse_passages(data: object, source: str = "data") -> list[Passage]:
    if not isinstance(data, list):
        raise DataError(f"{source}: expected a JSON list of passages, got {type(data).__name__}")
    out = []
    for i, item in enumerate(data):
        where = f"{source}: passage {i}"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected an object, got {type(item).__name__}")
        for key in ("title", "context"):
            if not isinstance(item.get(key), str):
                raise DataError(f"{where}: missing or non-string {key!r}")
        if not item["context"].strip():
            raise DataError(f"{where}: empty context")
        qs = item.get("questions", [])
        if not isinstance(qs, list):
            raise DataError(f"{where}: 'questions' must be a list")
        qas = []
        for j, q in enumerate(qs):
            if not (isinstance(q, dict) and isinstance(q.get("question"), str) and isinstance(q.get("answer"), str)):
                raise DataError(f"{where}, question {j}: needs string 'question' and 'answer'")
            qas.append(QA(q["question"].strip(), q["answer"].strip()))
        out.append(Passage(item["title"].strip(), item["context"].strip(), tuple(qas)))
    return out


def load_passages(path: str | Path) -> list[Passage]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    return parse_passages(data, str(path))


_BULLET = re.compile(r"^\s*(?:[-*\u2022]+|\(?\d{1,3}[.)](?=\s)|\(?[a-zA-Z][.)](?=\s))\s*")
_PREAMBLE = re.compile(r"^(here (are|is)|sure|certainly|implications|the following|below (are|is))\b", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
_NUMBERED = re.compile(r"^\s*(?:[-*\u2022]+|\(?\d{1,3}[.)])\s+")
_QA = re.compile(r"^\s*(?:\*\*)?(q|question|a|answer)\s*\d*\s*[:.)](?:\*\*)?\s*(.*)$", re.I)


def clean_line(line: str) -> str:
    line = _BULLET.sub("", line.strip()).strip().strip("*").strip()
    return re.sub(r"\s+", " ", line)


def _degenerate(line: str) -> str | None:
    words = line.split()
    if len(words) < 4:
        return "too short"
    if not re.search(r"[A-Za-z]", line):
        return "no letters"
    if len(words) >= 8 and len({w.lower() for w in words}) / len(words) < 0.4:
        return "repetitive"
    return None


def line_problem(item: str) -> str | None:
    """Why a candidate line of a knowledge self-edit is not kept (a preamble, degenerate), or None."""
    if not item.startswith("Question: ") and (_PREAMBLE.match(item) or item.endswith(":")):
        return "preamble"
    return _degenerate(item)


def select_lines(candidates: list[str], context: str, problem, max_sequences: int, fmt: str,
                 dropped: list[tuple[str, str]]) -> list[str]:
    """The usable candidate lines of a self-edit, in order: without ``problem(line)``s, duplicates of each
    other or of the context, at most ``max_sequences``; what is dropped goes to ``dropped`` with its reason.
    Raises SelfEditError when none is left."""
    seen, items = {_key(context)}, []
    for item in candidates:
        reason = problem(item) or ("duplicate" if _key(item) in seen else None)
        if reason:
            dropped.append((item, reason))
            continue
        seen.add(_key(item))
        items.append(item)
    if not items:
        raise SelfEditError(f"no usable {fmt} lines in the self-edit ({len(dropped)} dropped)")
    return items[:max_sequences]


def _qa_pairs(lines: list[str]) -> list[str]:
    """'Q: ...'/'A: ...' pairs; a label alone on its line takes the next unlabelled line as its text."""
    pairs: list[str] = []
    question: str | None = None
    pending: str | None = None  # a label waiting for its text on the next line
    for raw in lines:
        m = _QA.match(_NUMBERED.sub("", raw))
        if m:
            kind, text = m.group(1).lower()[0], m.group(2).strip()
            pending = None if text else kind
        elif pending:
            kind, text, pending = pending, clean_line(raw), None
        else:
            continue
        if kind == "q":
            question = text or None
        elif question and text:
            pairs.append(f"Question: {question}\nAnswer: {text}")
            question = None
    return pairs


class KnowledgeDomain(Domain):
    name = "knowledge"
    formats = FORMATS
    default_format = "rewrite"
    """The format when none is named (``seal train --domain knowledge``); ``from_config`` takes the config's."""

    def __init__(self, include_passage: bool = True, max_sequences: int = 32,
                 template: Template | None = None) -> None:
        self.include_passage = include_passage
        self.max_sequences = max_sequences
        self.template = template
        if template is not None:  # a user's own self-edit format (seal.domains.templates)
            self.formats = FORMATS + template.format_names
            self.default_format = "template"

    @classmethod
    def from_config(cls, cfg, template: Template | None = None) -> KnowledgeDomain:
        dom = cls(cfg.self_edit.include_passage, cfg.self_edit.max_sequences, template)
        if template is None and cfg.self_edit.format != "passage":
            dom.default_format = cfg.self_edit.format
        return dom

    def _templated(self, fmt: str) -> bool:
        return self.template is not None and fmt in self.template.format_names

    def load_contexts(self, path: str | Path) -> list[Passage]:
        return load_passages(path)

    def context_id(self, ctx: Passage) -> str:
        return ctx.id

    def self_edit_prompt(self, lm, ctx: Passage, fmt: str) -> str:
        if self._templated(fmt):
            return lm.chat(self.template.render(ctx.title, ctx.context))
        if fmt == "template":
            raise ValueError("format 'template' needs a template file (KnowledgeDomain(template=...), --template)")
        return lm.chat(self_edit_instruction(ctx, fmt))

    def parse_self_edit(self, ctx: Passage, text: str, fmt: str) -> ParsedSelfEdit:
        dropped: list[tuple[str, str]] = []
        items: list[str] = []
        # a template parses as "lines" (one sequence per line) or "qa" (exactly like self-qa)
        templated = self._templated(fmt)
        qa = fmt == "self-qa" or (templated and self.template.parse == "qa")
        if fmt != "passage":
            lines = [ln for ln in text.splitlines() if ln.strip()]
            candidates = _qa_pairs(lines) if qa else []
            if templated and not qa:
                candidates = [s for s in map(clean_line, lines) if s]
            elif not candidates:  # also the fallback when a self-QA edit has no Q/A structure
                # one sequence per sentence: a degenerate tail no longer costs the good sentences before it
                candidates = [s for ln in lines for s in _SENTENCE.split(clean_line(ln)) if s]
            items = select_lines(candidates, ctx.context, line_problem, self.max_sequences, fmt, dropped)
        seqs = [f"{ctx.title}\n{item}" for item in items]
        if self.include_passage or fmt == "passage":
            seqs.append(f"{ctx.title}\n{ctx.context}")
        return ParsedSelfEdit([Example("", s) for s in seqs], dropped, {"n_lines": len(items)})

    def task_prompts(self, lm, ctx: Passage) -> list[str]:
        return [lm.chat(_QUESTION_PROMPT.format(title=ctx.title, question=q.question)) for q in ctx.questions]

    def score(self, ctx: Passage, answers: list[str], grader) -> tuple[float, list[bool]]:
        return qa_score(ctx, answers, grader)

    def task_targets(self, ctx: Passage) -> list[str]:
        return [q.answer for q in ctx.questions]


def qa_score(ctx: Passage, answers: list[str], grader) -> tuple[float, list[bool]]:
    """Accuracy of ``answers`` to ``ctx``'s questions by ``grader`` (0 for a context without questions)."""
    if not ctx.questions:
        return 0.0, []
    verdicts = grader.grade_many([q.question for q in ctx.questions], answers, [q.answer for q in ctx.questions])
    return sum(verdicts) / len(verdicts), verdicts


def self_edit_instruction(ctx: Passage, fmt: str) -> str:
    """The user message asking for a self-edit of format ``fmt`` (before any chat template)."""
    if fmt not in _PROMPTS:
        raise ValueError(f"format {fmt!r} has no self-edit prompt (choose from {', '.join(_PROMPTS)})")
    return _PROMPTS[fmt].format(title=ctx.title, context=ctx.context)


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()
