"""The paper's single-passage knowledge protocol: per passage, a fresh adapter per method, questions without
the passage, accuracy per method.

Methods: ``base`` (no update), ``passage`` (train on the passage only), ``implications``, ``rewrite``,
``self-qa`` (the model's own self-edit of that format, plus the passage), and ``policy`` (implications written
by a ReST-EM-trained policy adapter, see ``rest_em.py``). All methods of one passage train together (one
adapter slot each) and answer in one batched generation::

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


def _fmt_of(method: str) -> str:
    return "implications" if method == "policy" else method


def evaluate_knowledge(seal: Seal, passages: list[Passage], methods: list[str], *, seed: int = 0,
                       policy_slot: int | None = None, log_path: str | Path | None = None,
                       progress: Callable[[int, int], None] | None = None) -> KnowledgeResult:
    """Run the single-passage protocol; per-passage details go to ``log_path`` (JSONL) when given."""
    unknown = [m for m in methods if m not in BASELINE_METHODS + ("policy",)]
    if unknown:
        raise ValueError(f"unknown method(s): {', '.join(unknown)} (choose from "
                         f"{', '.join(BASELINE_METHODS + ('policy',))})")
    if "policy" in methods and policy_slot is None:
        raise ValueError("the 'policy' method needs a trained policy adapter (--policy RUN_DIR)")
    dom = KnowledgeDomain(seal.cfg.self_edit.include_passage, seal.cfg.self_edit.max_sequences)
    trained = [m for m in methods if m != "base"]
    first_free = 0 if policy_slot is None else policy_slot + 1
    slots = {m: first_free + i for i, m in enumerate(trained)}
    seal.bank.ensure_slots(first_free + len(trained))
    result = KnowledgeResult({m: MethodStats() for m in methods})
    start = time.perf_counter()
    for pi, passage in enumerate(passages):
        record: dict[str, Any] = {"passage": passage.id, "title": passage.title}
        base = seal.baseline(dom, passage)
        record["base"] = {"accuracy": base.accuracy, "answers": base.answers}
        if "base" in methods:
            _add(result.methods["base"], base.verdicts)
        # 1. self-edits for every generated method, in one batched call per writer (base model or policy)
        texts: dict[str, str] = {}
        t0 = time.perf_counter()
        for writer_slot, group in ((None, [m for m in trained if m not in ("passage", "policy")]),
                                   (policy_slot, [m for m in trained if m == "policy"])):
            if group:
                out = seal.write_self_edits(dom, [(passage, _fmt_of(m)) for m in group], n=1,
                                            seed=seed * 100_003 + pi, policy_slot=writer_slot)
                texts.update({m: o[0] for m, o in zip(group, out, strict=True)})
        write_s = time.perf_counter() - t0
        # 2. inner loop: a fresh adapter per method, reset in place from the same seed
        jobs, ok = [], []
        for m in trained:
            try:
                parsed = dom.parse_self_edit(passage, texts.get(m, ""), _fmt_of(m))
            except SelfEditError as exc:
                result.methods[m].failed_edits += 1
                record[m] = {"error": str(exc), "self_edit": texts.get(m, "")}
                _add(result.methods[m], base.verdicts)  # an unusable edit leaves the model unchanged
                continue
            jobs.append(TrainJob(slot=slots[m], examples=parsed.examples, seed=seed))
            ok.append(m)
        train_results = seal.train(jobs) if jobs else []
        t1 = time.perf_counter()
        scores = seal.evaluate(dom, [(passage, slots[m]) for m in ok])
        eval_s = time.perf_counter() - t1
        for m, tr, sc in zip(ok, train_results, scores, strict=True):
            stats = result.methods[m]
            if tr.failed:
                stats.failed_edits += 1
                sc_verdicts = base.verdicts
            else:
                sc_verdicts = sc.verdicts
            _add(stats, sc_verdicts)
            stats.edits += 1
            stats.train_s += tr.seconds
            stats.eval_s += eval_s / len(ok)
            stats.write_s += write_s / max(len(texts), 1) if m in texts else 0.0
            record[m] = {"accuracy": sc.accuracy, "answers": sc.answers, "self_edit": texts.get(m, ""),
                         "train_steps": tr.steps, "final_loss": tr.final_loss, "failed": tr.failed}
        result.passages += 1
        if log_path is not None:
            append_jsonl(log_path, record)
        if progress is not None:
            progress(pi + 1, len(passages))
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
