"""Manifests name the command, commit, config, seeds, data and machine of a result."""

from __future__ import annotations

import subprocess
from pathlib import Path

from seal.manifest import manifest


def test_manifest_records_how_a_result_was_made():
    m = manifest(command=["seal", "eval", "knowledge", "--limit", "2"], config={"lr": 1e-3}, seeds=[0, 1],
                 data=["squad_dev.json[0:2]"], wall_s=1.234)
    assert m["command"] == "seal eval knowledge --limit 2"
    assert m["config"] == {"lr": 1e-3} and m["seeds"] == [0, 1] and m["data"] == ["squad_dev.json[0:2]"]
    assert m["wall_s"] == 1.23 and m["machine"]["torch"] and m["machine"]["cpu"] and m["machine"]["cores"] >= 1
    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if head.returncode == 0:  # (a source tree outside git has no commit to name)
        assert m["commit"].split("+")[0] == head.stdout.strip()
