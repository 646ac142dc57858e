#!/usr/bin/env bash
# Create (or reuse) .venv and install vposer-data with the given extras.
# Usage: scripts/setup.sh [EXTRAS]      e.g. scripts/setup.sh test
# TORCH_SPEC picks the torch build installed first (default: the CPU wheel these machines carry).
# Elsewhere, set TORCH_SPEC="torch" (or a CUDA build) or TORCH_SPEC="" to let pip choose.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
venv="${VENV:-.venv}"
python="${PYTHON:-python3}"
torch_spec="${TORCH_SPEC-torch==2.13.0}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
if [ -n "$torch_spec" ] && ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet "$torch_spec"
fi
target="."
[ -n "$extras" ] && target=".[${extras}]"
"$venv/bin/python" -m pip install --quiet -e "$target"
