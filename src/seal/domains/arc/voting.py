"""Prediction with test-time augmentation, voting, and ARC's pass@2 success test.

For each test input the model answers several augmented versions of the task (``augmented_queries``: the same
transform on the demonstrations and the query). Each answer is decoded and mapped back to the original frame
(``invert_answer``), and the distinct grids are ranked by how many augmentations produced them (``vote``).
A task counts as solved when every test output is among its first two attempts (``is_solved``)::

    queries = augmented_queries(task, [IDENTITY, *transforms_for({"basic"})])
    answers = generate([q.prompt for q in queries])                     # the model, elsewhere
    per_test = [[] for _ in task.test_inputs]
    for q, text in zip(queries, answers):
        per_test[q.test_index].append((invert_answer(text, q.transform), q.transform))
    solved = is_solved(task, [vote(c, attempts=2) for c in per_test])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .augment import Transform, apply_to_task, get_transform
from .grids import Grid, extract_grid, format_task_prompt
from .tasks import ArcTask


@dataclass(frozen=True)
class Query:
    """One augmented prediction prompt for test input ``test_index``; ``transform`` is the transform's name."""

    test_index: int
    transform: str
    prompt: str


def augmented_queries(task: ArcTask, transforms: Sequence[Transform]) -> list[Query]:
    """Prompts for every (transform, test input); transforms whose grids would exceed 30x30 are skipped."""
    queries = []
    for t in transforms:
        moved = apply_to_task(task, t)
        if moved is None:
            continue
        for i, test_input in enumerate(moved.test_inputs):
            queries.append(Query(i, t.name, format_task_prompt(moved.train, test_input)))
    return queries


def invert_answer(text: str, transform: str | Transform) -> Grid | None:
    """Decode a model's answer (``grids.extract_grid``) and map it back through ``transform``; ``None`` if invalid."""
    t = get_transform(transform) if isinstance(transform, str) else transform
    grid = extract_grid(text)
    return None if grid is None else t.invert(grid)


def vote(candidates: Sequence[tuple[Grid | None, str]], attempts: int = 2) -> list[Grid]:
    """The ``attempts`` most frequent distinct grids (``None`` ignored); ties go to the first seen."""
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    counts: dict[Grid, int] = {}
    for grid, _name in candidates:
        if grid is not None:
            g = tuple(tuple(row) for row in grid)
            counts[g] = counts.get(g, 0) + 1
    order = {g: i for i, g in enumerate(counts)}  # dicts keep first-insertion order
    ranked = sorted(counts, key=lambda g: (-counts[g], order[g]))
    return ranked[:attempts]


def is_solved(task: ArcTask, attempts_per_test: Sequence[Sequence[Grid]], *, max_attempts: int = 2) -> bool:
    """pass@2: every test output equals one of the first ``max_attempts`` attempts for that test input.

    ``ValueError`` if the task has no known test outputs or the number of attempt lists is wrong.
    """
    if task.test_outputs is None:
        raise ValueError(f"task {task.task_id} has no test outputs to check against")
    if len(attempts_per_test) != len(task.test_outputs):
        raise ValueError(f"task {task.task_id}: {len(task.test_outputs)} test inputs but "
                         f"{len(attempts_per_test)} attempt lists")
    for expected, attempts in zip(task.test_outputs, attempts_per_test, strict=True):
        tried = [tuple(tuple(row) for row in g) for g in list(attempts)[:max_attempts] if g is not None]
        if expected not in tried:
            return False
    return True
