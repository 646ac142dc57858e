#!/usr/bin/env bash
# Quick start 2: set up with the test extras, then lint, type-check and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
.venv/bin/ruff check vposer_data tests benchmarks examples
.venv/bin/ruff format --check vposer_data tests benchmarks examples
.venv/bin/mypy
exec .venv/bin/pytest "$@"
