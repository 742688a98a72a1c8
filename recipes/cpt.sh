#!/usr/bin/env bash
# The multi-passage (continued pretraining) setting: one adapter per method trained on the self-edits of N
# passages at once, then asked all their questions (the paper uses N = 200). Default N = 50, offset 1100
# (disjoint from recipes/knowledge.sh's 1000..1079 and recipes/rest_em.sh's 0..199). Methods: base, open book,
# passage, the untrained implications and rewrite self-edits, and the SEAL policy of round ROUND of $RUN
# (recipes/rest_em.sh with FORMAT=rewrite; skipped when that run is absent). Writes
# results/knowledge/cpt-n{N}.json with its manifest; the README table is regenerated. Measured on 2 cores:
# N = 50 took 4552 s at 10 epochs (25 min writing, 51 min training the four adapters and answering), linear in
# N; at the defaults (5 epochs) with base, passage, rewrite and SEAL 2889 s on the AMD machine.
# SET="k=v ..." adds config overrides; the published cpt-n50.json is SET="inner_loop.epochs=10" (recipes/all.sh).
# METHODS (default: base,passage-in-prompt,passage,implications,rewrite; the SEAL row is added to them) and OUT
# (default results/knowledge/cpt-n{N}.json) pick the rows and the file, e.g. cpt-n50-epochs5.json at the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
SEAL=${SEAL:-.venv/bin/seal}
DATA=${DATA:-../shared/data/squad/squad_dev.json}
N=${N:-50}
RUN=${RUN:-runs/rest-em-rewrite}
ROUND=${ROUND:-2}
SET=${SET:-}
METHODS=${METHODS:-base,passage-in-prompt,passage,implications,rewrite}
OUT=${OUT:-results/knowledge/cpt-n$N.json}
SETS=()
for kv in $SET; do SETS+=(--set "$kv"); done
[ -f "$DATA" ] || { echo "error: $DATA not found (the shared SQuAD dev passages)"; exit 1; }
mkdir -p "$(dirname "$OUT")"
POLICY=()
[ -d "$RUN/round-$ROUND/policy" ] && POLICY=(--policy "$RUN/round-$ROUND") \
    || echo "note: $RUN/round-$ROUND/policy not found: no SEAL row"
$SEAL eval knowledge --data "$DATA" --mode cpt --offset 1100 --limit "$N" \
    --methods "$METHODS" "${POLICY[@]}" "${SETS[@]}" --json "$OUT"
.venv/bin/python -m seal.results readme
