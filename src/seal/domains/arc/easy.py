"""EASY ARC-format tasks: a small demonstration set with simple rules. This is NOT ARC.

Real ARC tasks are far beyond a 135M-parameter model. These tasks keep the ARC format (so the whole SEAL ARC
pipeline runs on them unchanged) but use rules a small model can pick up by test-time training, on grids of
2..5 cells a side, so a prompt stays at a few hundred tokens:

    recolour-A-B   every cell of colour A becomes B           fill-C     every background (0) cell becomes C
    flip_h, flip_v, rot90, rot180, transpose                  the geometric transform of the whole grid
    upscale_2x     every cell becomes a 2x2 block             tile_1x2   the grid twice, side by side

Task ``i`` uses rule ``rules[i % len(rules)]`` (parameters drawn at random) and its id names the rule, e.g.
``easy-0-003-recolour-2-7``; ``rule_of(task_id)`` returns that rule. Task ``i`` depends only on ``seed`` and ``i``,
so a longer list extends a shorter one. Inputs are chosen so that each example shows the rule (the output
differs from the input, the recoloured colour is present, ...).

    tasks = generate_easy_tasks(20, seed=0)
    save_tasks_json(tasks, "easy_challenges.json", "easy_solutions.json")
"""

from __future__ import annotations

import random

from .augment import REGISTRY
from .grids import Grid
from .tasks import ArcTask, Example, save_tasks_json

__all__ = ["EASY_RULES", "apply_rule", "generate_easy_tasks", "rule_of", "save_tasks_json"]

EASY_RULES: tuple[str, ...] = (
    "recolour", "flip_h", "rot90", "fill", "flip_v", "upscale_2x", "transpose", "rot180", "tile_1x2",
)
_GEOMETRIC = ("flip_h", "flip_v", "rot90", "rot180", "transpose", "upscale_2x", "tile_1x2")
_MAX_TRIES = 200


def rule_of(task_id: str) -> str:
    """The rule in an easy task id: ``"easy-0-003-recolour-2-7"`` -> ``"recolour-2-7"``."""
    parts = task_id.split("-", 3)
    if len(parts) != 4 or parts[0] != "easy":
        raise ValueError(f"not an easy task id: {task_id!r}")
    return parts[3]


def apply_rule(rule: str, grid: Grid) -> Grid:
    """Apply a rule named as in a task id (``"recolour-2-7"``, ``"fill-3"``, ``"rot90"``, ...)."""
    name, *args = rule.split("-")
    if name == "recolour" and len(args) == 2:
        a, b = int(args[0]), int(args[1])
        return tuple(tuple(b if v == a else v for v in row) for row in grid)
    if name == "fill" and len(args) == 1:
        c = int(args[0])
        return tuple(tuple(c if v == 0 else v for v in row) for row in grid)
    if name in _GEOMETRIC and not args:
        return REGISTRY[name].apply(grid)
    raise ValueError(f"unknown easy rule {rule!r}")


def _random_grid(rng: random.Random, palette: list[int], min_side: int, max_side: int) -> Grid:
    h, w = rng.randint(min_side, max_side), rng.randint(min_side, max_side)
    return tuple(tuple(0 if rng.random() < 0.4 else rng.choice(palette) for _ in range(w)) for _ in range(h))


def _make_task(task_id_prefix: str, rule_name: str, rng: random.Random, *, min_side: int, max_side: int,
               n_train: int, n_test: int) -> ArcTask:
    colours = list(range(1, 10))
    rng.shuffle(colours)
    if rule_name == "recolour":
        a, b = colours[0], colours[1]
        palette = [a, *colours[2: 2 + rng.randint(0, 2)]]
        rule = f"recolour-{a}-{b}"

        def shows(g: Grid) -> bool:
            return any(a in row for row in g)
    elif rule_name == "fill":
        c = colours[0]
        palette = colours[1: 2 + rng.randint(0, 2)]
        rule = f"fill-{c}"

        def shows(g: Grid) -> bool:
            return any(0 in row for row in g)
    else:
        palette = colours[: 2 + rng.randint(0, 1)]
        rule = rule_name

        def shows(g: Grid) -> bool:
            return apply_rule(rule, g) != g

    inputs: list[Grid] = []
    for _ in range(n_train + n_test):
        for _attempt in range(_MAX_TRIES):
            g = _random_grid(rng, palette, min_side, max_side)
            if shows(g) and g not in inputs:
                inputs.append(g)
                break
        else:  # pragma: no cover - only with degenerate sizes such as 1x1 grids
            raise ValueError(f"could not draw {n_train + n_test} distinct grids for rule {rule} "
                             f"with sides {min_side}..{max_side}")
    outputs = [apply_rule(rule, g) for g in inputs]
    return ArcTask(
        f"{task_id_prefix}-{rule}",
        tuple(Example(i, o) for i, o in zip(inputs[:n_train], outputs[:n_train], strict=True)),
        tuple(inputs[n_train:]),
        tuple(outputs[n_train:]),
    )


def generate_easy_tasks(n: int, *, seed: int, min_side: int = 2, max_side: int = 5, n_train: int = 3,
                        n_test: int = 1, rules: tuple[str, ...] = EASY_RULES) -> list[ArcTask]:
    """``n`` easy tasks with their solutions; deterministic per ``seed``."""
    if n < 0 or seed < 0:
        raise ValueError(f"n and seed must be >= 0, got n={n}, seed={seed}")
    if not 1 <= min_side <= max_side <= 15:
        raise ValueError(f"need 1 <= min_side <= max_side <= 15 (outputs may double), got {min_side}, {max_side}")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be >= 1, got {n_train}, {n_test}")
    unknown = [r for r in rules if r not in EASY_RULES]
    if unknown or not rules:
        raise ValueError(f"unknown or no rules {unknown}; choose from {list(EASY_RULES)}")
    tasks = []
    for i in range(n):
        rng = random.Random(f"easy:{seed}:{i}")
        tasks.append(_make_task(f"easy-{seed}-{i:03d}", rules[i % len(rules)], rng, min_side=min_side,
                                max_side=max_side, n_train=n_train, n_test=n_test))
    return tasks
