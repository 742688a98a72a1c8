#!/usr/bin/env bash
# The knowledge-incorporation table (the paper's Table 2, single passage) on the default model: every method on
# the shared SQuAD dev passages [OFFSET, OFFSET + LIMIT) (default 1000..1039: disjoint from the ReST-EM training
# contexts, which recipes/rest_em.sh draws from passages 0..199), SEEDS seeds each (self-edit sampling and
# adapter init), 95 % intervals over passages, paired differences to `passage`. Adds the SEAL rows when the
# ReST-EM run of recipes/rest_em.sh exists ($RUN/round-N/policy). Writes results/knowledge/single.{json,png}
# (with its manifest) and single.jsonl (every answer and self-edit). Wall time: about 25 s per passage, seed
# and trained method on 2 cores (40 passages x 1 seed x 4 trained methods: ~70 min).
set -euo pipefail
cd "$(dirname "$0")/.."
SEAL=${SEAL:-.venv/bin/seal}
DATA=${DATA:-../shared/data/squad/squad_dev.json}
OFFSET=${OFFSET:-1000}
LIMIT=${LIMIT:-40}
SEEDS=${SEEDS:-3}
RUN=${RUN:-runs/rest-em}
METHODS=${METHODS:-base,passage-in-prompt,passage,implications,rewrite,self-qa}
OUT=${OUT:-results/knowledge/single}
[ -f "$DATA" ] || { echo "error: $DATA not found (the shared SQuAD dev passages)"; exit 1; }
mkdir -p "$(dirname "$OUT")"
POLICIES=()
for r in "$RUN"/round-*/policy; do [ -d "$r" ] && POLICIES+=(--policy "$(dirname "$r")"); done
rm -f "$OUT.jsonl"
$SEAL eval knowledge --data "$DATA" --offset "$OFFSET" --limit "$LIMIT" --seeds "$SEEDS" --methods "$METHODS" \
    "${POLICIES[@]}" --json "$OUT.json" --plot "$OUT.png" --log "$OUT.jsonl"
.venv/bin/python -m seal.results readme
