"""The catastrophic-forgetting experiment (the paper's Figure 6): the retention matrix of a learned sequence.

:func:`evaluate_forgetting` learns N passages one after another with a strategy (optionally guarded) and,
after each step, evaluates every passage seen so far (the single-passage grader, questions without the
passage): ``matrix[i][j]`` is the accuracy on passage j after step i (``None`` for j > i). :func:`summarize`
reduces it to ``diagonal_mean``, ``final_mean``, ``forgetting`` and ``base_mean``, each with a 95 % bootstrap
interval over passages (``forgetting`` paired per passage: right after learning it minus after all N). The
summary also gives the answer latency (the last evaluation's seconds per question, and the median seconds to
answer one question alone) and, for ``routed``, the routing accuracy (the share of questions routed to their
own passage's adapter). The heatmap is :func:`seal.report.retention_heatmap`::

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
from seal.continual.learner import DEFAULT_REPLAY_RATIO, Learner, check_strategy, train_seed
from seal.continual.merge import zero_slot
from seal.continual.probes import write_probes
from seal.continual.routed import AdapterCache, answer_routed, train_adapter
from seal.continual.router import RouteEntry, Router
from seal.domains.base import SelfEditError
from seal.domains.knowledge import KnowledgeDomain, Passage
from seal.engine import Seal
from seal.stats import bootstrap_ci

LATENCY_QUESTIONS = 8
"""Questions answered one at a time after the last step, for the single-question latency."""


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _ci(xs: Sequence[float]) -> list[float] | None:
    return list(bootstrap_ci(xs)) if xs else None


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
    latency: dict[str, Any] = field(default_factory=dict)
    routing: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {**summarize(self.matrix, self.base), **self.latency, **self.routing}

    def as_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "format": self.fmt, "guard": self.guard,
                "guard_threshold": self.guard_threshold, "replay_ratio": self.replay_ratio, "seed": self.seed,
                "passages": self.passages, "base": self.base, "matrix": self.matrix, "summary": self.summary(),
                "steps": self.steps, "wall_s": self.wall_s}


def summarize(matrix: Sequence[Sequence[float | None]], base: Sequence[float]) -> dict[str, Any]:
    """``diagonal_mean``: mean accuracy on each passage right after learning it; ``final_mean``: on all passages
    after the last step; ``forgetting`` = their difference; ``base_mean``: the unedited model's; each with a
    95 % bootstrap interval over passages (``*_ci95``; forgetting's from the per-passage differences)."""
    n = len(matrix)
    diags = [matrix[i][i] for i in range(n) if matrix[i][i] is not None]
    finals = [v for v in matrix[-1] if v is not None] if n else []
    diag, final = _mean(diags), _mean(finals)
    per = [matrix[j][j] - matrix[-1][j] for j in range(n) if matrix[j][j] is not None and matrix[-1][j] is not None]
    return {"diagonal_mean": diag, "final_mean": final,
            "forgetting": None if diag is None or final is None else diag - final, "base_mean": _mean(list(base)),
            "diagonal_ci95": _ci(diags), "final_ci95": _ci(finals), "forgetting_ci95": _ci(per),
            "base_ci95": _ci(list(base)), "n_passages": n}


class _Routed:
    """The ``routed`` strategy in memory: one adapter per learned passage (CPU tensors), an LRU of them in the
    bank (slots 2..), and a router over the passages learned so far."""

    def __init__(self, seal: Seal, dom: KnowledgeDomain, cache_size: int, threshold: float) -> None:
        self.seal, self.dom, self.threshold = seal, dom, threshold
        self.adapters: dict[int, dict] = {}
        self.entries: list[RouteEntry] = []
        self.cache = AdapterCache(seal, range(2, 2 + cache_size), self.adapters.__getitem__)
        self.correct = self.total = 0
        self.router: Router | None = None

    def learn(self, i: int, passage: Passage, seqs: list[str], seed: int, progress) -> Any:
        result, tensors = train_adapter(self.seal, 0, seqs, train_seed(seed, i + 1), progress=progress)
        if not result.failed:
            self.adapters[i] = tensors
            self.entries.append(RouteEntry(i, passage.title, passage.context, tuple(seqs)))
            self.router = None  # re-indexed at the next answer
        return result

    def answer(self, passages: Sequence[Passage], record: bool = True) -> list[list[str]]:
        if self.router is None:
            self.router = Router(self.entries, self.threshold)
        router = self.router
        prompts, queries, owner = [], [], []
        for j, p in enumerate(passages):
            prompts += self.dom.task_prompts(self.seal.lm, p)
            queries += [f"Topic: {p.title}\n{q.question}" for q in p.questions]
            owner += [j] * len(p.questions)
        answers, decisions = answer_routed(self.seal, self.cache, router, prompts, queries, lambda k: k,
                                           max_new_tokens=self.seal.cfg.eval.answer_tokens)
        if record:
            self.last = [d.key == j for d, j in zip(decisions, owner, strict=True)]
            self.correct += sum(self.last)
            self.total += len(self.last)
        out, k = [], 0
        for p in passages:
            out.append(answers[k:k + len(p.questions)])
            k += len(p.questions)
        return out


def _scores(seal: Seal, dom: KnowledgeDomain, passages: Sequence[Passage], answers: list[list[str]]) -> list:
    return [dom.score(p, a, seal.grader)[0] for p, a in zip(passages, answers, strict=True)]


def evaluate_forgetting(seal: Seal, passages: list[Passage], strategy: str = "merge", fmt: str = "implications", *,
                        guard: bool = False, guard_threshold: float = DEFAULT_GUARD_THRESHOLD,
                        replay_ratio: float = DEFAULT_REPLAY_RATIO, seed: int = 0,
                        progress: Callable[[str, int, int], None] | None = None) -> ForgettingResult:
    """Learn ``passages`` one after another with ``strategy``; after each step evaluate every passage seen so far.

    Runs in memory on slot 0 (slot 1 backs up the adapter strategies' previous state); ``merge`` folds into
    the model's base weights for good (load a fresh model afterwards). ``routed`` trains a fresh adapter per
    passage in slot 0, keeps them in memory and answers each question through the adapter the router picks
    (``routing.cache`` of them in the bank at once, threshold ``routing.threshold``; the guard does not apply).
    All self-edits (and the guard's probes) are written by the *unedited* model before the first update
    (batched), so every strategy trains on the same data. An unusable self-edit falls back to the passage alone
    (recorded as ``fallback``)."""
    check_strategy(strategy)
    if guard and strategy == "routed":
        raise ValueError("the forgetting guard does not apply to the routed strategy (it changes no earlier adapter)")
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
    routed = _Routed(seal, dom, seal.cfg.routing.cache, seal.cfg.routing.threshold) if strategy == "routed" else None
    learner = None if routed else Learner(seal, strategy, slot=slot, backup_slot=1, replay_ratio=replay_ratio,
                                          keep_pristine=False)
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

        def train_tick(d: int, t: int, i: int = i) -> None:
            tick(f"train {i + 1}/{n}", d, t)

        status, replayed, guard_info = "learned", 0, {}
        if routed:
            result = routed.learn(i, passage, seqs, seed, train_tick)
            status = "failed" if result.failed else status
        else:
            update, report = guarded_update(learner, seqs, seed=seed, probe_passages=probe_passages[:i], guard=guard,
                                            threshold=guard_threshold, progress=train_tick)
            result, replayed, guard_info = update.result, len(update.replayed), report.as_dict()
            if update.result.failed:
                learner.discard()
                status = "failed"
            elif report.accepted:
                learner.commit(key=i)
            else:
                status = "rejected"
        t1 = time.perf_counter()
        if routed:
            answers = routed.answer(passages[:i + 1])
        else:
            answers = [s.answers for s in seal.evaluate(dom, [(p, slot) for p in passages[:i + 1]])]
        accs = _scores(seal, dom, passages[:i + 1], answers)
        matrix.append(accs + [None] * (n - i - 1))
        step = {"step": i + 1, "status": status, "sequences": len(seqs), "replayed": replayed,
                "fallback": fallback, "final_loss": result.final_loss, "train_steps": result.steps,
                "failed": result.failed, "guard": guard_info,
                "train_s": round(t1 - t0, 2), "eval_s": round(time.perf_counter() - t1, 2),
                "questions": sum(len(p.questions) for p in passages[:i + 1]),
                "self_edit": text, "answers": answers}
        if routed:
            step["routed_own"] = sum(routed.last) / max(len(routed.last), 1)
        steps.append(step)
        tick("steps", i + 1, n)
    latency = _latency(seal, dom, passages, steps, routed, slot)
    routing = {}
    if routed:
        routing = {"routing_accuracy": routed.correct / max(routed.total, 1), "routing_questions": routed.total,
                   "routing_accuracy_final": steps[-1]["routed_own"] if steps else None,
                   "cache": routed.cache.stats()}
    info = [{"title": p.title, "id": p.id, "n_questions": len(p.questions)} for p in passages]
    for entry, pp in zip(info, probe_passages, strict=False):
        entry["probes"] = [[qa.question, qa.answer] for qa in pp.questions]
    return ForgettingResult(strategy, fmt, info, base, matrix, steps, guard, guard_threshold, replay_ratio, seed,
                            time.perf_counter() - start, latency, routing)


def _latency(seal: Seal, dom: KnowledgeDomain, passages: Sequence[Passage], steps: list[dict], routed,
             slot: int) -> dict[str, Any]:
    """The last evaluation's seconds per question, and the median seconds to answer one question alone (the
    first ``LATENCY_QUESTIONS`` questions of the sequence, each its own generation call; routing included)."""
    if not steps:
        return {}
    singles = [Passage(p.title, p.context, (q,)) for p in passages for q in p.questions][:LATENCY_QUESTIONS]
    times = []
    for one in singles:
        t = time.perf_counter()
        if routed:
            routed.answer([one], record=False)
        else:
            seal.evaluate(dom, [(one, slot)])
        times.append(time.perf_counter() - t)
    times.sort()
    return {"answer_s_per_question": steps[-1]["eval_s"] / max(steps[-1]["questions"], 1),
            "latency_s": times[len(times) // 2] if times else None, "latency_questions": len(times)}


__all__ = ["ForgettingResult", "summarize", "evaluate_forgetting"]
