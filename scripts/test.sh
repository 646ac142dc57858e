#!/usr/bin/env bash
# Quick start 2: set up with the test extras, then lint, type-check and run the test suite.
# mypy runs beside pytest (one core, ~20 s without its cache); pytest spreads the tests over
# PYTEST_WORKERS processes (pytest-xdist; default "auto": one per core, "0" runs them in-process);
# workers that run out of tests take some of another's (--dist worksteal): the fault tests are long.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
.venv/bin/ruff check vposer_data tests benchmarks examples
.venv/bin/ruff format --check vposer_data tests benchmarks examples
mypy_log="$(mktemp)"
trap 'rm -f "$mypy_log"' EXIT
.venv/bin/mypy >"$mypy_log" 2>&1 &
mypy_pid=$!
status=0
.venv/bin/pytest -n "${PYTEST_WORKERS:-auto}" --dist worksteal "$@" || status=$?
mypy_status=0
wait "$mypy_pid" || mypy_status=$?
cat "$mypy_log"
if [ "$mypy_status" -ne 0 ]; then
  echo "mypy failed (exit status $mypy_status)" >&2
  [ "$status" -eq 0 ] && status=$mypy_status
fi
exit "$status"
