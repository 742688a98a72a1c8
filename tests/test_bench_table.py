"""The benchmark tables (``seal.bench_report``) show what ``bench/inner_loop.py`` wrote, ratios included."""

from __future__ import annotations

import json

from seal.bench_report import bench_table, inner_loop_table

BENCH = {"k": 5, "edits": 20, "contexts_per_pass": 4, "batched_train_engine": "batched", "reference_s_per_edit": 800.0,
         "reference_gain": 0.1, "single_s_per_edit": 12.0, "single_eval_s": 1.2, "single_gain": 0.2,
         "batched_s_per_edit": 8.0, "batched_eval_s": 0.4, "batched_gain": 0.25, "speedup_batched_vs_reference": 100.0,
         "speedup_single_vs_reference": 800 / 12, "other_engine": "sequential", "other_engine_s_per_edit": 10.0,
         "other_engine_gain": 0.25, "eval_speedup": 3.0, "batched_train_gflops": 240.0, "flops_utilisation": 0.8,
         "matmul_gflops": 300.0, "matmul_dtype": "float32", "single_train_gflops": 150.0,
         "single_flops_utilisation": 0.5}


def test_inner_loop_table_reads_the_file(tmp_path):
    path = tmp_path / "bench" / "results" / "x.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(BENCH))
    lines = bench_table(tmp_path / "results", "x").splitlines()
    assert lines[2] == "| (a) reference | 800 (scaled from 1 epoch) | – | 0.100 |"
    assert lines[3] == "| (b) seal, one at a time | 12 | 1.20 | 0.200 |"
    assert lines[4].startswith("| (c) seal, K = 5 × 4 passages per pass") and "**8** | **0.40** | 0.250 |" in lines[4]
    assert "(c) is **100×** faster than (a) and 1.5× faster than (b); (b) is 67× faster" in lines[6]
    assert "**80 %** of the 300 GFLOP/s" in lines[6] and "per_context" not in lines[6]
    assert "No benchmark" in inner_loop_table(tmp_path / "missing.json")
