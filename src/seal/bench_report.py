"""The inner-loop benchmark's README tables, generated from ``bench/results/*.json`` (written by
``python bench/inner_loop.py --json ...``): the reference procedure, seal one self-edit at a time and seal
batched, per self-edit, with the speed-ups, evaluation gain and training FLOP/s the same file records. Rendered
into the README blocks ``results:bench_cpu`` and ``results:bench_h200`` by ``python -m seal.results readme``::

    python -m seal.results bench_cpu
"""

from __future__ import annotations

import json
from pathlib import Path


def _f(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def _x(r: float) -> str:
    return f"{r:.0f}×" if r >= 10 else f"{r:.1f}×"


def _pct(u: float) -> str:
    return f"{100 * u:.0f} %" if u >= 0.1 else f"{100 * u:.1f} %"


def inner_loop_table(path: Path) -> str:
    """The (a) reference / (b) one at a time / (c) batched table of one ``bench/inner_loop.py`` JSON, and a line
    of the ratios it holds."""
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"_No benchmark at `{path.name}` yet: run `bash recipes/benchmarks.sh`._"
    per_pass = d.get("contexts_per_pass")
    batched = (f"(c) seal, K = {d['k']} × {per_pass} passages per pass (`auto` picked {d['batched_train_engine']})"
               if per_pass else f"(c) seal, K = {d['k']} ({d['batched_train_engine']})")
    lines = [f"| | s / self-edit (train + eval) | eval s / edit | accuracy gain ({d['edits']} edits) |",
             "|---|---:|---:|---:|",
             f"| (a) reference | {_f(d['reference_s_per_edit'])} (scaled from 1 epoch) | – | "
             f"{d['reference_gain']:.3f} |",
             f"| (b) seal, one at a time | {_f(d['single_s_per_edit'])} | {d['single_eval_s']:.2f} | "
             f"{d['single_gain']:.3f} |",
             f"| {batched} | **{_f(d['batched_s_per_edit'])}** | **{d['batched_eval_s']:.2f}** | "
             f"{d['batched_gain']:.3f} |"]
    ratios = [f"(c) is **{_x(d['speedup_batched_vs_reference'])}** faster than (a) and "
              f"{_x(d['single_s_per_edit'] / d['batched_s_per_edit'])} faster than (b); (b) is "
              f"{_x(d['speedup_single_vs_reference'])} faster than (a)",
              f"the other engine ({d['other_engine']}) took {_f(d['other_engine_s_per_edit'])} s per edit for a "
              f"gain of {d['other_engine_gain']:.3f}",
              f"batched evaluation is **{_x(d['eval_speedup'])}** faster per edit than one adapter at a time"
              + (f" ({_x(d['per_context_eval_speedup'])} answering one passage's adapters per batch)"
                 if "per_context_eval_speedup" in d else ""),
              f"training at {d['batched_train_gflops']:.0f} GFLOP/s for (c), **{_pct(d['flops_utilisation'])}**"
              f" of the {_f(d['matmul_gflops'])} GFLOP/s measured for {d['matmul_dtype']} matmuls in the same run; "
              f"(b) {d['single_train_gflops']:.0f} GFLOP/s ({_pct(d['single_flops_utilisation'])})"]
    return "\n".join(lines) + "\n\n" + "; ".join(ratios) + "."


def bench_table(root: Path, name: str) -> str:
    """``inner_loop_table`` of ``bench/results/NAME.json`` in the tree whose ``results/`` folder is ``root``."""
    return inner_loop_table(root.parent / "bench" / "results" / f"{name}.json")
