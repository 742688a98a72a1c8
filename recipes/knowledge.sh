#!/usr/bin/env bash
# The knowledge-incorporation table (the paper's Table 2, single passage) on the default model: every method on
# the shared SQuAD dev passages [OFFSET, OFFSET + LIMIT) (default 1000..1039: disjoint from the ReST-EM training
# contexts, which recipes/rest_em.sh draws from passages 0..199), SEEDS seeds (self-edit sampling and adapter
# init), 95 % intervals over passages, paired differences to `passage` (and SEAL rows to the row of the format
# their run trained: `implications`, or e.g. `rewrite` for a FORMAT=rewrite run, when METHODS has it).
# Adds a SEAL row per ReST-EM round of $RUN (recipes/rest_em.sh) listed in ROUNDS (default: every round).
# One `seal eval knowledge` per seed, each written to $OUT-sN.{json,jsonl} with its manifest and kept: an
# interrupted recipe reruns only the missing seeds, each from its last finished pass (--resume). The seeds are
# then pooled into $OUT.{json,png} (`python -m seal.results merge-knowledge`) and the README table regenerated.
# JOBS=N runs N seeds at once (2 or 3 on two cores), each with one torch thread (model.threads=1): on the AMD
# machine, implications and self-qa took 3,363 s for seed 0 alone on both threads and 4,476 s for seeds 1 and 2
# side by side, 1.5x the throughput, at the cost of bit-identity with a 2-thread run (another float summation order,
# as on another CPU). SELF_EDITS=N (default 1) writes N self-edits per passage and method and trains them
# together (rows named e.g. `rewrite ×3`). Wall time on 2 cores, measured: ~8 s per passage and seed for
# `passage`, ~24 s for each self-edit method (training, answering, writing), so 40 passages x (base, open book,
# passage, implications, SEAL round 2) took 35-38 min per seed. SELF_EDITS=3 with one SEAL row took 52-61 min
# per seed on the AMD machine; SET="inner_loop.epochs=5" with passage, rewrite and SEAL round 1 took 40 min per
# seed there; implications and self-qa at the default 5 epochs 56 min (seed 0, alone).
set -euo pipefail
cd "$(dirname "$0")/.."
SEAL=${SEAL:-.venv/bin/seal}
DATA=${DATA:-../shared/data/squad/squad_dev.json}
OFFSET=${OFFSET:-1000}
LIMIT=${LIMIT:-40}
SEEDS=${SEEDS:-3}
RUN=${RUN:-runs/rest-em}
ROUNDS=${ROUNDS:-}
METHODS=${METHODS:-base,passage-in-prompt,passage,implications,rewrite,self-qa}
OUT=${OUT:-results/knowledge/single}
SELF_EDITS=${SELF_EDITS:-1}
JOBS=${JOBS:-1}  # seeds evaluated at once (JOBS=2: two side by side, one torch thread each)
SET=${SET:-}  # more config overrides, space-separated, e.g. SET="inner_loop.epochs=5" (rows named "passage [epochs 5]")
SETS=(--set "eval.self_edits=$SELF_EDITS")
for kv in $SET; do SETS+=(--set "$kv"); done
[ -f "$DATA" ] || { echo "error: $DATA not found (the shared SQuAD dev passages)"; exit 1; }
mkdir -p "$(dirname "$OUT")"
POLICIES=()
for r in "$RUN"/round-*/policy; do
    [ -d "$r" ] || continue
    n=$(basename "$(dirname "$r")"); n=${n#round-}
    if [ -z "$ROUNDS" ] || [[ ",$ROUNDS," == *",$n,"* ]]; then POLICIES+=(--policy "$(dirname "$r")"); fi
done
eval_seed() {  # SEED [more options]
    local s=$1; shift
    $SEAL eval knowledge --data "$DATA" --offset "$OFFSET" --limit "$LIMIT" --seed "$s" --seeds 1 \
        --methods "$METHODS" "${POLICIES[@]}" \
        "${SETS[@]}" --json "$OUT-s$s.json" --log "$OUT-s$s.jsonl" --resume "$@"
}
PARTS=()
for ((s = 0; s < SEEDS; s++)); do
    PARTS+=("$OUT-s$s.json")
    [ -f "$OUT-s$s.json" ] && { echo "seed $s: $OUT-s$s.json exists, kept"; continue; }
    if [ "$JOBS" -gt 1 ]; then  # side by side, one torch thread each, their lines prefixed with the seed
        while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
        eval_seed "$s" --set model.threads=1 2>&1 | sed -u "s/^/[seed $s] /" &
    else
        eval_seed "$s"
    fi
done
wait
for p in "${PARTS[@]}"; do
    [ -f "$p" ] || { echo "error: $p was not written (its seed failed; see above)"; exit 1; }
done
.venv/bin/python -m seal.results merge-knowledge --out "$OUT.json" --plot "$OUT.png" "${PARTS[@]}"
.venv/bin/python -m seal.results readme
