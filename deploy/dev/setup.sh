#!/usr/bin/env bash
# Creates .venv with rnnwatch installed editable (extras given as $1, default "train,dev") and resolves the
# Kafka broker jars. Idempotent: a second run with an unchanged pyproject.toml does nothing. Source or run it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
EXTRAS="${1:-train,dev}"
PYTHON="${PYTHON:-python3}"

die() { echo "setup.sh: error: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: install Python 3.11 or newer"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python 3.11 or newer is needed, $PYTHON is $("$PYTHON" -V 2>&1)"

VENV="$ROOT/.venv"
STAMP="$VENV/.rnnwatch-installed"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1) $EXTRAS"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV" || die "could not create $VENV (is python3-venv installed?)"
  echo "setup.sh: installing rnnwatch[$EXTRAS] into .venv (first time: several minutes, torch is large)" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e "$ROOT[$EXTRAS]" || die "pip install failed (see the output above)"
  echo "$WANT" >"$STAMP"
fi
bash "$ROOT/deploy/kafka/broker.sh" fetch
