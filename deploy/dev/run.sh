#!/usr/bin/env bash
# The README's run command: sets up on a fresh machine (venv, packages, Kafka jars), then `rnnwatch demo`:
# a local Kafka broker, a model trained for the demo, the service, and a synthetic sensor fleet with injected
# anomalies, with live progress, a PNG plot and precision/recall at the end. Arguments go to `rnnwatch demo`
# (e.g. --streams 500 --rate 5000); Ctrl-C stops everything, the broker included.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
bash deploy/dev/setup.sh train,demo
exec .venv/bin/rnnwatch demo "$@"
