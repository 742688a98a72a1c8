"""Benchmark the inner loop: reference procedure vs seal one-at-a-time vs seal K candidates; prints JSON.

    python bench/inner_loop.py                    # default model, 4 SQuAD contexts (or the samples) x K=5
    python bench/inner_loop.py --contexts 4 --repeats 2 --json bench/results/cpu.json
    python bench/inner_loop.py --no-reference     # skip the (very slow) reference procedure

See ``seal.benchmark`` for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import sys

from seal.benchmark import run
from seal.config import SealConfig
from seal.io import atomic_write_json


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contexts", type=int, default=4)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None, help="SQuAD-format JSON (default: ../shared squad_dev or samples)")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. inner_loop.epochs=5")
    ap.add_argument("--json", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    import time

    from seal.manifest import manifest

    cfg = SealConfig().override(args.set) if args.set else SealConfig()
    t0 = time.perf_counter()
    result = run(args.contexts, args.k, args.repeats, args.seed, args.data, cfg, reference=not args.no_reference)
    result["manifest"] = manifest(command=[sys.executable, *sys.argv], config={"args": vars(args), "seal": cfg.to_dict()},
                                  seeds=[args.seed], data=[str(args.data or "default")],
                                  wall_s=time.perf_counter() - t0)
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if args.json:
        atomic_write_json(args.json, result)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
