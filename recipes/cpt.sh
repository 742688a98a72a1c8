#!/usr/bin/env bash
# The multi-passage (continued pretraining) setting: one adapter per method trained on the self-edits of N
# passages at once, then asked all their questions (the paper uses N = 200). Default N = 50, offset 1100
# (disjoint from recipes/knowledge.sh and recipes/rest_em.sh). Writes results/knowledge/cpt-n{N}.json with its
# manifest. About 40 s per passage on 2 cores (N = 50: ~35 min).
set -euo pipefail
cd "$(dirname "$0")/.."
SEAL=${SEAL:-.venv/bin/seal}
DATA=${DATA:-../shared/data/squad/squad_dev.json}
N=${N:-50}
[ -f "$DATA" ] || { echo "error: $DATA not found (the shared SQuAD dev passages)"; exit 1; }
mkdir -p results/knowledge
$SEAL eval knowledge --data "$DATA" --mode cpt --offset 1100 --limit "$N" \
    --methods base,passage-in-prompt,passage,implications --json "results/knowledge/cpt-n$N.json"
