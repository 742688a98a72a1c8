#!/usr/bin/env bash
# Catastrophic forgetting on the default model (the paper's Figure 6 setting): N SQuAD dev passages learned one
# after another (offset 1500), every passage seen so far evaluated after each step, for the strategies merge
# (the paper's), replay, routed (one adapter per passage, chosen per question) and accumulate (the latency
# reference), at N = 8 and N = 32. Writes results/forgetting/n{N}-{strategy}.{json,png}, each JSON with its
# manifest, then results/forgetting/summary.json + summary.md (python -m seal.results forgetting).
# Skips a result that already exists (delete it to redo). About 15 min for N = 8 and 60 min for N = 32 on 2 cores.
# SET="k=v ..." adds config overrides; the published results are SET="inner_loop.epochs=10" (recipes/all.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
SEAL=${SEAL:-.venv/bin/seal}
DATA=${DATA:-../shared/data/squad/squad_dev.json}
SIZES=${SIZES:-"8 32"}
STRATEGIES=${STRATEGIES:-"routed merge replay accumulate"}
SET=${SET:-}
SETS=()
for kv in $SET; do SETS+=(--set "$kv"); done
[ -f "$DATA" ] || { echo "error: $DATA not found (the shared SQuAD dev passages)"; exit 1; }
mkdir -p results/forgetting
for n in $SIZES; do
  for s in $STRATEGIES; do
    out=results/forgetting/n$n-$s
    [ -f "$out.json" ] && { echo "have $out.json"; continue; }
    echo "== forgetting N=$n strategy=$s"
    $SEAL eval forgetting --data "$DATA" --offset 1500 --sequence "$n" --strategy "$s" \
        --format implications "${SETS[@]}" --json "$out.json" --plot "$out.png"
  done
done
.venv/bin/python -m seal.results forgetting
