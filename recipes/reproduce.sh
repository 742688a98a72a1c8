#!/usr/bin/env bash
# Reproduce the default SEAL on this machine and compare with the published files (results/reproduce/): ReST-EM
# on the rewrite format retrained from nothing (the command of results/rest_em/rewrite-accuracy+likelihood.json,
# into $RUN), then the second evaluation set's seed 0 (SQuAD dev passages 1040.., base, passage and SEAL round 2:
# the command of results/knowledge/second-s0.json) evaluated with that policy on its first LIMIT passages (40:
# all of them), then `python -m seal.reproduce`: each round's mean reward and each row's accuracy in both, rerun
# - original with 95 % intervals, and the share of answers that came out word for word the same. Run it on a
# clean clone (no runs/), or give RUN a fresh directory: an existing $RUN is resumed, not retrained. A finished
# step is kept (its file exists); rerun after an interruption. Measured on a 2-core AMD EPYC (AVX2): ReST-EM
# 50.4 min with other work beside it (30.2 on the 2-core Intel Xeon with AVX-512 that made the published run;
# a round run alone here took 15 min, as there), LIMIT=5 4.4 min (53 s a
# passage, as on the Xeon: 40 passages ~36 min). Both steps pin inner_loop.epochs=10, the default when the
# published files were made.
set -euo pipefail
cd "$(dirname "$0")/.."
SEAL=${SEAL:-.venv/bin/seal}
DATA=${DATA:-../shared/data/squad/squad_dev.json}
RUN=${RUN:-runs/rest-em-rewrite}
LIMIT=${LIMIT:-5}
SUMMARY=${SUMMARY:-results/rest_em/rewrite-accuracy+likelihood-rerun.json}
EVAL=${EVAL:-results/reproduce/second-s0-first$LIMIT}
OUT=${OUT:-results/reproduce/second-s0.json}
[ -f "$DATA" ] || { echo "error: $DATA not found (the shared SQuAD dev passages)"; exit 1; }
[ -f "$SUMMARY" ] || env RUN="$RUN" REWARD=accuracy+likelihood SAMPLES=4 FORMAT=rewrite SET="inner_loop.epochs=10" \
    SUMMARY="$SUMMARY" bash recipes/rest_em.sh
mkdir -p "$(dirname "$EVAL")" "$(dirname "$OUT")"
[ -f "$EVAL.json" ] || { rm -f "$EVAL.jsonl"; $SEAL eval knowledge --data "$DATA" --offset 1040 --limit "$LIMIT" \
    --seed 0 --seeds 1 --methods base,passage --policy "$RUN/round-2" --set inner_loop.epochs=10 \
    --json "$EVAL.json" --log "$EVAL.jsonl"; }
.venv/bin/python -m seal.reproduce --out "$OUT" \
    --rest-em results/rest_em/rewrite-accuracy+likelihood.json "$SUMMARY" \
    --knowledge results/knowledge/second-s0.json "$EVAL.json"
.venv/bin/python -m seal.results readme
