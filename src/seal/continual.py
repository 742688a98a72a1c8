"""Continual learning: sequential updates with a strategy, forgetting probes, a forgetting guard, and the
retention matrix of the paper's catastrophic-forgetting experiment (Figure 6).

Strategies, i.e. how update k+1 relates to updates 1..k (``STRATEGIES``):

* ``merge`` (the paper's): each update trains a *fresh* LoRA adapter on the weights as they are (every earlier
  update already merged in), then folds it into the base weights (``W += scale * (A B)^T``).
* ``accumulate``: one adapter; each update continues training it (fresh optimiser state). This is what
  ``seal learn`` always did.
* ``replay``: ``accumulate``, plus a seeded sample of earlier updates' training sequences mixed into each new
  update (``replay_ratio`` x the new update's number of sequences, at most all of them).

:class:`Learner` applies updates on one slot of a :class:`~seal.engine.Seal` bank with in-memory
transactions: :meth:`Learner.train` trains a *pending* update (the previous state is kept: a backup slot for
the adapter strategies, an untouched base for ``merge``), :meth:`Learner.commit` keeps it, :meth:`Learner.discard`
drops it. Evaluating the current state always routes through the learner's slot (for ``merge`` that slot is
zero after each commit, so it equals the merged base). The training seed of update k (1-based) is
``seed * 1_000_003 + k``, so rebuilding a sequence of updates (``seal forget``) reproduces it exactly.

Probes (what the forgetting guard watches): for each learned document the model writes Q/A pairs about the
passage with the ``self-qa`` prompt (greedy, :func:`write_probes`); pairs whose short answer occurs in the passage are kept (up to 3), and
cloze questions made from the passage's sentences (a number or a capitalised word blanked out) fill up the
rest. :func:`guarded_update` measures the pooled accuracy on earlier documents' probes (questions asked without
the passage, like the task) before and after an update; if it drops by more than ``threshold`` the update is
retrained with replay, and if it still drops too much it is rejected (discarded).

:func:`evaluate_forgetting` learns N passages one after another and, after each step, evaluates every passage
seen so far (the single-passage grader, questions without the passage): ``matrix[i][j]`` is the accuracy on
passage j after step i (``None`` for j > i)::

    seal = Seal.load(cfg, slots=2)
    result = evaluate_forgetting(seal, passages[:8], strategy="merge")
    print(result.summary())          # diagonal_mean, final_mean, forgetting, base_mean
    retention_heatmap(result.as_dict(), "forgetting.png")
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seal.config import InnerLoopConfig
from seal.domains.base import SelfEditError
from seal.domains.knowledge import QA, KnowledgeDomain, Passage, _qa_pairs
from seal.engine import Seal
from seal.grading import normalize
from seal.inner_loop import Example, TrainJob, TrainResult, train_adapters

STRATEGIES = ("merge", "accumulate", "replay")
PROBES_PER_PASSAGE = 3
DEFAULT_GUARD_THRESHOLD = 0.2
DEFAULT_REPLAY_RATIO = 1.0


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (choose from {', '.join(STRATEGIES)})")
    return strategy


def train_seed(seed: int, step: int) -> int:
    """The training seed of update number ``step`` (1-based) of a sequence learned with user seed ``seed``."""
    return seed * 1_000_003 + step


# --------------------------------------------------------------------------- merged base weights
@dataclass
class _MergeState:
    chain: list = field(default_factory=list)
    """Keys of the updates merged into the base weights, in order."""
    pristine: dict[str, torch.Tensor] | None = None
    """A copy of the target layers' weights before the first merge (to undo merges exactly)."""


def _merge_state(seal: Seal) -> _MergeState:
    st = getattr(seal, "_continual_merge", None)
    if st is None:
        st = _MergeState()
        seal._continual_merge = st
    return st


def merged_keys(seal: Seal) -> list:
    return list(_merge_state(seal).chain)


def set_merged_keys(seal: Seal, keys: list) -> None:
    """Rename what is merged (e.g. once a store commit gave the pending updates their version ids)."""
    st = _merge_state(seal)
    if len(keys) != len(st.chain):
        raise ValueError("set_merged_keys must keep the number of merged updates")
    st.chain = list(keys)


def merge_slot(seal: Seal, slot: int, key: Any, *, keep_pristine: bool = True) -> None:
    """Fold ``slot`` into the base weights (``AdapterBank.merge``), remembering ``key``; with ``keep_pristine``
    the unmerged weights are copied first (once), so :func:`restore_base` can undo it exactly."""
    st = _merge_state(seal)
    if keep_pristine and st.pristine is None and not st.chain:
        st.pristine = {name: lora.base.weight.detach().clone() for name, lora in seal.bank.layers.items()}
    seal.bank.merge(slot)
    st.chain.append(key)


def merge_tensors(seal: Seal, slot: int, tensors: dict[str, torch.Tensor], key: Any) -> None:
    seal.bank.load_state_dict(slot, tensors)
    merge_slot(seal, slot, key)


@torch.no_grad()
def restore_base(seal: Seal) -> None:
    """Undo every merge: the base weights become the loaded model's again."""
    st = _merge_state(seal)
    if not st.chain:
        return
    if st.pristine is None:
        raise RuntimeError("updates were merged without keeping the original weights; cannot restore them")
    for name, lora in seal.bank.layers.items():
        lora.base.weight.copy_(st.pristine[name])
    st.chain = []


def apply_merged(seal: Seal, slot: int, chain: Sequence[tuple[Any, dict[str, torch.Tensor]]]) -> None:
    """Make the base weights = original + the given updates merged in order (reusing a merged prefix)."""
    st = _merge_state(seal)
    keys = [k for k, _ in chain]
    if st.chain != keys[:len(st.chain)]:
        restore_base(seal)
    for key, tensors in list(chain)[len(st.chain):]:
        merge_tensors(seal, slot, tensors, key)


@torch.no_grad()
def zero_slot(seal: Seal, slot: int) -> None:
    """Make ``slot`` a no-op adapter (B = 0)."""
    for lora in seal.bank.layers.values():
        lora.B[slot].zero_()


# --------------------------------------------------------------------------- the learner
@dataclass
class Update:
    result: TrainResult
    sequences: list[str]
    """The new document's training sequences."""
    replayed: list[str]
    """Earlier sequences mixed in (replay)."""
    seed: int
    """The training seed used."""
    delta: dict[str, torch.Tensor] | None = None
    """``merge``: the update's own low-rank adapter (PEFT names), set by commit."""

    @property
    def examples(self) -> list[Example]:
        return [Example("", s) for s in self.sequences + self.replayed]


class Learner:
    """Sequential updates on ``seal``'s bank slot ``slot`` (``backup_slot`` keeps the previous adapter)."""

    def __init__(self, seal: Seal, strategy: str, *, slot: int = 0, backup_slot: int = 1,
                 replay_ratio: float = DEFAULT_REPLAY_RATIO, keep_pristine: bool = True) -> None:
        self.seal, self.strategy = seal, check_strategy(strategy)
        if replay_ratio < 0:
            raise ValueError("replay_ratio must be >= 0")
        self.slot, self.backup_slot, self.replay_ratio = slot, backup_slot, replay_ratio
        self.keep_pristine = keep_pristine
        self.history: list[list[str]] = []
        """Training sequences of each committed update, in order (the replay pool)."""
        self.has_adapter = False
        """Adapter strategies: the slot holds a trained adapter to continue from."""
        self.pending: Update | None = None
        seal.bank.ensure_slots(max(slot, backup_slot) + 1)

    @property
    def steps(self) -> int:
        return len(self.history)

    @property
    def retry_ratio(self) -> float:
        """The replay ratio of the guard's retry: replay at the usual ratio, or twice as much under replay."""
        return max(self.replay_ratio, 0.5) * (2.0 if self.strategy == "replay" else 1.0)

    def replay_sample(self, n_new: int, ratio: float, seed: int) -> list[str]:
        pool = [s for seqs in self.history for s in seqs]
        k = min(len(pool), math.ceil(ratio * max(n_new, 1))) if ratio > 0 else 0
        return random.Random(f"seal-replay-{seed}").sample(pool, k) if k else []

    def train(self, sequences: list[str], seed: int = 0, *, replay_ratio: float | None = None,
              inner_loop: InnerLoopConfig | None = None,
              progress: Callable[[int, int], None] | None = None) -> Update:
        """Train a pending update on ``sequences`` (+ replay); a previous pending update is discarded first.
        ``replay_ratio`` None means the strategy's own (``replay``: ``self.replay_ratio``, others: none)."""
        self.discard()
        ratio = (self.replay_ratio if self.strategy == "replay" else 0.0) if replay_ratio is None else replay_ratio
        tseed = train_seed(seed, self.steps + 1)
        update = Update(TrainResult(self.slot), list(sequences), self.replay_sample(len(sequences), ratio, tseed),
                        tseed)
        cont = self.strategy != "merge" and self.has_adapter
        if cont:
            self.seal.bank.copy_slot(self.slot, self.backup_slot)
        job = TrainJob(slot=self.slot, examples=update.examples, seed=tseed, reset=not cont)
        self.pending = update
        update.result = train_adapters(self.seal.bank, self.seal.lm.tokenizer, [job],
                                       inner_loop or self.seal.cfg.inner_loop, progress)[0]
        return update

    def discard(self) -> None:
        """Drop the pending update: the slot is back to the committed state."""
        if self.pending is None:
            return
        if self.strategy != "merge" and self.has_adapter:
            self.seal.bank.copy_slot(self.backup_slot, self.slot)
        else:
            zero_slot(self.seal, self.slot)
        self.pending = None

    def commit(self, key: Any = None) -> Update:
        """Keep the pending update (``merge``: fold it into the base weights under ``key``)."""
        update = self.pending
        if update is None:
            raise RuntimeError("no pending update to commit")
        if update.result.failed:
            raise RuntimeError(f"cannot commit a failed update ({update.result.failed})")
        if self.strategy == "merge":
            update.delta = self.seal.bank.state_dict(self.slot)
            merge_slot(self.seal, self.slot, ("pending", self.steps) if key is None else key,
                       keep_pristine=self.keep_pristine)
            zero_slot(self.seal, self.slot)
        self.history.append(list(update.sequences))
        self.has_adapter = True
        self.pending = None
        return update


# --------------------------------------------------------------------------- probes
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])")
_CAPITAL = re.compile(r"(?<![\w'-])[A-Z][a-zA-Z'-]+")
_SKIP = {"The", "A", "An", "In", "On", "At", "Of", "And", "But", "For", "It", "Its", "This", "That", "These",
         "Those", "He", "She", "They", "His", "Her", "Their", "As", "By", "To", "From", "With", "When", "While",
         "After", "Before", "During", "However", "I"}


def probe_pairs(text: str) -> list[tuple[str, str]]:
    """(question, answer) pairs from a self-QA text ('Q: ...' / 'A: ...' lines)."""
    out = []
    for pair in _qa_pairs([ln for ln in text.splitlines() if ln.strip()]):
        q, _, a = pair.partition("\nAnswer: ")
        out.append((q.removeprefix("Question: ").strip(), a.strip()))
    return out


def usable_pair(passage: Passage, question: str, answer: str) -> bool:
    """A short answer (1-8 words) found in the passage, to a real question that does not contain it."""
    a, q = normalize(answer), normalize(question)
    words = a.split()
    if not (1 <= len(words) <= 8) or len(q.split()) < 3:
        return False
    if f" {a} " in f" {q} ":
        return False
    return f" {a} " in f" {normalize(passage.title + ' ' + passage.context)} "


def cloze_probes(passage: Passage, n: int = PROBES_PER_PASSAGE, skip: Sequence[str] = ()) -> list[QA]:
    """Fill-in-the-blank probes from the passage's sentences: one per sentence, blanking a number if it has one,
    else the first capitalised word that does not start the sentence (a name, most of the time)."""
    out: list[QA] = []
    for sent in _SENT_SPLIT.split(" ".join(passage.context.split())):
        if len(out) >= n:
            break
        if len(sent.split()) < 5:
            continue
        m = _NUMBER.search(sent)
        if m is None:
            m = next((c for c in _CAPITAL.finditer(sent) if c.start() > 0 and c.group() not in _SKIP), None)
        if m is None:
            continue
        answer = m.group().rstrip(",.")
        question = f"Fill in the blank: {sent[:m.start()]}____{sent[m.start() + len(answer):]}"
        if question in skip:
            continue
        out.append(QA(question, answer))
    return out


def make_probes(passage: Passage, self_qa_text: str, n: int = PROBES_PER_PASSAGE) -> tuple[list[QA], str]:
    """Up to ``n`` probes: usable model-written pairs first, cloze probes for the rest. Returns (probes, source)
    with source ``model``, ``cloze`` or ``model+cloze``."""
    probes: list[QA] = []
    seen: set[str] = set()
    for q, a in probe_pairs(self_qa_text):
        if len(probes) >= n:
            break
        if usable_pair(passage, q, a) and normalize(q) not in seen:
            seen.add(normalize(q))
            probes.append(QA(q, a))
    n_model = len(probes)
    if len(probes) < n:
        probes += cloze_probes(passage, n - len(probes))
    source = "model" if n_model == len(probes) else ("cloze" if n_model == 0 else "model+cloze")
    return probes, source


PROBE_TOKENS = 128
"""Generation budget of the probe Q/A pairs (three short pairs fit)."""


def write_probes(seal: Seal, passages: Sequence[Passage], n: int = PROBES_PER_PASSAGE) -> list[list[QA]]:
    """Probes for each passage: the model (base route, greedy) writes Q/A pairs with the ``self-qa`` prompt,
    :func:`make_probes` keeps the usable ones and fills up with cloze probes. One batched generation call."""
    if not passages:
        return []
    dom = KnowledgeDomain()
    prompts = [dom.self_edit_prompt(seal.lm, p, "self-qa") for p in passages]
    texts = seal.generator.complete(prompts, max_new_tokens=min(PROBE_TOKENS, seal.cfg.self_edit.max_new_tokens))
    return [make_probes(p, t, n)[0] for p, t in zip(passages, texts, strict=True)]


def probe_accuracy(seal: Seal, probe_passages: Sequence[Passage], slot: int | None) -> tuple[float | None,
                                                                                             list[float | None]]:
    """Pooled accuracy over all probes (None when there are none) and per-passage accuracies."""
    dom = KnowledgeDomain()
    idx = [i for i, p in enumerate(probe_passages) if p.questions]
    per: list[float | None] = [None] * len(probe_passages)
    if not idx:
        return None, per
    scores = seal.evaluate(dom, [(probe_passages[i], slot) for i in idx])
    right = total = 0
    for i, sc in zip(idx, scores, strict=True):
        per[i] = sc.accuracy
        right += sum(sc.verdicts)
        total += len(sc.verdicts)
    return right / total, per


# --------------------------------------------------------------------------- the guard
@dataclass
class GuardReport:
    checked: bool = False
    """Whether there were earlier probes to check."""
    threshold: float = DEFAULT_GUARD_THRESHOLD
    before: float | None = None
    after: float | None = None
    retried: bool = False
    after_retry: float | None = None
    accepted: bool = True
    per_document_after: list[float | None] = field(default_factory=list)
    """Per earlier document: probe accuracy with the update finally kept (or the last one tried)."""

    @property
    def final(self) -> float | None:
        return self.after_retry if self.retried else self.after

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "threshold": self.threshold, "before": self.before, "after": self.after,
                "retried": self.retried, "after_retry": self.after_retry, "accepted": self.accepted}


def guarded_update(learner: Learner, sequences: list[str], *, seed: int = 0, probe_passages: Sequence[Passage] = (),
                   guard: bool = True, threshold: float = DEFAULT_GUARD_THRESHOLD,
                   inner_loop: InnerLoopConfig | None = None,
                   progress: Callable[[int, int], None] | None = None) -> tuple[Update, GuardReport]:
    """Train a pending update; with ``guard``, check earlier documents' probes before and after it.

    If pooled probe accuracy drops by more than ``threshold`` (absolute), retrain the update with replay
    (``learner.retry_ratio``); if it still drops too much, discard it (``report.accepted`` False). The caller
    commits an accepted update (a failed training, ``update.result.failed``, is left pending for the caller)."""
    report = GuardReport(threshold=threshold)
    report.checked = guard and any(p.questions for p in probe_passages)
    if report.checked:
        report.before, _ = probe_accuracy(learner.seal, probe_passages, learner.slot)
    update = learner.train(sequences, seed, inner_loop=inner_loop, progress=progress)
    if update.result.failed or not report.checked:
        return update, report
    report.after, report.per_document_after = probe_accuracy(learner.seal, probe_passages, learner.slot)
    if report.before - report.after <= threshold + 1e-12:
        return update, report
    report.retried = True
    update = learner.train(sequences, seed, replay_ratio=learner.retry_ratio, inner_loop=inner_loop,
                           progress=progress)
    if update.result.failed:
        return update, report
    report.after_retry, report.per_document_after = probe_accuracy(learner.seal, probe_passages, learner.slot)
    if report.before - report.after_retry > threshold + 1e-12:
        report.accepted = False
        learner.discard()
    return update, report


# --------------------------------------------------------------------------- the forgetting experiment
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


def retention_heatmap(result: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    """The retention matrix as a heatmap (like the paper's Figure 6): a 'base' row, then one row per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    matrix, base = result["matrix"], result["base"]
    n = len(base)
    data = np.full((n + 1, n), np.nan)
    data[0] = base
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            if v is not None:
                data[i + 1, j] = v
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * n, 1.4 + 0.5 * (n + 1)), dpi=130)
    im = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for (r, c), v in np.ndenumerate(data):
        if not np.isnan(v):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    ax.axhline(0.5, color="white", lw=1.5)
    ax.set_xticks(range(n), [str(j + 1) for j in range(n)])
    ax.set_yticks(range(n + 1), ["base"] + [f"after {i + 1}" for i in range(n)])
    ax.set_xlabel("passage evaluated")
    ax.set_ylabel("model")
    s = result.get("summary") or summarize(matrix, base)

    def f(x):
        return "-" if x is None else f"{x:.2f}"

    guard = ", guard" if result.get("guard") else ""
    ax.set_title(title or f"{result.get('strategy', '?')}{guard}: right after {f(s['diagonal_mean'])}, "
                          f"after all {f(s['final_mean'])}\nforgetting {f(s['forgetting'])}, "
                          f"base {f(s['base_mean'])}", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="accuracy")
    fig.tight_layout()
    from seal.io import atomic_savefig

    atomic_savefig(fig, path)
    plt.close(fig)
    return Path(path)


__all__ = ["STRATEGIES", "Learner", "Update", "GuardReport", "guarded_update", "make_probes", "cloze_probes",
           "probe_pairs", "probe_accuracy", "write_probes", "evaluate_forgetting", "ForgettingResult", "summarize",
           "retention_heatmap", "restore_base", "apply_merged", "merge_slot", "train_seed"]
