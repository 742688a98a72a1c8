"""``seal train --domain`` / ``seal eval --domain`` on the tiny model: a plug-in domain from a file trained
for one round, the codebase domain evaluated, a template, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from seal import cli

ROOT = Path(__file__).resolve().parents[1]
SETS = ["--set", "inner_loop.epochs=1", "--set", "self_edit.max_new_tokens=24", "--set", "eval.answer_tokens=6"]


def test_example_plugin_domain_trains_one_round_from_the_cli(tiny_model_dir, tmp_path):
    run = tmp_path / "brevity"
    r = CliRunner().invoke(cli.app, [
        "train", "--domain", f"{ROOT}/examples/brevity_domain.py:BrevityDomain",
        "--data", str(ROOT / "examples" / "brevity_topics.json"), "--rounds", "1", "--contexts", "2",
        "--samples", "2", "--out", str(run), "--model", str(tiny_model_dir), *SETS])
    assert r.exit_code == 0, r.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["domain"] == "brevity" and len(cfg["context_ids"]) == 8
    metrics = json.loads((run / "round-1" / "metrics.json").read_text())
    assert metrics["domain"] == "brevity" and len(metrics["rewards"]) + metrics["failed_edits"] == 4
    recs = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == 4 and all(r["accuracy"] is None or 0 <= r["accuracy"] <= 1 for r in recs)
    assert (run / "round-1" / "policy" / "adapter_model.safetensors").is_file() and (run / "report.md").is_file()


def test_codebase_domain_evaluates_from_the_cli(tiny_model_dir, tmp_path):
    out = tmp_path / "code.json"
    r = CliRunner().invoke(cli.app, [
        "eval", "--domain", "codebase", "--data", str(ROOT / "src/seal/samples/codebase/tidepool"), "--limit", "2",
        "--methods", "base,passage,notes", "--json", str(out), "--model", str(tiny_model_dir), *SETS])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert set(d["methods"]) == {"base", "passage", "notes"} and d["n_items"] > 0 and len(d["context_ids"]) == 2
    assert all(0 <= m["score"] <= 1 and len(m["ci95"]) == 2 for m in d["methods"].values())
    assert d["manifest"]["command"].startswith("seal eval --domain codebase") and d["manifest"]["commit"]


def test_knowledge_template_from_the_cli(tiny_model_dir, tmp_path):
    run = tmp_path / "tpl"
    r = CliRunner().invoke(cli.app, [
        "train", "--domain", "knowledge", "--template", str(ROOT / "examples/templates/study_notes.toml"),
        "--rounds", "1", "--contexts", "1", "--samples", "1", "--out", str(run),
        "--data", str(ROOT / "src/seal/samples/passages.json"), "--model", str(tiny_model_dir), *SETS])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "config.json").read_text())["format"] == "template"


def test_domain_errors_are_one_line(monkeypatch, capsys, tmp_path):
    import sys

    import pytest

    for args, fragment in ((["train", "--domain", "nope", "--out", str(tmp_path / "r")], "domain 'nope'"),
                           (["eval", "--domain", "knowledge"], "--data PATH is required"),
                           (["train", "--domain", "no/such/file.py:X", "--out", str(tmp_path / "r")], "no/such")):
        monkeypatch.setattr(sys, "argv", ["seal", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            cli.main()
        err = capsys.readouterr().err
        assert exc.value.code == 1 and err.startswith("error: ") and "Traceback" not in err, err
        assert fragment in err, err
