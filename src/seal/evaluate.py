"""The paper's single-passage knowledge protocol: per passage, a fresh adapter per method, questions without
the passage, accuracy per method.

Methods: ``base`` (no update), ``passage`` (train on the passage only), ``implications``, ``rewrite``,
``self-qa`` (the model's own self-edit of that format, plus the passage), and ``policy`` (implications written
by a ReST-EM-trained policy adapter, see ``rest_em.py``). All methods of ``eval.passages_per_pass`` passages
train together (one adapter slot each per passage) and answer in one batched generation::

    seal = Seal.load(cfg, slots=4)
    result = evaluate_knowledge(seal, passages[:10], ["base", "passage", "implications"])
    print(markdown_table(result))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seal.domains.base import SelfEditError
from seal.domains.knowledge import KnowledgeDomain, Passage
from seal.engine import Seal
from seal.inner_loop import TrainJob
from seal.io import append_jsonl

BASELINE_METHODS = ("base", "passage", "implications", "rewrite", "self-qa")
Writer = Callable[[Passage], str]
"""An external self-edit writer (e.g. a teacher model): passage -> self-edit text (implications)."""


@dataclass
class MethodStats:
    correct: int = 0
    n_questions: int = 0
    train_s: float = 0.0
    eval_s: float = 0.0
    write_s: float = 0.0
    edits: int = 0
    failed_edits: int = 0

    def as_dict(self) -> dict[str, Any]:
        n_edits = max(self.edits, 1)
        return {
            "accuracy": self.correct / self.n_questions if self.n_questions else 0.0,
            "n_questions": self.n_questions,
            "s_per_edit": (self.train_s + self.eval_s) / n_edits if self.edits else 0.0,
            "s_write_per_edit": self.write_s / n_edits if self.edits else 0.0,
            "edits": self.edits,
            "failed_edits": self.failed_edits,
        }


@dataclass
class KnowledgeResult:
    methods: dict[str, MethodStats] = field(default_factory=dict)
    passages: int = 0
    wall_s: float = 0.0

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {m: s.as_dict() for m, s in self.methods.items()}


def _setup(seal: Seal, methods: list[str], policies: dict[str, int], writers: dict[str, Writer]):
    """Validate the methods; the domain, method -> self-edit format, trained methods, their slots, a result."""
    known = BASELINE_METHODS + tuple(policies) + tuple(writers)
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(f"unknown method(s): {', '.join(unknown)} (choose from {', '.join(known)}; "
                         "'policy' needs --policy RUN_DIR, 'teacher' needs --teacher-url)")
    dom = KnowledgeDomain(seal.cfg.self_edit.include_passage, seal.cfg.self_edit.max_sequences)

    def fmt_of(method: str) -> str:
        return "implications" if method in policies or method in writers else method

    trained = [m for m in methods if m != "base"]
    first_free = max(policies.values(), default=-1) + 1
    slots = {m: first_free + i for i, m in enumerate(trained)}
    seal.bank.ensure_slots(first_free + len(trained))
    return dom, fmt_of, trained, slots, KnowledgeResult({m: MethodStats() for m in methods})


def evaluate_knowledge(seal: Seal, passages: list[Passage], methods: list[str], *, seed: int = 0,
                       policies: dict[str, int] | None = None, writers: dict[str, Writer] | None = None,
                       log_path: str | Path | None = None,
                       progress: Callable[[int, int], None] | None = None) -> KnowledgeResult:
    """Run the single-passage protocol; per-passage details go to ``log_path`` (JSONL) when given.

    ``policies`` maps extra method names to policy adapter slots (their self-edits are implications written
    with that adapter); ``writers`` maps extra method names to external writers (e.g. a teacher model).
    """
    policies, writers = policies or {}, writers or {}
    dom, fmt_of, trained, slots, result = _setup(seal, methods, policies, writers)
    per_pass = max(1, min(seal.cfg.eval.passages_per_pass, len(passages)))
    if trained:
        seal.bank.ensure_slots(max(slots.values()) + 1 + (per_pass - 1) * len(trained))
    start = time.perf_counter()
    indexed = list(enumerate(passages))
    for first in range(0, len(indexed), per_pass):
        chunk = indexed[first:first + per_pass]
        bases = seal.baselines(dom, [p for _, p in chunk])
        records: list[dict[str, Any]] = []
        jobs, ok, write_s = [], [], {}
        for j, (pi, passage) in enumerate(chunk):
            base = bases[j]
            record: dict[str, Any] = {"passage": passage.id, "title": passage.title,
                                      "base": {"accuracy": base.accuracy, "answers": base.answers}}
            records.append(record)
            if "base" in methods:
                _add(result.methods["base"], base.verdicts)
            # 1. self-edits for every generated method, in one batched call per writer (base model or policy)
            t0 = time.perf_counter()
            texts = _write_self_edits(seal, dom, passage, trained, policies, writers, seed * 100_003 + pi, fmt_of)
            write_s[j] = (time.perf_counter() - t0) / max(len(texts), 1)
            # 2. inner loop: a fresh adapter per (passage, method), reset in place from the same seed; the
            # passages of a pass train together and answer in one batched generation
            for m in trained:
                try:
                    parsed = dom.parse_self_edit(passage, texts.get(m, ""), fmt_of(m))
                except SelfEditError as exc:
                    result.methods[m].failed_edits += 1
                    record[m] = {"error": str(exc), "self_edit": texts.get(m, "")}
                    _add(result.methods[m], base.verdicts)  # an unusable edit leaves the model unchanged
                    continue
                slot = slots[m] + j * len(trained)
                jobs.append(TrainJob(slot=slot, examples=parsed.examples, seed=seed))
                ok.append((j, m, slot, texts.get(m, ""), m in texts))
        train_results = seal.train(jobs) if jobs else []
        t1 = time.perf_counter()
        scores = seal.evaluate(dom, [(chunk[j][1], slot) for j, _, slot, _, _ in ok])
        eval_s = time.perf_counter() - t1
        for (j, m, _, text, written), tr, sc in zip(ok, train_results, scores, strict=True):
            stats = result.methods[m]
            _add(stats, bases[j].verdicts if tr.failed else sc.verdicts)
            stats.failed_edits += bool(tr.failed)
            stats.edits += 1
            stats.train_s += tr.seconds
            stats.eval_s += eval_s / len(ok)
            stats.write_s += write_s[j] if written else 0.0
            records[j][m] = {"accuracy": sc.accuracy, "answers": sc.answers, "self_edit": text,
                             "train_steps": tr.steps, "final_loss": tr.final_loss, "failed": tr.failed}
        for (pi, _), record in zip(chunk, records, strict=True):
            result.passages += 1
            if log_path is not None:
                append_jsonl(log_path, record)
            if progress is not None:
                progress(pi + 1, len(passages))
    result.wall_s = time.perf_counter() - start
    return result


def _write_self_edits(seal: Seal, dom: KnowledgeDomain, passage: Passage, trained: list[str],
                      policies: dict[str, int], writers: dict[str, Writer], seed: int, fmt_of) -> dict[str, str]:
    texts: dict[str, str] = {}
    groups = [(None, [m for m in trained if m in ("implications", "rewrite", "self-qa")])]
    groups += [(slot, [m]) for m, slot in policies.items() if m in trained]
    for writer_slot, group in groups:
        if group:
            out = seal.write_self_edits(dom, [(passage, fmt_of(m)) for m in group], n=1, seed=seed,
                                        policy_slot=writer_slot)
            texts.update({m: o[0] for m, o in zip(group, out, strict=True)})
    for m, writer in writers.items():
        if m in trained:
            texts[m] = writer(passage)
    return texts


def evaluate_knowledge_cpt(seal: Seal, passages: list[Passage], methods: list[str], *, seed: int = 0,
                           policies: dict[str, int] | None = None, writers: dict[str, Writer] | None = None,
                           progress: Callable[[int, int], None] | None = None) -> KnowledgeResult:
    """The multi-passage setting (continued pretraining): one adapter per method trained on the self-edits of
    all passages at once, then evaluated on all their questions."""
    policies, writers = policies or {}, writers or {}
    dom, fmt_of, trained, slots, result = _setup(seal, methods, policies, writers)
    start = time.perf_counter()
    examples: dict[str, list] = {m: [] for m in trained}
    for pi, passage in enumerate(passages):
        t0 = time.perf_counter()
        texts = _write_self_edits(seal, dom, passage, trained, policies, writers, seed * 100_003 + pi, fmt_of)
        for m in trained:
            result.methods[m].write_s += (time.perf_counter() - t0) / max(len(texts), 1) if m in texts else 0.0
            try:
                examples[m] += dom.parse_self_edit(passage, texts.get(m, ""), fmt_of(m)).examples
            except SelfEditError:
                result.methods[m].failed_edits += 1
        if progress is not None:
            progress(pi + 1, 2 * len(passages))
    base_scores = seal.baselines(dom, passages)
    if "base" in methods:
        for sc in base_scores:
            _add(result.methods["base"], sc.verdicts)
    ok = [m for m in trained if examples[m]]
    for m in set(trained) - set(ok):  # no usable self-edit at all: the model stays as it was
        for sc in base_scores:
            _add(result.methods[m], sc.verdicts)
    train_results = seal.train([TrainJob(slots[m], examples[m], seed=seed) for m in ok])
    t1 = time.perf_counter()
    scores = seal.evaluate(dom, [(p, slots[m]) for m in ok for p in passages])
    eval_s = time.perf_counter() - t1
    for i, (m, tr) in enumerate(zip(ok, train_results, strict=True)):
        stats = result.methods[m]
        for sc in scores[i * len(passages):(i + 1) * len(passages)]:
            _add(stats, sc.verdicts if not tr.failed else [False] * len(sc.verdicts))
        stats.edits, stats.train_s, stats.eval_s = 1, tr.seconds, eval_s / len(ok)
    if progress is not None:
        progress(2 * len(passages), 2 * len(passages))
    result.passages = len(passages)
    result.wall_s = time.perf_counter() - start
    return result


def _add(stats: MethodStats, verdicts: list[bool]) -> None:
    stats.correct += sum(verdicts)
    stats.n_questions += len(verdicts)


def markdown_table(result: KnowledgeResult) -> str:
    lines = ["| method | accuracy | questions | s / self-edit (train+eval) | failed edits |",
             "|---|---:|---:|---:|---:|"]
    for m, d in result.as_dict().items():
        s = f"{d['s_per_edit']:.1f}" if d["edits"] else "-"
        lines.append(f"| {m} | {100 * d['accuracy']:.1f} % | {d['n_questions']} | {s} | {d['failed_edits']} |")
    return "\n".join(lines)
