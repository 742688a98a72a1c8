#!/usr/bin/env bash
# The codebase domain on the default model: ReST-EM for one round on the first 4 modules of the shipped
# sample package (tidepool), then base / source-as-passage / notes written by the base model / SEAL (notes
# written by the trained policy) on the 3 held-out modules. Writes results/codebase/{train,eval}.json, each
# with a manifest. About 15 minutes on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
SEAL=${SEAL:-.venv/bin/seal}
PKG=src/seal/samples/codebase/tidepool
RUN=${RUN:-runs/codebase-r1}
SETS=(--set inner_loop.epochs=5)
mkdir -p results/codebase
start=$(date +%s)
[ -f "$RUN/round-1/metrics.json" ] || $SEAL train --domain codebase --data "$PKG" --limit 4 --rounds 1 --contexts 4 \
    --samples 3 --out "$RUN" "${SETS[@]}" $([ -d "$RUN" ] && echo --resume)
.venv/bin/python - "$RUN" "$start" "${SETS[@]}" <<'PY'
import json, sys, time
from pathlib import Path
from seal.io import atomic_write_json
from seal.manifest import manifest
run, start, sets = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
cfg = json.loads((run / "config.json").read_text())
rounds = [json.loads(p.read_text()) for p in sorted(run.glob("round-*/metrics.json"))]
atomic_write_json("results/codebase/train.json", {"rounds": rounds, "manifest": manifest(
    command=["seal", "train", "--domain", "codebase", "--data", "src/seal/samples/codebase/tidepool", "--limit", "4",
             "--rounds", "1", "--contexts", "4", "--samples", "3", "--out", str(run), *sets],
    config=cfg, seeds=[cfg["seal"]["rest_em"]["seed"]], data=cfg["context_ids"], wall_s=time.time() - start)})
PY
$SEAL eval --domain codebase --data "$PKG" --offset 4 --methods base,passage,notes --policy "$RUN" \
    --json results/codebase/eval.json "${SETS[@]}"
