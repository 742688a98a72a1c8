"""Row names after a default of the update changes (``seal.knowledge_report.rebase_name`` and
``scripts/retag_results.py``): a stored row keeps saying how it was trained, and only names change."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seal.knowledge_report import default_values, rebase_name

ROOT = Path(__file__).resolve().parents[1]
OLD = {"epochs": 10, "lr": 1e-3, "rank": 16, "alpha": 32.0}
NEW = {**OLD, "epochs": 5}


@pytest.mark.parametrize(("old_name", "new_name"), [
    ("base", "base"), ("passage-in-prompt", "passage-in-prompt"),  # they train nothing
    ("passage", "passage [epochs 10]"), ("rewrite ×3", "rewrite ×3 [epochs 10]"),
    ("passage [epochs 5]", "passage"), ("rewrite [epochs 5, lr 0.0003]", "rewrite [lr 0.0003]"),
    ("SEAL round-2", "SEAL round-2 (rewarded at epochs 10) [epochs 10]"),
    ("SEAL round-1 (rewrite, accuracy)", "SEAL round-1 (rewrite, accuracy, rewarded at epochs 10) [epochs 10]"),
    ("SEAL round-1 (rewrite) ×3", "SEAL round-1 (rewrite, rewarded at epochs 10) ×3 [epochs 10]"),
    ("SEAL round-1 (rewrite) [epochs 5]", "SEAL round-1 (rewrite, rewarded at epochs 10)"),
    ("SEAL round-1 (rewrite, rewarded at epochs 5) [epochs 5]", "SEAL round-1 (rewrite)"),
    ("SEAL round-1 (rewrite, rewarded at epochs 5, lr 0.0003) [lr 0.0003]",
     "SEAL round-1 (rewrite, rewarded at lr 0.0003) [epochs 10, lr 0.0003]"),
])
def test_a_row_is_renamed_by_what_differs_from_the_new_defaults(old_name, new_name):
    assert rebase_name(old_name, OLD, NEW) == new_name
    assert rebase_name(new_name, NEW, NEW) == new_name  # at the defaults it was made with, a name is unchanged


def test_an_unknown_setting_in_a_name_is_an_error():
    with pytest.raises(ValueError, match="unknown update setting 'warmup'"):
        rebase_name("passage [warmup 3]", OLD, NEW)


def test_default_values_are_the_configs():
    from seal.config import SealConfig

    assert default_values() == {"epochs": SealConfig().inner_loop.epochs, "lr": SealConfig().inner_loop.lr,
                                "rank": SealConfig().lora.rank, "alpha": SealConfig().lora.alpha}


def test_retag_renames_rows_keeps_figures_records_it_and_runs_once(tmp_path):
    new_epochs = default_values()["epochs"]
    old_epochs = new_epochs + 5  # stored when the default was another number of epochs
    st = {"accuracy": 0.25, "ci95": [0.1, 0.4], "cells": [], "vs": {"passage": {"diff": 0.1}, "rewrite": {}}}
    d = {"methods": {"base": {"accuracy": 0.0, "vs": {"passage": {"diff": -0.2}}}, "passage": {"accuracy": 0.2},
                     "SEAL round-1 (rewrite)": st},
         "policies": {"SEAL round-1 (rewrite)": "rewrite"}, "manifest": {"command": ["seal"]}}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(d))
    (tmp_path / "broken.json").write_text("{")
    cmd = [sys.executable, str(ROOT / "scripts" / "retag_results.py"), "--old", f"inner_loop.epochs={old_epochs}",
           str(path), str(tmp_path / "broken.json")]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = json.loads(path.read_text())
    e, seal = f"[epochs {old_epochs}]", f"SEAL round-1 (rewrite, rewarded at epochs {old_epochs}) [epochs {old_epochs}]"
    assert set(out["methods"]) == {"base", f"passage {e}", seal}
    # the figures as they were; "vs" "passage" is the passage trained as the row was, whatever its name
    assert out["methods"][seal] == {**st, "vs": {"passage": {"diff": 0.1}, f"rewrite {e}": {}}} and out["methods"]["base"]["vs"] == {"passage": {"diff": -0.2}}
    assert out["policies"] == {seal: f"rewrite {e}"}
    assert out["manifest"]["renamed"]["rows"]["passage"] == f"passage {e}"
    assert out["manifest"]["command"] == ["seal"] and "skip" in r.stdout
    before = path.read_text()
    assert subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).returncode == 0
    assert path.read_text() == before  # a file renamed once is left alone
