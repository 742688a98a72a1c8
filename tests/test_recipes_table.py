"""The recipes table (``seal.recipes_report``): every step of ``recipes/all.sh`` names the files it writes, and
the table sums the wall times their manifests record, marking steps without files as not run."""

from __future__ import annotations

import json
import subprocess

from seal import results
from seal.recipes_report import all_steps, recipes_table, step_rows


def test_every_step_of_all_sh_names_its_outputs_and_is_parsed():
    script = results.ROOT / "recipes" / "all.sh"
    text = script.read_text(encoding="utf-8")
    steps = all_steps(script)
    assert len(steps) == text.count('\nstep "') + text.count("\nstep \\"), "a step the parser does not see"
    assert len(steps) >= 20 and all(outs for _, outs in steps)
    for name, outs in steps:
        assert all(o.startswith(("results/", "bench/results/")) for o in outs), (name, outs)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def _tree(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "all.sh").write_text(
        'step() { shift 2; "$@"; }\n'
        'step "one" "results/a.json" true\n'
        'step "two, with\\n continuation" \\\n    "results/b-*.json results/c.json" true\n'
        'step "never" "results/z.json" true\n'.replace("\\n", ""))
    res = tmp_path / "results"
    res.mkdir()
    machine = {"cpu": "AMD EPYC", "cores": 2}
    (res / "a.json").write_text(json.dumps({"manifest": {"wall_s": 7200.0, "machine": machine,
                                                         "created_at": "2026-12-01T10:00:00+00:00"}}))
    (res / "b-1.json").write_text(json.dumps({"manifest": {"wall_s": 60.0, "machine": {"cpu": "Intel(R) Xeon(R)"},
                                                           "created_at": "2026-12-03T10:00:00+00:00"}}))
    (res / "c.json").write_text(json.dumps({"rows": []}))  # its manifest beside it, without a wall time
    (res / "c.manifest.json").write_text(json.dumps({"committed_at": "2026-11-30T00:00:00+00:00"}))
    return res


def test_rows_sum_manifest_wall_times_and_mark_missing_steps(tmp_path):
    res = _tree(tmp_path)
    rows = step_rows(tmp_path)
    assert [r["step"] for r in rows] == ["one", "two, with continuation", "never"]
    assert rows[0]["wall_s"] == 7200.0 and rows[0]["machines"] == ["AMD EPYC"]
    assert rows[1]["files"] == ["results/b-1.json", "results/c.json"]
    assert rows[1]["wall_s"] == 60.0 and rows[1]["untimed"] == 1 and rows[1]["made"] == "2026-12-03"
    assert rows[2]["files"] == []
    table = recipes_table(res).splitlines()
    assert "| 2.0 h |" in table[2] and "1 min (1 of 2 files without one)" in table[3]
    assert "| never | `results/z.json` | not run |" in table[4]
    assert "all 2 of 3 steps that have files" in table[5] and "2.0 h" in table[5]
    assert recipes_table(tmp_path / "nowhere" / "results") == "_no recipes/all.sh_"
