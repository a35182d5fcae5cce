#!/usr/bin/env bash
# The README's test command: sets everything up on a fresh machine (venv, packages, Kafka jars), then runs
# lint (ruff check and ruff format --check), type checks and the whole test suite; the suite starts and stops its own Kafka broker.
# Extra arguments go to pytest, e.g. deploy/dev/test.sh -k kernels
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
bash deploy/dev/setup.sh train,dev,demo
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
echo "== ruff" && .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy" && .venv/bin/mypy rnncore stream
echo "== pytest" && .venv/bin/python -m pytest "$@"
