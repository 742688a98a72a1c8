"""The paper's knowledge protocols (Table 2): per passage, a fresh adapter per method, questions without the
passage, accuracy per method, over one or more seeds, with intervals.

Methods: ``base`` (no update: closed book), ``passage-in-prompt`` (no update, the passage in the prompt: open
book, what retrieval would give), ``passage`` (train on the passage only), ``implications``, ``rewrite``,
``self-qa`` (the model's own self-edit of that format, plus the passage), policies (self-edits written by a
ReST-EM-trained policy adapter, ``rest_em.py``, in the format it was trained on) and writers (e.g. a teacher
model). All methods of ``eval.passages_per_pass`` passages train together (one adapter slot each) and answer in
one batched call::

    seal = Seal.load(cfg, slots=4)
    result = evaluate_knowledge(seal, passages[:10], ["base", "passage", "implications"], seeds=[0, 1, 2])
    print(markdown_table(result))

Each seed samples new self-edits (``seed * 100_003 + passage index``; ``eval.self_edits`` of them per passage and
method, trained together on its one adapter) and trains from a new adapter init. Every
(passage, seed) is a *cell*: its accuracy is kept, and a method's accuracy is over all its questions. The 95 %
intervals resample whole passages (with all their seeds; ``seal.stats``); each method is also compared with
``passage`` and policies with the untrained model's row of their format, as paired differences over the same
cells. Costs are each method's own: the seconds of a shared training pass split by the tokens each adapter
trained on, of a shared answering pass by the tokens each generated, and of writing by the tokens each
self-edit took.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seal.domains.base import SelfEditError
from seal.domains.knowledge import KnowledgeDomain, Passage
from seal.engine import Seal
from seal.inner_loop import TrainJob
from seal.io import append_jsonl
from seal.knowledge_report import passage_row
from seal.stats import bootstrap_ci, paired_ci

BASELINE_METHODS = ("base", "passage-in-prompt", "passage", "implications", "rewrite", "self-qa")
UNTRAINED = ("base", "passage-in-prompt")
OPEN_BOOK_PROMPT = "{context}\n\nTopic: {title}\n{question}\nAnswer briefly."
Writer = Callable[[Passage], str]
"""An external self-edit writer (e.g. a teacher model): passage -> self-edit text (implications)."""


@dataclass
class MethodStats:
    cells: list[dict[str, Any]] = field(default_factory=list)
    """Per (passage, seed): ``passage``, ``seed``, ``correct``, ``n``."""
    train_s: float = 0.0
    eval_s: float = 0.0
    write_s: float = 0.0
    edits: int = 0
    failed_edits: int = 0
    train_tokens: int = 0
    answer_tokens: int = 0
    write_tokens: int = 0

    @property
    def correct(self) -> int:
        return sum(c["correct"] for c in self.cells)

    @property
    def n_questions(self) -> int:
        return sum(c["n"] for c in self.cells)

    def add(self, passage: str, seed: int, verdicts: list[bool]) -> None:
        self.cells.append({"passage": passage, "seed": seed, "correct": int(sum(verdicts)), "n": len(verdicts)})

    def _values(self):
        cells = [c for c in self.cells if c["n"]]
        return [c["correct"] / c["n"] for c in cells], [c["passage"] for c in cells], [c["n"] for c in cells]

    def as_dict(self) -> dict[str, Any]:
        n_edits = max(self.edits, 1)
        vals, clusters, weights = self._values()
        return {
            "accuracy": self.correct / self.n_questions if self.n_questions else 0.0,
            "ci95": list(bootstrap_ci(vals, clusters=clusters, weights=weights)),
            "n_questions": self.n_questions, "n_passages": len(set(clusters)),
            "seeds": sorted({c["seed"] for c in self.cells}),
            "s_per_edit": (self.train_s + self.eval_s) / n_edits if self.edits else 0.0,
            "s_train_per_edit": self.train_s / n_edits if self.edits else 0.0,
            "s_write_per_edit": self.write_s / n_edits if self.edits else 0.0,
            "train_tokens_per_edit": self.train_tokens / n_edits if self.edits else 0.0,
            "edits": self.edits, "failed_edits": self.failed_edits, "cells": self.cells,
        }


def compare(a: MethodStats, b: MethodStats) -> dict[str, Any] | None:
    """Accuracy of ``a`` minus ``b`` over the cells both have (same passage and seed), with its 95 % paired
    interval (passages resampled); None without common cells."""
    bk = {(c["passage"], c["seed"]): c for c in b.cells if c["n"]}
    pairs = [(c, bk[(c["passage"], c["seed"])]) for c in a.cells if c["n"] and (c["passage"], c["seed"]) in bk]
    if not pairs:
        return None
    xa = [c["correct"] / c["n"] for c, _ in pairs]
    xb = [d["correct"] / d["n"] for _, d in pairs]
    w = [c["n"] for c, _ in pairs]
    diff = sum((x - y) * n for x, y, n in zip(xa, xb, w, strict=True)) / sum(w)
    return {"diff": diff, "ci95": list(paired_ci(xa, xb, clusters=[c["passage"] for c, _ in pairs], weights=w)),
            "cells": len(pairs)}


@dataclass
class KnowledgeResult:
    methods: dict[str, MethodStats] = field(default_factory=dict)
    passages: int = 0
    wall_s: float = 0.0
    passage_ids: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    policies: dict[str, str] = field(default_factory=dict)
    """Policy row -> the self-edit format it writes: the untrained row it is compared with."""

    def comparisons(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        name = passage_row(self.methods)
        ref = self.methods.get(name) if name else None
        for m, st in self.methods.items():
            rows = {}
            if ref is not None and m != name and (c := compare(st, ref)) is not None:
                rows["passage"] = c
            if (own := self.policies.get(m)) in self.methods and (c := compare(st, self.methods[own])) is not None:
                rows[own] = c
            if rows:
                out[m] = rows
        return out

    def as_dict(self) -> dict[str, Any]:
        cmp = self.comparisons()
        methods = {}
        for m, st in self.methods.items():
            methods[m] = st.as_dict()
            methods[m]["vs"] = cmp.get(m, {})
        return {"methods": methods, "passages": self.passage_ids, "seeds": self.seeds, "wall_s": self.wall_s,
                "policies": dict(self.policies)}


def _setup(seal: Seal, methods: list[str], policies: dict[str, int], writers: dict[str, Writer],
           policy_formats: dict[str, str] | None = None):
    """Validate the methods; the domain, method -> self-edit format, trained methods, their slots, a result."""
    known = BASELINE_METHODS + tuple(policies) + tuple(writers)
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise ValueError(f"unknown method(s): {', '.join(unknown)} (choose from {', '.join(known)}; "
                         "'policy' needs --policy RUN_DIR, 'teacher' needs --teacher-url)")
    dom = KnowledgeDomain(seal.cfg.self_edit.include_passage, seal.cfg.self_edit.max_sequences)

    policy_formats = {m: (policy_formats or {}).get(m, "implications") for m in policies}

    def fmt_of(method: str) -> str:
        return policy_formats.get(method) or ("implications" if method in writers else method)

    trained = [m for m in methods if m not in UNTRAINED]
    first_free = max(policies.values(), default=-1) + 1
    slots = {m: first_free + i for i, m in enumerate(trained)}
    seal.bank.ensure_slots(first_free + len(trained))
    return dom, fmt_of, trained, slots, KnowledgeResult({m: MethodStats() for m in methods},
                                                         policies=policy_formats)


def open_book(seal: Seal, dom: KnowledgeDomain, passages: Sequence[Passage]) -> list[list[bool]]:
    """Verdicts of the unedited model answering with the passage in its prompt (one batched call)."""
    prompts = [seal.lm.chat(OPEN_BOOK_PROMPT.format(context=p.context, title=p.title, question=q.question))
               for p in passages for q in p.questions]
    answers = seal.generator.complete(prompts, max_new_tokens=seal.cfg.eval.answer_tokens) if prompts else []
    out, k = [], 0
    for p in passages:
        out.append(dom.score(p, answers[k:k + len(p.questions)], seal.grader)[1])
        k += len(p.questions)
    return out


def _counts(seal: Seal, n: int) -> list[int]:
    counts = getattr(seal.generator, "last_counts", None)
    return list(counts) if counts and len(counts) == n else [1] * n


@dataclass
class EvalPass:
    """One pass of the single-passage protocol, for an executor: a seed and a chunk of passages."""

    index: int
    seed: int
    first: int
    """The chunk's first passage index (self-edit seeds depend on it)."""
    passages: list[Passage]
    methods: list[str]
    policies: dict[str, int]
    writers: dict[str, Writer]
    policy_formats: dict[str, str] = field(default_factory=dict)


def eval_pass(seal: Seal, domain, job: EvalPass) -> tuple[int, KnowledgeResult, list[dict[str, Any]]]:
    """Run one :class:`EvalPass` on ``seal`` (a Ray actor's engine): (its index, its partial result, records)."""
    dom, fmt_of, trained, slots, result = _setup(seal, job.methods, job.policies, job.writers, job.policy_formats)
    per_pass = max(1, min(seal.cfg.eval.passages_per_pass, len(job.passages)))
    if trained:
        seal.bank.ensure_slots(max(slots.values()) + 1 + (per_pass - 1) * len(trained))
    chunk = list(enumerate(job.passages, job.first))
    records = _run_pass(seal, dom, chunk, job.seed, job.methods, trained, slots, job.policies, job.writers, fmt_of,
                        result)
    return job.index, result, records


def _load_adapters(seal: Seal, domain, tensors: dict[int, Any]) -> bool:
    """Put the driver's policy adapters into the same slots of a worker's bank."""
    if tensors:
        seal.bank.ensure_slots(max(tensors) + 1)
    for slot, t in tensors.items():
        seal.bank.load_state_dict(slot, t)
    return True


def result_from_dict(d: dict[str, Any]) -> KnowledgeResult:
    """A :class:`KnowledgeResult` back from its JSON (``as_dict``): cells, and costs from their per-edit means."""
    methods = {}
    for m, v in d["methods"].items():
        n = v["edits"]
        methods[m] = MethodStats(cells=list(v["cells"]), train_s=v["s_train_per_edit"] * n,
                                 eval_s=(v["s_per_edit"] - v["s_train_per_edit"]) * n,
                                 write_s=v["s_write_per_edit"] * n, edits=n, failed_edits=v["failed_edits"],
                                 train_tokens=round(v["train_tokens_per_edit"] * n))
    if "policies" in d:
        formats = dict(d["policies"])
    else:  # files written before policies were recorded, when every policy wrote implications: a policy row
        # is the one compared to implications, or one the CLI named ``SEAL round-N`` (its file had no implications)
        formats = {m: "implications" for m, v in d["methods"].items()
                   if "implications" in v.get("vs", {}) or re.fullmatch(r"SEAL round-\d+", m)}
    return KnowledgeResult(methods, len(d["passages"]), d.get("wall_s", 0.0), list(d["passages"]),
                           list(d["seeds"]), formats)


def merge_results(parts: Sequence[dict[str, Any]]) -> KnowledgeResult:
    """Runs of the same passages and methods with different seeds (``--seed S --seeds 1`` each) as one result:
    their cells pooled, intervals recomputed over the pooled cells. Overlapping seeds or other passages are
    refused (the figures would count a cell twice or mix protocols)."""
    results = [result_from_dict(p) for p in parts]
    first = results[0]
    for r in results[1:]:
        if r.passage_ids != first.passage_ids or set(r.methods) != set(first.methods):
            raise ValueError("the runs to merge must have the same passages and methods")
    seeds = [s for r in results for s in r.seeds]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the runs to merge share seeds: {sorted(seeds)}")
    out = KnowledgeResult({m: MethodStats() for m in first.methods}, first.passages,
                          sum(r.wall_s for r in results), first.passage_ids, sorted(seeds),
                          {m: f for r in results for m, f in r.policies.items()})
    for r in results:
        _merge(out, r)
    return out


def _merge(into: KnowledgeResult, part: KnowledgeResult) -> None:
    for m, st in part.methods.items():
        tgt = into.methods[m]
        tgt.cells += st.cells
        for f in ("train_s", "eval_s", "write_s", "edits", "failed_edits", "train_tokens", "answer_tokens",
                  "write_tokens"):
            setattr(tgt, f, getattr(tgt, f) + getattr(st, f))


def evaluate_knowledge(seal: Seal, passages: list[Passage], methods: list[str], *, seed: int = 0,
                       seeds: Sequence[int] | None = None, policies: dict[str, int] | None = None,
                       policy_formats: dict[str, str] | None = None,
                       writers: dict[str, Writer] | None = None, log_path: str | Path | None = None,
                       progress: Callable[[int, int], None] | None = None, executor=None,
                       checkpoint=None) -> KnowledgeResult:
    """Run the single-passage protocol for each of ``seeds`` (default ``[seed]``); per-(passage, seed) details
    go to ``log_path`` (JSONL) when given. ``checkpoint`` (a :class:`seal.eval_checkpoint.PassCheckpoint`)
    saves each finished pass and skips the passes it already holds.

    ``policies`` maps extra method names to policy adapter slots (their self-edits are written with that
    adapter, in the format ``policy_formats`` gives them, default implications, and compared to that format's
    row); ``writers`` maps extra method names to external writers (e.g. a teacher model).
    ``executor`` (a :class:`seal.executor_ray.RayExecutor`) runs the passes on its actors; the figures are
    merged in pass order, so they equal an in-process run's on the same device, dtype and threads.
    """
    policies, writers = policies or {}, writers or {}
    seeds = list(seeds) if seeds else [seed]
    dom, fmt_of, trained, slots, result = _setup(seal, methods, policies, writers, policy_formats)
    result.passage_ids, result.seeds = [p.id for p in passages], seeds
    per_pass = max(1, min(seal.cfg.eval.passages_per_pass, len(passages)))
    start = time.perf_counter()
    jobs: list[EvalPass] = []
    for s in seeds:
        for first in range(0, len(passages), per_pass):
            jobs.append(EvalPass(len(jobs), s, first, passages[first:first + per_pass], methods, policies, writers,
                                 result.policies))
    total, done = len(passages) * len(seeds), 0
    parts = {}
    if checkpoint is not None:
        for job in jobs:
            if (saved := checkpoint.load(job.index)) is not None:
                parts[job.index] = saved
                done += len(job.passages)
    todo = [job for job in jobs if job.index not in parts]
    if parts and progress is not None:
        progress(done, total)
    if executor is not None and getattr(executor, "name", "local") != "local":
        executor.broadcast("eval-policies", _load_adapters, {slot: seal.bank.state_dict(slot)
                                                            for slot in policies.values()})
        outputs = executor.run(todo, fn=eval_pass, failed=None)
    else:
        outputs = (eval_pass(seal, dom, job) for job in todo)
    last = time.perf_counter()
    for index, part, records in outputs:
        parts[index] = (part, records)
        if checkpoint is not None:
            checkpoint.save(index, part, records, time.perf_counter() - last)
        last = time.perf_counter()
        done += len(jobs[index].passages)
        if progress is not None:
            progress(done, total)
    for index in sorted(parts):  # merged (and logged) in pass order, wherever and whenever they ran
        part, records = parts[index]
        _merge(result, part)
        for record in records:
            if log_path is not None:
                append_jsonl(log_path, record)
    result.passages = len(passages)
    result.wall_s = time.perf_counter() - start + (checkpoint.saved_s if checkpoint is not None else 0.0)
    return result


def _run_pass(seal, dom, chunk, seed, methods, trained, slots, policies, writers, fmt_of, result) -> list[dict]:
    """One pass: the chunk's passages' self-edits written, all their adapters trained and answered together."""
    bases = seal.baselines(dom, [p for _, p in chunk])
    books = open_book(seal, dom, [p for _, p in chunk]) if "passage-in-prompt" in methods else None
    records: list[dict[str, Any]] = []
    jobs, ok, costs = [], [], {}
    for j, (pi, passage) in enumerate(chunk):
        base = bases[j]
        record: dict[str, Any] = {"passage": passage.id, "title": passage.title, "seed": seed,
                                  "base": {"accuracy": base.accuracy, "answers": base.answers}}
        records.append(record)
        if "base" in methods:
            result.methods["base"].add(passage.id, seed, base.verdicts)
        if books is not None:
            result.methods["passage-in-prompt"].add(passage.id, seed, books[j])
            record["passage-in-prompt"] = {"accuracy": sum(books[j]) / max(len(books[j]), 1)}
        texts, costs[j] = _write_self_edits(seal, dom, passage, trained, policies, writers, seed * 100_003 + pi,
                                            fmt_of)
        for m in trained:
            shown = texts.get(m, [""])
            shown = shown[0] if len(shown) == 1 else shown
            try:
                examples = _pooled_examples(dom, passage, texts.get(m, [""]), fmt_of(m))
            except SelfEditError as exc:
                result.methods[m].failed_edits += 1
                record[m] = {"error": str(exc), "self_edit": shown}
                result.methods[m].add(passage.id, seed, base.verdicts)  # an unusable edit leaves the model as is
                continue
            slot = slots[m] + j * len(trained)
            jobs.append(TrainJob(slot=slot, examples=examples, seed=seed))
            ok.append((j, m, slot, shown))
    train_results = seal.train(jobs) if jobs else []
    t1 = time.perf_counter()
    scores = seal.evaluate(dom, [(chunk[j][1], slot) for j, _, slot, _ in ok])
    eval_s = time.perf_counter() - t1
    counts = _counts(seal, sum(len(chunk[j][1].questions) for j, *_ in ok))
    gen, k = [], 0
    for j, *_ in ok:
        n = len(chunk[j][1].questions)
        gen.append(sum(counts[k:k + n]))
        k += n
    train_total = sum(tr.seconds for tr in train_results)  # the pass's training time (equal shares summed)
    tokens_total = max(sum(tr.tokens for tr in train_results), 1)
    for (j, m, _, text), tr, sc, g in zip(ok, train_results, scores, gen, strict=True):
        stats = result.methods[m]
        stats.add(chunk[j][1].id, seed, bases[j].verdicts if tr.failed else sc.verdicts)
        stats.failed_edits += bool(tr.failed)
        stats.edits += 1
        stats.train_s += train_total * tr.tokens / tokens_total
        stats.train_tokens += tr.tokens
        stats.eval_s += eval_s * g / max(sum(gen), 1)
        stats.answer_tokens += g
        w_s, w_tok = costs[j].get(m, (0.0, 0))
        stats.write_s += w_s
        stats.write_tokens += w_tok
        records[j][m] = {"accuracy": sc.accuracy, "answers": sc.answers, "self_edit": text,
                         "train_steps": tr.steps, "final_loss": tr.final_loss, "failed": tr.failed}
    return records


def _pooled_examples(dom: KnowledgeDomain, passage: Passage, texts: list[str], fmt: str) -> list:
    """The training examples of a passage's self-edits together, each once (the passage too); a self-edit that
    does not parse is left out, and SelfEditError is raised only when none parses."""
    if len(texts) == 1:
        return dom.parse_self_edit(passage, texts[0], fmt).examples
    examples, seen, errors = [], set(), []
    for text in texts:
        try:
            parsed = dom.parse_self_edit(passage, text, fmt)
        except SelfEditError as exc:
            errors.append(str(exc))
            continue
        for e in parsed.examples:
            if (e.prompt, e.completion) not in seen:
                seen.add((e.prompt, e.completion))
                examples.append(e)
    if errors and len(errors) == len(texts):
        raise SelfEditError(errors[0])
    return examples


def _write_self_edits(seal: Seal, dom: KnowledgeDomain, passage: Passage, trained: list[str],
                      policies: dict[str, int], writers: dict[str, Writer], seed: int, fmt_of
                      ) -> tuple[dict[str, list[str]], dict[str, tuple[float, int]]]:
    """(method -> its ``eval.self_edits`` self-edit texts, method -> (seconds, tokens) of writing them). One call
    per method, each from the same seed: a format's self-edits never depend on which other methods were asked
    for (sharing a batch would change every row's draws with the method list)."""
    n = seal.cfg.eval.self_edits
    texts: dict[str, list[str]] = {}
    costs: dict[str, tuple[float, int]] = {}
    calls = [(m, None) for m in trained if m in ("implications", "rewrite", "self-qa")]
    calls += [(m, slot) for m, slot in policies.items() if m in trained]
    for m, writer_slot in calls:
        t0 = time.perf_counter()
        out = seal.write_self_edits(dom, [(passage, fmt_of(m))], n=n, seed=seed, policy_slot=writer_slot)
        texts[m], costs[m] = out[0], (time.perf_counter() - t0, sum(_counts(seal, n)))
    for m, writer in writers.items():
        if m in trained:
            t0 = time.perf_counter()
            texts[m] = [writer(passage) for _ in range(n)]
            costs[m] = (time.perf_counter() - t0, 0)
    return texts, costs


def evaluate_knowledge_cpt(seal: Seal, passages: list[Passage], methods: list[str], *, seed: int = 0,
                           policies: dict[str, int] | None = None, writers: dict[str, Writer] | None = None,
                           policy_formats: dict[str, str] | None = None,
                           progress: Callable[[int, int], None] | None = None) -> KnowledgeResult:
    """The multi-passage setting (continued pretraining): one adapter per method trained on the self-edits of
    all passages at once, then evaluated on all their questions. ``progress(done, total)`` counts the passages
    written, then the LoRA steps (the total grows by them once training starts), then the answering pass."""
    policies, writers = policies or {}, writers or {}
    dom, fmt_of, trained, slots, result = _setup(seal, methods, policies, writers, policy_formats)
    result.passage_ids, result.seeds = [p.id for p in passages], [seed]
    start = time.perf_counter()
    examples: dict[str, list] = {m: [] for m in trained}
    for pi, passage in enumerate(passages):
        texts, costs = _write_self_edits(seal, dom, passage, trained, policies, writers, seed * 100_003 + pi, fmt_of)
        for m in trained:
            w_s, w_tok = costs.get(m, (0.0, 0))
            result.methods[m].write_s += w_s
            result.methods[m].write_tokens += w_tok
            try:
                examples[m] += _pooled_examples(dom, passage, texts.get(m, [""]), fmt_of(m))
            except SelfEditError:
                result.methods[m].failed_edits += 1
        if progress is not None:
            progress(pi + 1, len(passages) + 1)
    base_scores = seal.baselines(dom, passages)
    if "base" in methods:
        for p, sc in zip(passages, base_scores, strict=True):
            result.methods["base"].add(p.id, seed, sc.verdicts)
    if "passage-in-prompt" in methods:
        for p, v in zip(passages, open_book(seal, dom, passages), strict=True):
            result.methods["passage-in-prompt"].add(p.id, seed, v)
    ok = [m for m in trained if examples[m]]
    for m in set(trained) - set(ok):  # no usable self-edit at all: the model stays as it was
        for p, sc in zip(passages, base_scores, strict=True):
            result.methods[m].add(p.id, seed, sc.verdicts)
    n_steps = [0]

    def on_step(step: int, total: int) -> None:
        n_steps[0] = max(n_steps[0], total)
        if progress is not None:
            progress(len(passages) + step, len(passages) + total + 1)

    train_results = seal.train([TrainJob(slots[m], examples[m], seed=seed) for m in ok], progress=on_step)
    t1 = time.perf_counter()
    scores = seal.evaluate(dom, [(p, slots[m]) for m in ok for p in passages])
    eval_s = time.perf_counter() - t1
    train_total = sum(tr.seconds for tr in train_results)
    tokens_total = max(sum(tr.tokens for tr in train_results), 1)
    for i, (m, tr) in enumerate(zip(ok, train_results, strict=True)):
        stats = result.methods[m]
        for p, sc in zip(passages, scores[i * len(passages):(i + 1) * len(passages)], strict=True):
            stats.add(p.id, seed, sc.verdicts if not tr.failed else [False] * len(sc.verdicts))
        stats.edits, stats.train_s, stats.eval_s = 1, train_total * tr.tokens / tokens_total, eval_s / len(ok)
        stats.train_tokens = tr.tokens
    if progress is not None:
        done = len(passages) + n_steps[0] + 1
        progress(done, done)
    result.passages = len(passages)
    result.wall_s = time.perf_counter() - start
    return result
