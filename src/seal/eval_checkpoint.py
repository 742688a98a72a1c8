"""Pass checkpoints for ``seal eval knowledge``: each finished pass of the single-passage protocol (a seed and
``eval.passages_per_pass`` passages) is saved atomically in ``NAME.passes/`` beside ``--json NAME.json``, so a
run killed at any moment loses at most the pass it was in. ``--resume`` reruns only the passes not saved and
gives the figures an uninterrupted run gives (passes are independent: each seeds its own self-edits and
adapters). The folder's ``run.json`` holds what the passes depend on (config, methods, passages, seeds, policy
weights); resuming another run's folder is refused. The folder is removed once ``NAME.json`` is written::

    seal eval knowledge --limit 40 --json out.json            # killed after 5 of its 10 passes
    seal eval knowledge --limit 40 --json out.json --resume   # runs the other 5
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from seal.evaluate import KnowledgeResult, MethodStats
from seal.io import atomic_write_json


class CheckpointMismatch(ValueError):
    """The checkpoint folder was written by a run with other settings."""


def checkpoint_dir(json_out: Path) -> Path:
    """Where the passes of the run writing ``json_out`` are saved: ``NAME.passes/`` beside it."""
    return json_out.with_name(json_out.stem + ".passes")


class PassCheckpoint:
    """Saved passes of one evaluation run, keyed by the pass index (``EvalPass.index``)."""

    def __init__(self, folder: Path, key: dict[str, Any], resume: bool = False) -> None:
        self.folder = Path(folder)
        self.key = json.loads(json.dumps(key))  # as it reads back from the file
        self.saved_s = 0.0  # wall seconds of the passes loaded from an earlier run
        run = self.folder / "run.json"
        if resume and run.is_file():
            try:
                old = json.loads(run.read_text(encoding="utf-8"))
            except ValueError:
                old = None
            if old != self.key:
                differ = sorted(k for k in set(self.key) | set(old or {}) if (old or {}).get(k) != self.key.get(k))
                raise CheckpointMismatch(f"{self.folder} was saved by a run with other {', '.join(differ)}: "
                                         "delete it or run without --resume")
        elif self.folder.exists():
            shutil.rmtree(self.folder)  # not resuming: an earlier run's passes must not leak into this one
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run, self.key)

    def _path(self, index: int) -> Path:
        return self.folder / f"pass-{index:05d}.json"

    def saved_passes(self) -> int:
        return len(list(self.folder.glob("pass-*.json")))

    def load(self, index: int) -> tuple[KnowledgeResult, list[dict[str, Any]]] | None:
        """The saved (partial result, records) of pass ``index``; None when it did not finish (or is unreadable,
        so it runs again)."""
        try:
            d = json.loads(self._path(index).read_text(encoding="utf-8"))
            part = KnowledgeResult({m: MethodStats(**v) for m, v in d["methods"].items()})
            records = list(d["records"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self.saved_s += float(d.get("wall_s", 0.0))
        return part, records

    def save(self, index: int, part: KnowledgeResult, records: list[dict[str, Any]], wall_s: float) -> None:
        atomic_write_json(self._path(index), {"methods": {m: asdict(st) for m, st in part.methods.items()},
                                              "records": records, "wall_s": wall_s})

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
