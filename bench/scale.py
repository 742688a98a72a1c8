"""E-step throughput on one machine: the local executor vs Ray with 1 and 2 actors, side by side in one run.

One ReST-EM round (``--contexts`` SQuAD dev passages x ``--samples`` self-edits, one context per pass, the
default model and config otherwise) is run three times from scratch: ``local`` (this process, all cores),
``ray-1`` (one actor with all cores) and ``ray-2`` (two actors with half the cores each). Reported per
setting: seconds per self-edit of the E-step (wall time of the round's passes divided by the self-edits) and
whether the rewards equal the local run's; plus Ray's per-call overhead (an empty actor call's round trip, in
ms). On 2 cores parity is the expected result: two actors split the same two cores that one process uses
(and each loads its own copy of the model). Prints JSON::

    .venv/bin/python bench/scale.py --json bench/results/scale-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "squad_dev.json"


class _Timed:
    """Wraps an executor: the wall time from the first pass submitted to the last result."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, 0.0

    def set_policy(self, tensors):
        self.inner.set_policy(tensors)

    def run(self, jobs, on_texts=None):
        t = time.perf_counter()
        yield from self.inner.run(jobs, on_texts)
        self.seconds += time.perf_counter() - t

    def close(self):
        self.inner.close()


def run_one(kind: str, workers: int, args, cores: int) -> dict:
    from seal.config import SealConfig
    from seal.domains.knowledge import KnowledgeDomain, load_passages
    from seal.engine import Seal
    from seal.executor import LocalExecutor
    from seal.io import read_jsonl
    from seal.rest_em import train

    threads = cores if kind == "local" else max(1, cores // workers)
    cfg = SealConfig().override(["rest_em.rounds=1", f"rest_em.contexts={args.contexts}",
                                 f"rest_em.samples={args.samples}", "rest_em.contexts_per_pass=1",
                                 f"model.threads={threads}", *args.set])
    passages = load_passages(args.data)[:200]
    seal = Seal.load(cfg, slots=1 + cfg.rest_em.samples)
    dom = KnowledgeDomain.from_config(cfg)
    if kind == "local":
        ex = _Timed(LocalExecutor(seal, dom))
    else:
        from seal.executor_ray import RayExecutor, overhead_ms

        t = time.perf_counter()
        inner = RayExecutor(cfg, dom, workers=workers, threads=threads)
        startup = time.perf_counter() - t
        ex = _Timed(inner)
    with tempfile.TemporaryDirectory() as tmp:
        train(seal, dom, passages, Path(tmp) / "run", executor=ex)
        recs = sorted(read_jsonl(Path(tmp) / "run" / "samples.jsonl"), key=lambda r: (r["context"], r["sample"]))
    out = {"executor": kind, "workers": workers, "threads_each": threads, "self_edits": len(recs),
           "e_step_s": ex.seconds, "s_per_self_edit": ex.seconds / max(len(recs), 1),
           "rewards": [r["reward"] for r in recs]}
    if kind == "ray":
        out["startup_s"] = startup
        out["overhead_ms_per_call"] = overhead_ms(inner)
    ex.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(SHARED))
    ap.add_argument("--contexts", type=int, default=4)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], help="config overrides (section.key=value)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from seal.io import atomic_write_json
    from seal.manifest import manifest

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    t0 = time.perf_counter()
    rows = [run_one("local", 1, args, cores), run_one("ray", 1, args, cores), run_one("ray", 2, args, cores)]
    local, local_rewards = rows[0], rows[0]["rewards"]
    for r in rows:
        r["ratio_to_local"] = r["s_per_self_edit"] / local["s_per_self_edit"]
        r["rewards_equal_local"] = r.pop("rewards") == local_rewards
    result = {"cores": cores, "rows": rows, "manifest": manifest(
        command=[sys.executable, *sys.argv], config=vars(args), seeds=[0], data=[f"{args.data}[0:200]"],
        wall_s=time.perf_counter() - t0)}
    print(json.dumps(result, indent=2))
    if args.json:
        atomic_write_json(args.json, result)


if __name__ == "__main__":
    main()
