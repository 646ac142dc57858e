#!/usr/bin/env bash
# Quick start 1: set up, then generate a synthetic AMASS tree, prepare it, and summarise the result.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/vposer-data demo "${1:-demo_data}"
