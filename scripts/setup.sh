#!/usr/bin/env bash
# Create (or reuse) .venv and install vposer-data with the given extras.
# Usage: scripts/setup.sh [EXTRAS]      e.g. scripts/setup.sh test
# TORCH_SPEC picks the torch build installed first, with pip (default: the CPU wheel these
# machines carry). Elsewhere, set TORCH_SPEC="torch" (or a CUDA build) or TORCH_SPEC="" to let
# the installer choose.
# INSTALLER picks what installs the rest: "auto" (default) uses uv (installed into the venv
# with pip; it resolves and installs in seconds where pip takes most of a minute) and falls back
# to pip when uv cannot be had; "pip" always uses pip. Both compile the bytecode at install time:
# where PYTHONDONTWRITEBYTECODE is set, nothing else would, and every process would compile
# torch's modules anew (about 20 s an import).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
venv="${VENV:-.venv}"
python="${PYTHON:-python3}"
torch_spec="${TORCH_SPEC-torch==2.13.0}"
installer="${INSTALLER:-auto}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet)
if [ -n "$torch_spec" ] && ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  "${pip[@]}" "$torch_spec"
fi
target="."
[ -n "$extras" ] && target=".[${extras}]"
if [ "$installer" = auto ] && { [ -x "$venv/bin/uv" ] || "${pip[@]}" uv 2>/dev/null; }; then
  if "$venv/bin/uv" pip install --quiet --compile-bytecode --python "$venv/bin/python" -e "$target"; then
    exit 0
  fi
  echo "setup: uv could not install ${target}; trying pip" >&2
fi
"${pip[@]}" -e "$target"
