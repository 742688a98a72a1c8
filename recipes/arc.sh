#!/usr/bin/env bash
# ARC on the default model: the easy demo set (not ARC: small generated tasks a 135M model can solve on a CPU)
# with ICL / TTT + self-edit without RL / oracle, one ReST-EM round on 4 other easy tasks and the SEAL row, and
# ICL / oracle on 3 tasks of the shared ARC evaluation set. Writes results/arc/{easy,easy-seal,shared}.json,
# each with its manifest (95 % intervals over tasks). About 40 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
SEAL=${SEAL:-.venv/bin/seal}
RUN=${RUN:-runs/arc-easy}
mkdir -p results/arc
$SEAL eval arc --easy 6 --json results/arc/easy.json
[ -f "$RUN/round-1/metrics.json" ] || $SEAL train arc --easy 4 --rounds 1 --samples 3 --out "$RUN" \
    $([ -f "$RUN/config.json" ] && echo --resume)
$SEAL eval arc --easy 6 --rows seal --policy "$RUN" --json results/arc/easy-seal.json
if [ -d ../shared/data/arc ]; then
  $SEAL eval arc --data ../shared/data/arc --split evaluation --limit 3 --rows icl,oracle --json results/arc/shared.json
fi
