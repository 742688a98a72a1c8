#!/usr/bin/env bash
# ReST-EM on the default model (the README's example): ROUNDS rounds of CONTEXTS fresh SQuAD dev passages
# (from passages 0..199, disjoint from the evaluation passages of recipes/knowledge.sh) x SAMPLES self-edits.
# Resumes an interrupted run. Writes the run to $RUN and results/rest_em/summary.json (rounds' metrics, with the
# manifest). Measured per round at the defaults on 2 cores, run alone: ~11 min (AMD EPYC: 660 s and 669 s).
# SET="k=v ..." adds config overrides (e.g. SET="inner_loop.epochs=5": the reward's inner loop at 5 epochs).
set -euo pipefail
cd "$(dirname "$0")/.."
SEAL=${SEAL:-.venv/bin/seal}
DATA=${DATA:-../shared/data/squad/squad_dev.json}
RUN=${RUN:-runs/rest-em}
ROUNDS=${ROUNDS:-2}
CONTEXTS=${CONTEXTS:-8}
SAMPLES=${SAMPLES:-4}
REWARD=${REWARD:-}            # accuracy | likelihood | accuracy+likelihood (empty: the config's auto, accuracy+likelihood here)
FORMAT=${FORMAT:-}            # rewrite | implications | self-qa (empty: the config's default, rewrite)
SET=${SET:-}                  # more config overrides, space-separated, e.g. SET="inner_loop.epochs=5"
[ -f "$DATA" ] || { echo "error: $DATA not found (the shared SQuAD dev passages)"; exit 1; }
SUMMARY=${SUMMARY:-results/rest_em/summary.json}
mkdir -p "$(dirname "$SUMMARY")"
start=$(date +%s)
# the commit the run starts on (dirty only for code changes: seal.manifest.git_commit's rule)
START_COMMIT=$(.venv/bin/python -c "from seal.manifest import git_commit; print(git_commit() or '')")
ARGS=(--data "$DATA" --limit 200 --rounds "$ROUNDS" --contexts "$CONTEXTS" --samples "$SAMPLES" --out "$RUN")
[ -n "$REWARD" ] && ARGS+=(--set "rest_em.reward=$REWARD")
[ -n "$FORMAT" ] && ARGS+=(--set "self_edit.format=$FORMAT")
for kv in $SET; do ARGS+=(--set "$kv"); done
$SEAL train knowledge "${ARGS[@]}" $([ -f "$RUN/config.json" ] && echo --resume)
.venv/bin/python - "$RUN" "$start" "$SUMMARY" "$START_COMMIT" "${ARGS[@]}" <<'PY'
import json, sys, time
from pathlib import Path
from seal.io import atomic_write_json
from seal.manifest import manifest
run, start, out, start_commit, args = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
cfg = json.loads((run / "config.json").read_text())
rounds = [json.loads(p.read_text()) for p in sorted(run.glob("round-*/metrics.json"))]
atomic_write_json(out, {"run": str(run), "rounds": rounds, "manifest": manifest(
    command=["seal", "train", "knowledge", *args], config=cfg, seeds=[cfg["seal"]["rest_em"]["seed"]],
    data=cfg.get("context_ids", []), wall_s=time.time() - start, started_at_commit=start_commit)})
PY
