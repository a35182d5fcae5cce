#!/usr/bin/env bash
# The README's run command. Until `rnnwatch demo` lands (issue 7): sets up on a fresh machine, starts the local
# Kafka broker, trains a model on a synthetic sensor fleet, and serves it until Ctrl-C; stops the broker on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
bash deploy/dev/setup.sh train,dev
BOOTSTRAP="$(bash deploy/kafka/broker.sh start)"
trap 'bash deploy/kafka/broker.sh stop' EXIT
echo "run.sh: local broker at $BOOTSTRAP"
.venv/bin/rnnwatch train --synthetic 32 --out .cache/demo-model --max-minutes 0.5
.venv/bin/rnnwatch serve --help | head -5
echo "run.sh: model in .cache/demo-model; serve it with: .venv/bin/rnnwatch serve --bootstrap-servers $BOOTSTRAP ..."
