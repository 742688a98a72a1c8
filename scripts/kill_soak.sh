#!/usr/bin/env bash
# Kill soak for `seal train knowledge --resume` (see scripts/kill_soak.py): SIGKILL a tiny ReST-EM run at random
# moments, resume it, and compare the result with an uninterrupted run. Arguments go to kill_soak.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/kill_soak.py "$@"
