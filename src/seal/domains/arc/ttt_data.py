"""Test-time-training (TTT) data for one ARC task: leave-one-out tasks from its demonstrations, augmented.

For a task with demonstrations d1..dn, leave-one-out makes n small tasks: demo i is the query and the other
n-1 are the demonstrations (with a single demo: a query without demonstrations). With ``leave_two_out`` (only
when n >= 4, so at least two demonstrations remain) it also makes, for every ordered pair (i, j), i != j, a task
whose query is demo i with demo j dropped. Each of these is written as a prompt/completion pair
(``grids.format_task_prompt`` / ``grids.format_completion``) untransformed, and once per chosen augmentation
(``augment.transforms_for(groups)``), the same transform applied to every demo and to the query input and output.

Then: examples longer than ``max_chars`` are dropped, duplicates (same prompt and completion) removed, and the
list capped at ``max_examples``: the untransformed examples come first (in order), the remaining slots get a
seeded random choice of transformed ones, kept in generation order. Same inputs and seed -> same list.

    examples = build_ttt_examples(task, {"basic", "size"}, max_examples=32, seed=0)
    for ex in examples:  # train with loss on ex.completion (or on prompt + completion)
        ...
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from .augment import IDENTITY, Transform, reorder_demos, transforms_for
from .grids import format_completion, format_task_prompt
from .tasks import ArcTask, Example


@dataclass(frozen=True)
class TTTExample:
    """One training sequence: ``prompt + completion``; ``transform`` names the augmentation used."""

    prompt: str
    completion: str
    transform: str

    @property
    def text(self) -> str:
        return self.prompt + self.completion


def held_out_splits(n: int, *, leave_two_out: bool = False) -> list[tuple[int, tuple[int, ...]]]:
    """(query index, demonstration indices) for each leave-one-out (then leave-two-out) split of n demos."""
    splits = [(i, tuple(k for k in range(n) if k != i)) for i in range(n)]
    if leave_two_out and n >= 4:
        for i in range(n):
            for j in range(n):
                if i != j:
                    splits.append((i, tuple(k for k in range(n) if k not in (i, j))))
    return splits


def _example(demos: Iterable[Example], query: Example, transform: Transform) -> TTTExample | None:
    pairs = []
    for e in (*demos, query):
        inp, out = transform.try_apply(e.input), transform.try_apply(e.output)
        if inp is None or out is None:
            return None
        pairs.append((inp, out))
    *shown, (q_in, q_out) = pairs
    return TTTExample(format_task_prompt(shown, q_in), format_completion(q_out), transform.name)


def build_ttt_examples(
    task: ArcTask,
    groups: set[str] | frozenset[str],
    *,
    leave_two_out: bool = False,
    max_examples: int = 64,
    seed: int = 0,
    max_chars: int | None = None,
    shuffle_demos: bool = False,
) -> list[TTTExample]:
    """TTT examples for ``task`` with the augmentation ``groups`` (subset of basic/size/chain/repeat).

    ``max_chars`` drops examples whose prompt + completion is longer (a proxy for the token budget).
    ``shuffle_demos`` also reorders the demonstrations of each transformed example (seeded).
    """
    if max_examples < 1:
        raise ValueError(f"max_examples must be >= 1, got {max_examples}")
    transforms = [IDENTITY, *transforms_for(groups)]
    splits = held_out_splits(len(task.train), leave_two_out=leave_two_out)
    plain: list[TTTExample] = []
    augmented: list[TTTExample] = []
    seen: set[tuple[str, str]] = set()
    for t_index, transform in enumerate(transforms):
        for s_index, (q, demo_idx) in enumerate(splits):
            demos = tuple(task.train[k] for k in demo_idx)
            if shuffle_demos and transform is not IDENTITY and len(demos) > 1:
                sub = ArcTask(task.task_id, demos, (task.train[q].input,))
                demos = reorder_demos(sub, seed * 1_000_003 + t_index * 1009 + s_index).train
            ex = _example(demos, task.train[q], transform)
            if ex is None or (max_chars is not None and len(ex.text) > max_chars):
                continue
            key = (ex.prompt, ex.completion)
            if key in seen:
                continue
            seen.add(key)
            (plain if transform is IDENTITY else augmented).append(ex)
    if len(plain) >= max_examples:
        return plain[:max_examples]
    room = max_examples - len(plain)
    if len(augmented) > room:
        keep = sorted(random.Random(f"ttt:{seed}").sample(range(len(augmented)), room))
        augmented = [augmented[i] for i in keep]
    return plain + augmented
