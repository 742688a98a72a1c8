#!/usr/bin/env bash
# The benchmarks, each printing JSON with its manifest into bench/results/: the inner loop (reference vs seal,
# one at a time vs batched), the server (latency idle/learning, throughput), the routed store's memory and disk
# per document. About 25 min on 2 cores (the reference procedure dominates).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY bench/inner_loop.py --contexts 4 --k 5 --set inner_loop.epochs=10 --json bench/results/cpu-2core.json  # the paper's 10 epochs
$PY bench/serve.py --json bench/results/serve-cpu.json --set inner_loop.epochs=5
$PY bench/routed_store.py --json bench/results/routed-store-cpu.json
