#!/usr/bin/env bash
# ARC on the default model: the easy demo set (not ARC: small generated tasks a 135M model can solve on a CPU)
# with ICL / TTT + self-edit without RL / oracle, one ReST-EM round on 4 other easy tasks and the SEAL row, and
# ICL / oracle on 3 tasks of the shared ARC evaluation set. Writes results/arc/{easy,train,easy-seal,shared}.json,
# each with its manifest (95 % intervals over tasks), then regenerates the README's ARC table. Measured on 2
# cores: 1355 s (easy 568 s, ReST-EM 332 s, SEAL row 250 s, shared 164 s).
set -euo pipefail
cd "$(dirname "$0")/.."
SEAL=${SEAL:-.venv/bin/seal}
RUN=${RUN:-runs/arc-easy}
mkdir -p results/arc
start=$(date +%s)
[ -f results/arc/easy.json ] || $SEAL eval arc --easy 6 --json results/arc/easy.json --log results/arc/easy.jsonl
TRAIN=(train arc --easy 4 --rounds 1 --samples 3 --out "$RUN")
[ -f "$RUN/round-1/metrics.json" ] || $SEAL "${TRAIN[@]}" $([ -f "$RUN/config.json" ] && echo --resume)
[ -f results/arc/train.json ] || .venv/bin/python - "$RUN" "${TRAIN[@]}" <<'PY'
import json, sys
from pathlib import Path
from seal.io import atomic_write_json
from seal.manifest import manifest
run, args = Path(sys.argv[1]), sys.argv[2:]
cfg = json.loads((run / "config.json").read_text())
rounds = [json.loads(p.read_text()) for p in sorted(run.glob("round-*/metrics.json"))]
atomic_write_json("results/arc/train.json", {"run": str(run), "rounds": rounds, "manifest": manifest(
    command=["seal", *args], config=cfg, seeds=[cfg.get("seal", {}).get("rest_em", {}).get("seed")],
    data=cfg.get("context_ids", []), wall_s=sum(r["wall_s"] for r in rounds))})
PY
$SEAL eval arc --easy 6 --rows seal --policy "$RUN" --json results/arc/easy-seal.json \
    --log results/arc/easy-seal.jsonl
if [ -d ../shared/data/arc ]; then
  $SEAL eval arc --data ../shared/data/arc --split evaluation --limit 3 --rows icl,oracle --json results/arc/shared.json \
      --log results/arc/shared.jsonl
fi
.venv/bin/python -m seal.results readme
echo "ARC recipe: $(( $(date +%s) - start )) s"
