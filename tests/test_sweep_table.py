"""The sweep table (``seal.sweep_report``): each lever's paired differences are computed from the pooled
knowledge files, as the pairs table computes them, and a lever whose rows are missing says so."""

from __future__ import annotations

import json

from seal import results
from seal.evaluate import KnowledgeResult, MethodStats
from seal.sweep_report import SWEEP, sweep_table


def _write(root, name, rows, seeds=(0, 1)):
    d = KnowledgeResult({m: MethodStats(cells=[{"passage": f"p{i}", "seed": s, "correct": c, "n": 5}
                                               for s in seeds for i, c in enumerate(cs)])
                         for m, cs in rows.items()}, 4, 1.0, [f"p{i}" for i in range(4)], list(seeds)).as_dict()
    (root / "knowledge" / f"{name}.json").write_text(json.dumps(d))


def test_sweep_rows_are_computed_from_the_files(tmp_path):
    root = tmp_path / "results"
    (root / "knowledge").mkdir(parents=True)
    _write(root, "single", {"passage": [1, 1, 1, 1], "rewrite": [2, 2, 2, 2]})  # +20 points on every cell
    _write(root, "other", {"implications": [1, 1, 1, 1], "SEAL round-2 (rewrite)": [3, 3, 3, 3]})
    lines = sweep_table(root).splitlines()
    assert len(lines) == 2 + len(SWEEP)
    fmt = next(ln for ln in lines if ln.startswith("| self-edit format, untrained |"))
    assert "rewrite − implications +20.0 [+20.0, +20.0] (8)" in fmt
    assert "self-qa − implications: not measured yet" in fmt
    epochs = next(ln for ln in lines if ln.startswith("| inner-loop epochs"))
    assert "at 5: rewrite − passage +20.0 [+20.0, +20.0] (8)" in epochs
    assert "| not swept |" in next(ln for ln in lines if ln.startswith("| samples per context |"))


def test_every_sweep_pair_names_rows_the_published_files_have():
    methods, _ = results._pooled_methods(results.RESULTS)
    missing = {m for _, _, pairs, _ in SWEEP for _, a, b in pairs for m in (a, b)} - set(methods)
    assert not missing, f"sweep rows name rows no results/knowledge file has: {missing}"
    assert "not measured yet" not in sweep_table(results.RESULTS)
