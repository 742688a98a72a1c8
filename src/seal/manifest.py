"""Manifests: how a result file was made (command, git commit, config, seeds, data ids, machine, wall time).

Every figure seal writes for a person to cite carries one, as a ``manifest`` key in its JSON::

    result = {"kills": 10, ...}
    result["manifest"] = manifest(command=sys.argv, config=vars(args), seeds=[0], data=["passages.json[0:4]"],
                                  wall_s=79.1)
    atomic_write_json("results/kill_soak.json", result)
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# what a result file's figures do not depend on: other results and prose (a recipe that writes several files
# in turn, or a README regenerated between two runs, leaves the code it ran clean)
NOT_CODE = (":(exclude)results", ":(exclude)*.md")
_started: dict[str, str | None] = {}


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The checked-out commit, with ``+dirty`` when tracked files other than ``results/`` and Markdown have
    uncommitted changes; None outside git."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *NOT_CODE],
                               cwd=top, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def record_start() -> str | None:
    """Note the commit now, as the one a long command runs (``seal`` calls this when it starts): a manifest
    written at the end names the code that was loaded, not a commit made while the command ran."""
    if "commit" not in _started:
        _started["commit"] = git_commit()
    return _started["commit"]


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (e.g. a policy's adapter weights, so a manifest names the weights it used)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    import torch

    info = {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def manifest(*, command: Sequence[str] | str, config: Any = None, seeds: Sequence[int] = (),
             data: Sequence[str] = (), wall_s: float | None = None, **extra: Any) -> dict[str, Any]:
    cmd = command if isinstance(command, str) else shlex.join(str(c) for c in command)
    commit = _started["commit"] if "commit" in _started else git_commit()
    return {"command": cmd, "commit": commit, "config": config, "seeds": list(seeds), "data": list(data),
            "machine": machine(), "wall_s": None if wall_s is None else round(wall_s, 2),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"), **extra}
