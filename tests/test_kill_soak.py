"""The kill soak (scripts/kill_soak.py) with 3 kills: SIGKILLed and resumed ReST-EM runs on the tiny model end
exactly like an uninterrupted run, and no kill loses more than one inner loop. About 30-60 s on 2 CPU cores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kill_soak.py"


@pytest.mark.slow
def test_kill_soak_three_kills(tiny_model_dir, tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--kills", "3", "--seed", "0",
                           "--model-dir", str(tiny_model_dir), "--work-dir", str(tmp_path / "soak")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True
    assert summary["kills"] == 3 and summary["kills_mid_run"] >= 1
    assert summary["lost_per_kill"]["max"] <= 1 and summary["final_resume_lost"] == 0
    assert summary["records_identical"] and summary["records"] == summary["reference_records"] == 4
    assert summary["duplicate_records"] == 0 and not summary["differing_keys"]
    assert summary["selections_identical"] and summary["metrics_identical"] and summary["policies_identical"]
    assert summary["self_edits_identical"]
    assert len(summary["per_kill"]) == 3
