"""The catastrophic-forgetting experiment (the paper's Figure 6): the retention matrix of a learned sequence.

:func:`evaluate_forgetting` learns N passages one after another with a strategy (optionally guarded) and,
after each step, evaluates every passage seen so far (the single-passage grader, questions without the
passage): ``matrix[i][j]`` is the accuracy on passage j after step i (``None`` for j > i). :func:`summarize`
reduces it to ``diagonal_mean``, ``final_mean``, ``forgetting`` and ``base_mean``; the heatmap is
:func:`seal.report.retention_heatmap`::

    seal = Seal.load(cfg, slots=2)
    result = evaluate_forgetting(seal, passages[:8], strategy="merge")
    print(result.summary())          # diagonal_mean, final_mean, forgetting, base_mean
    retention_heatmap(result.as_dict(), "forgetting.png")
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from seal.continual.guard import DEFAULT_GUARD_THRESHOLD, guarded_update
from seal.continual.learner import DEFAULT_REPLAY_RATIO, Learner, check_strategy
from seal.continual.merge import zero_slot
from seal.continual.probes import write_probes
from seal.domains.base import SelfEditError
from seal.domains.knowledge import KnowledgeDomain, Passage
from seal.engine import Seal


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


@dataclass
class ForgettingResult:
    strategy: str
    fmt: str
    passages: list[dict[str, Any]]
    base: list[float]
    matrix: list[list[float | None]]
    steps: list[dict[str, Any]] = field(default_factory=list)
    guard: bool = False
    guard_threshold: float = DEFAULT_GUARD_THRESHOLD
    replay_ratio: float = DEFAULT_REPLAY_RATIO
    seed: int = 0
    wall_s: float = 0.0

    def summary(self) -> dict[str, float | None]:
        return summarize(self.matrix, self.base)

    def as_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "format": self.fmt, "guard": self.guard,
                "guard_threshold": self.guard_threshold, "replay_ratio": self.replay_ratio, "seed": self.seed,
                "passages": self.passages, "base": self.base, "matrix": self.matrix, "summary": self.summary(),
                "steps": self.steps, "wall_s": self.wall_s}


def summarize(matrix: Sequence[Sequence[float | None]], base: Sequence[float]) -> dict[str, float | None]:
    """``diagonal_mean``: mean accuracy on each passage right after learning it; ``final_mean``: on all passages
    after the last step; ``forgetting`` = their difference; ``base_mean``: the unedited model's."""
    n = len(matrix)
    diag = _mean([matrix[i][i] for i in range(n) if matrix[i][i] is not None])
    final = _mean([v for v in matrix[-1] if v is not None]) if n else None
    return {"diagonal_mean": diag, "final_mean": final,
            "forgetting": None if diag is None or final is None else diag - final, "base_mean": _mean(list(base))}


def evaluate_forgetting(seal: Seal, passages: list[Passage], strategy: str = "merge", fmt: str = "implications", *,
                        guard: bool = False, guard_threshold: float = DEFAULT_GUARD_THRESHOLD,
                        replay_ratio: float = DEFAULT_REPLAY_RATIO, seed: int = 0,
                        progress: Callable[[str, int, int], None] | None = None) -> ForgettingResult:
    """Learn ``passages`` one after another with ``strategy``; after each step evaluate every passage seen so far.

    Runs in memory on slot 0 (slot 1 backs up the adapter strategies' previous state); ``merge`` folds into
    the model's base weights for good (load a fresh model afterwards). All self-edits (and the guard's probes)
    are written by the *unedited* model before the first update (batched), so every strategy trains
    on the same data. An unusable self-edit falls back to the passage alone (recorded as ``fallback``)."""
    check_strategy(strategy)
    start = time.perf_counter()
    tick = progress or (lambda stage, done, total: None)
    slot = 0
    seal.bank.ensure_slots(2)
    zero_slot(seal, slot)
    dom = KnowledgeDomain(seal.cfg.self_edit.include_passage, seal.cfg.self_edit.max_sequences)
    n = len(passages)
    base = [s.accuracy for s in seal.baselines(dom, passages)]
    items = [(p, fmt) for p in passages] if fmt != "passage" else []
    outs = seal.write_self_edits(dom, items, n=1, seed=seed,
                                 progress=lambda d, t: tick("write", d, t)) if items else []
    edits = [o[0] for o in outs] if fmt != "passage" else [""] * n
    probe_passages = [Passage(p.title, p.context, tuple(qas))
                      for p, qas in zip(passages, write_probes(seal, passages), strict=True)] if guard else []
    learner = Learner(seal, strategy, slot=slot, backup_slot=1, replay_ratio=replay_ratio, keep_pristine=False)
    matrix: list[list[float | None]] = []
    steps: list[dict[str, Any]] = []
    for i, (passage, text) in enumerate(zip(passages, edits, strict=True)):
        fallback = False
        try:
            parsed = dom.parse_self_edit(passage, text, fmt)
        except SelfEditError:
            parsed, fallback = dom.parse_self_edit(passage, "", "passage"), True
        seqs = [e.completion for e in parsed.examples]
        t0 = time.perf_counter()
        update, report = guarded_update(learner, seqs, seed=seed, probe_passages=probe_passages[:i], guard=guard,
                                        threshold=guard_threshold,
                                        progress=lambda d, t, i=i: tick(f"train {i + 1}/{n}", d, t))
        status = "learned"
        if update.result.failed:
            learner.discard()
            status = "failed"
        elif report.accepted:
            learner.commit(key=i)
        else:
            status = "rejected"
        t1 = time.perf_counter()
        scores = seal.evaluate(dom, [(p, slot) for p in passages[:i + 1]])
        matrix.append([s.accuracy for s in scores] + [None] * (n - i - 1))
        steps.append({"step": i + 1, "status": status, "sequences": len(seqs), "replayed": len(update.replayed),
                      "fallback": fallback, "final_loss": update.result.final_loss, "train_steps": update.result.steps,
                      "failed": update.result.failed, "guard": report.as_dict(),
                      "train_s": round(t1 - t0, 2), "eval_s": round(time.perf_counter() - t1, 2),
                      "self_edit": text, "answers": [s.answers for s in scores]})
        tick("steps", i + 1, n)
    info = [{"title": p.title, "id": p.id, "n_questions": len(p.questions)} for p in passages]
    for entry, pp in zip(info, probe_passages, strict=False):
        entry["probes"] = [[qa.question, qa.answer] for qa in pp.questions]
    return ForgettingResult(strategy, fmt, info, base, matrix, steps, guard, guard_threshold, replay_ratio, seed,
                            time.perf_counter() - start)


__all__ = ["ForgettingResult", "summarize", "evaluate_forgetting"]
