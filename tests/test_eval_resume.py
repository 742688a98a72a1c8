"""``seal eval knowledge`` saves every finished pass (``seal.eval_checkpoint``): killed by SIGKILL mid-run and
rerun with ``--resume``, it runs only the missing passes and writes the figures and log an uninterrupted run
writes; another run's checkpoint is refused, a run without ``--resume`` starts afresh."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seal import cli
from seal.eval_checkpoint import CheckpointMismatch, PassCheckpoint, checkpoint_dir
from seal.evaluate import KnowledgeResult, MethodStats

SRC = str(Path(__file__).resolve().parents[1] / "src")
SETS = ["--set", "inner_loop.epochs=1", "--set", "self_edit.max_new_tokens=16", "--set", "eval.answer_tokens=4",
        "--set", "eval.passages_per_pass=1"]


def _args(model_dir, out: Path, *more: str) -> list[str]:
    return ["eval", "knowledge", "--limit", "3", "--seeds", "2", "--methods", "base,passage,implications",
            "--model", str(model_dir), *SETS, "--json", str(out), "--log", str(out.with_suffix(".jsonl")), *more]


def _figures(out: Path) -> tuple[dict, list]:
    d = json.loads(out.read_text(encoding="utf-8"))
    cells = {m: v["cells"] for m, v in d["methods"].items()}
    records = [json.loads(ln) for ln in out.with_suffix(".jsonl").read_text(encoding="utf-8").splitlines()]
    return cells, records


def test_killed_run_resumes_to_the_uninterrupted_figures(tmp_path, tiny_model_dir):
    whole = tmp_path / "whole.json"
    r = CliRunner().invoke(cli.app, _args(tiny_model_dir, whole))
    assert r.exit_code == 0, (r.output, r.exception)
    assert not checkpoint_dir(whole).exists()  # removed once the figures are written
    out = tmp_path / "killed.json"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "seal.cli", *_args(tiny_model_dir, out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    folder = checkpoint_dir(out)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(folder.glob("pass-*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = len(list(folder.glob("pass-*.json")))
    assert 2 <= saved < 6 and not out.exists(), "the kill should land mid-run (6 passes: 3 passages x 2 seeds)"
    r = CliRunner().invoke(cli.app, _args(tiny_model_dir, out, "--resume"))
    assert r.exit_code == 0, (r.output, r.exception)
    assert f"resuming: {saved} finished pass(es)" in r.output
    assert _figures(out) == _figures(whole)
    assert json.loads(out.read_text())["manifest"]["resumed_s"] > 0 and not folder.exists()


def test_another_runs_checkpoint_is_refused_and_a_fresh_run_clears_it(tmp_path):
    folder = tmp_path / "x.passes"
    cp = PassCheckpoint(folder, {"methods": ["base"], "seeds": [0]})
    part = KnowledgeResult({"base": MethodStats(cells=[{"passage": "p", "seed": 0, "correct": 1, "n": 2}])})
    cp.save(0, part, [{"passage": "p"}], wall_s=1.5)
    with pytest.raises(CheckpointMismatch, match="other seeds"):
        PassCheckpoint(folder, {"methods": ["base"], "seeds": [1]}, resume=True)
    again = PassCheckpoint(folder, {"methods": ["base"], "seeds": [0]}, resume=True)
    loaded, records = again.load(0)
    assert loaded.methods["base"].cells == part.methods["base"].cells and records == [{"passage": "p"}]
    assert again.saved_s == 1.5 and again.load(1) is None
    (folder / "pass-00001.json").write_text('{"methods": ')  # torn by a crash: that pass runs again
    assert again.load(1) is None
    PassCheckpoint(folder, {"methods": ["base"], "seeds": [1]})  # no --resume: starts afresh
    assert sorted(p.name for p in folder.iterdir()) == ["run.json"]


def test_resume_needs_json(tmp_path, tiny_model_dir):
    r = CliRunner().invoke(cli.app, ["eval", "knowledge", "--limit", "1", "--model", str(tiny_model_dir), "--resume"])
    assert r.exit_code == 1 and "--resume needs --json" in " ".join(r.output.split())
