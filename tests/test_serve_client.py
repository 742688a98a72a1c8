"""``seal.serve.client.ServeProcess`` and the support-bot example on the tiny model, through a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from seal.serve.client import ServeProcess

ROOT = Path(__file__).resolve().parents[1]
SETS = ["inner_loop.epochs=1", "self_edit.max_new_tokens=16", "eval.answer_tokens=4", "model.threads=1"]


def test_serve_process_starts_answers_and_stops(tiny_model_dir, tmp_path):
    srv = ServeProcess(tmp_path / "store", key="k", model=str(tiny_model_dir), sets=SETS, startup_s=120)
    with srv:
        status, health = srv.call("GET", "/health")
        assert status == 200 and health["version"] == 0
        assert srv.call("GET", "/v1/versions")[0] == 200
        srv.key = "wrong"
        assert srv.call("GET", "/v1/versions")[0] == 401  # the key is checked
    assert srv.proc.poll() is not None  # stopped by its pid


def test_support_bot_example_runs_end_to_end(tiny_model_dir, tmp_path):
    out = tmp_path / "bot.json"
    cmd = [sys.executable, str(ROOT / "examples" / "support_bot.py"), "--serve", "--model", str(tiny_model_dir),
           "--json", str(out), *[x for s in SETS for x in ("--set", s)]]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    d = json.loads(out.read_text())
    assert d["n_questions"] == 12 and len(d["rows"]) == 12 and all(j["status"] == "done" for j in d["jobs"])
    assert "right before:" in r.stdout and d["manifest"]["command"].startswith("python examples/support_bot.py")
