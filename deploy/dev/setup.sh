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

# The Prometheus server and promtool (Debian package) for the alert-rule and scrape tests.
if [[ "$EXTRAS" == *dev* ]] && ! command -v promtool >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "setup.sh: installing the Debian package prometheus (brings promtool)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; } >/dev/null \
      || die "apt-get install prometheus failed: install the Debian package 'prometheus' (it brings promtool)"
  else
    die "promtool not found: install the Debian package 'prometheus' (e.g. sudo apt-get install prometheus)"
  fi
fi
