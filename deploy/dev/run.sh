#!/usr/bin/env bash
# The README's run command: sets up on a fresh machine, then runs `rnnwatch demo` (local Kafka broker,
# synthetic sensor fleet with injected anomalies, the service, live progress). Arguments go to the demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
bash deploy/dev/setup.sh train,dev
exec .venv/bin/rnnwatch demo "$@"
