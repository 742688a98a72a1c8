"""ARC test-time training (TTT) on the shared LoRA engine, and prediction with augmented voting (pass@2).

One self-edit (``ArcSelfEdit``: augmentation groups, loss on all tokens or outputs only, learning rate, epochs)
becomes a LoRA adapter in one slot of the engine's ``AdapterBank``:

1. ``ttt_examples``: leave-one-out tasks from the demonstrations, augmented with the edit's groups
   (``ttt_data.build_ttt_examples``), capped by ``ArcConfig.max_examples`` / ``max_chars`` so sequences stay a
   few hundred tokens on CPU. "output" strategy -> ``Example(prompt, completion)`` (loss on the answer grid
   only); "all" strategy -> ``Example("", prompt + completion)`` (loss on every token).
2. ``train_edits``: the engine takes one ``InnerLoopConfig``, the edit brings its own learning rate and epochs,
   so the jobs are grouped by (lr, epochs) and each group goes through ``inner_loop.train_adapters`` with
   ``dataclasses.replace(seal.cfg.inner_loop, lr=..., epochs=...)``.
3. ``predict``: for each (task, adapter slot or None) and each test input, one prompt per test-time
   augmentation (``ArcConfig.tta``: identity + invertible geometric transforms); all prompts of all adapters go
   through ONE ``generator.complete(..., adapters=[slot per prompt])`` call (greedy, token budget from the
   expected output size); answers are decoded, mapped back, voted, and the top two grids are the attempts.

The ARC package is pure Python; this module is the part that needs torch (import it explicitly:
``from seal.domains.arc.ttt import ArcConfig, evaluate_edits``). On CPU the defaults keep one self-edit
evaluation at tens of seconds for the easy demo tasks; on a GPU raise ``max_examples``, ``max_chars``, ``tta``
and ``max_epochs`` towards the paper's setting.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from seal.config import ArcConfig
from seal.inner_loop import Example, TrainJob, TrainResult, train_adapters

from .augment import apply_to_task, get_transform
from .grids import Grid, format_task_prompt
from .selfedit import ArcSelfEdit
from .tasks import ArcTask
from .ttt_data import build_ttt_examples
from .voting import invert_answer, is_solved, vote


# ----------------------------------------------------------------------------------------------- TTT data
def ttt_examples(task: ArcTask, edit: ArcSelfEdit, cfg: ArcConfig, seed: int = 0) -> list[Example]:
    """The training sequences of one self-edit (loss placement follows the edit's strategy)."""
    data = build_ttt_examples(task, edit.groups, leave_two_out=cfg.leave_two_out, max_examples=cfg.max_examples,
                              seed=seed, max_chars=cfg.max_chars)
    if edit.loss_on == "all":
        return [Example("", ex.prompt + ex.completion) for ex in data]
    return [Example(ex.prompt, ex.completion) for ex in data]


@dataclass
class TTTItem:
    """One self-edit to apply: ``task`` with ``edit`` into adapter ``slot``."""

    slot: int
    task: ArcTask
    edit: ArcSelfEdit


def train_edits(seal, items: Sequence[TTTItem], cfg: ArcConfig, seed: int = 0,
                progress: Callable[[int, int], None] | None = None) -> list[TrainResult | None]:
    """Train each item's slot from a fresh adapter; ``None`` for an item without any TTT sequence.

    Jobs with equal (learning rate, epochs) train in one ``train_adapters`` call (batched on CUDA).
    """
    results: list[TrainResult | None] = [None] * len(items)
    groups: dict[tuple[float, int], list[tuple[int, TrainJob]]] = {}
    for i, it in enumerate(items):
        examples = ttt_examples(it.task, it.edit, cfg, seed)
        if examples:
            groups.setdefault((it.edit.learning_rate, it.edit.epochs), []).append(
                (i, TrainJob(slot=it.slot, examples=examples, seed=seed)))
    done, total = 0, sum(len(g) for g in groups.values())
    base = seal.cfg.inner_loop
    for (lr, epochs), group in groups.items():
        inner = dataclasses.replace(base, lr=lr, epochs=epochs, max_seq_tokens=cfg.max_seq_tokens,
                                    batch_tokens=cfg.batch_tokens or base.batch_tokens)
        out = train_adapters(seal.bank, seal.lm.tokenizer, [job for _, job in group], inner)
        for (i, _), res in zip(group, out, strict=True):
            results[i] = res
        done += len(group)
        if progress is not None:
            progress(done, total)
    return results


# ----------------------------------------------------------------------------------------------- prediction
@dataclass
class Prediction:
    """The attempts for each test input of one task, and whether they solve it (pass@``attempts``)."""

    attempts: list[list[Grid]]
    solved: bool
    answers: list[str] = field(default_factory=list)
    reason: str | None = None
    """Why a task could not be attempted (prompt too long); ``None`` when it was."""

    def to_record(self) -> dict:
        return {"solved": self.solved, "attempts": [[list(map(list, g)) for g in a] for a in self.attempts],
                "reason": self.reason}


def answer_budget(task: ArcTask, test_input: Grid, slack: int) -> int:
    """Max new tokens for the answer: rows x (cols + 1) characters of the largest plausible output, + slack.

    The output shape is estimated from the demonstrations (their output sizes, and their output/input size
    ratios applied to the test input). Byte-level tokenizers use at most one token per character.
    """
    rows = max(len(e.output) for e in task.train)
    cols = max(len(e.output[0]) for e in task.train)
    rr = max(len(e.output) / len(e.input) for e in task.train)
    rc = max(len(e.output[0]) / len(e.input[0]) for e in task.train)
    rows = min(30, max(rows, math.ceil(rr * len(test_input))))
    cols = min(30, max(cols, math.ceil(rc * len(test_input[0]))))
    return rows * (cols + 1) + slack


def predict(generator, pairs: Sequence[tuple[ArcTask, int | None]], cfg: ArcConfig,
            progress: Callable[[int, int], None] | None = None) -> list[Prediction]:
    """Predict every (task, adapter slot or None = base model) with TTA + voting, in one batched generation."""
    prompts: list[str] = []
    routes: list[int] = []
    budgets: list[int] = []
    meta: list[tuple[int, int, str]] = []  # (pair index, test index, transform)
    skipped: dict[int, str] = {}
    for p, (task, slot) in enumerate(pairs):
        for name in cfg.tta:
            t = get_transform(name)
            moved = apply_to_task(task, t)
            if moved is None:
                continue
            for ti, test_input in enumerate(moved.test_inputs):
                prompt = format_task_prompt(moved.train, test_input)
                if len(prompt) > cfg.max_prompt_chars:
                    skipped[p] = f"prompt of {len(prompt)} chars > arc.max_prompt_chars={cfg.max_prompt_chars}"
                    continue
                prompts.append(prompt)
                routes.append(-1 if slot is None else slot)
                budgets.append(answer_budget(moved, test_input, cfg.answer_slack))
                meta.append((p, ti, name))
    answers = _complete_by_budget(generator, prompts, routes, budgets, progress) if prompts else []
    candidates: list[list[list[tuple[Grid | None, str]]]] = [[[] for _ in t.test_inputs] for t, _ in pairs]
    texts: list[list[str]] = [[] for _ in pairs]
    for (p, ti, name), text in zip(meta, answers, strict=True):
        candidates[p][ti].append((invert_answer(text, name), name))
        texts[p].append(text)
    out = []
    for p, (task, _) in enumerate(pairs):
        attempts = [vote(c, attempts=cfg.attempts) for c in candidates[p]]
        solved = task.test_outputs is not None and p not in skipped and \
            is_solved(task, attempts, max_attempts=cfg.attempts)
        out.append(Prediction(attempts, solved, texts[p], skipped.get(p)))
    return out


def _complete_by_budget(generator, prompts, routes, budgets, progress) -> list[str]:
    """One ``complete`` call with the largest budget (rows stop at EOS); answers are cut to their own budget
    by the grid decoder, which stops at the first non-grid line."""
    return generator.complete(prompts, max_new_tokens=max(budgets), adapters=routes, progress=progress)


# ----------------------------------------------------------------------------------------------- reward
@dataclass
class EditOutcome:
    """The reward of one self-edit on one task (1 = solved after TTT, 0 otherwise) and what happened."""

    reward: float
    prediction: Prediction | None
    train: TrainResult | None
    reason: str | None = None
    seconds: float = 0.0

    def to_record(self) -> dict:
        rec = {"reward": self.reward, "reason": self.reason, "seconds": round(self.seconds, 2)}
        if self.train is not None:
            rec.update(train_steps=self.train.steps, final_loss=self.train.final_loss, train_failed=self.train.failed)
        if self.prediction is not None:
            rec["prediction"] = self.prediction.to_record()
        return rec


def evaluate_edits(seal, pairs: Sequence[tuple[ArcTask, ArcSelfEdit]], cfg: ArcConfig, *, seed: int = 0,
                   first_slot: int = 0, progress: Callable[[int, int], None] | None = None) -> list[EditOutcome]:
    """Reward of each (task, self-edit): TTT into a fresh adapter, then predict; ``cfg.slots`` at a time."""
    outcomes: list[EditOutcome] = []
    seal.bank.ensure_slots(first_slot + cfg.slots)
    for start in range(0, len(pairs), cfg.slots):
        chunk = pairs[start:start + cfg.slots]
        items = [TTTItem(first_slot + i, task, edit) for i, (task, edit) in enumerate(chunk)]
        trained = train_edits(seal, items, cfg, seed)
        t1 = time.perf_counter()
        ready = [(it.task, it.slot) for it, tr in zip(items, trained, strict=True)
                 if tr is not None and tr.failed is None]
        preds = iter(predict(seal.generator, ready, cfg))
        t2 = time.perf_counter()
        n_ready = max(len(ready), 1)
        for tr in trained:
            train_s = tr.seconds if tr is not None else 0.0
            if tr is None:
                outcomes.append(EditOutcome(0.0, None, None, "no TTT sequence fits arc.max_chars", train_s))
                continue
            if tr.failed is not None:
                outcomes.append(EditOutcome(0.0, None, tr, f"training failed: {tr.failed}", train_s))
                continue
            pred = next(preds)
            reason = pred.reason or (None if pred.solved else "wrong answer")
            outcomes.append(EditOutcome(float(pred.solved), pred, tr, reason, train_s + (t2 - t1) / n_ready))
        if progress is not None:
            progress(min(start + cfg.slots, len(pairs)), len(pairs))
    return outcomes
