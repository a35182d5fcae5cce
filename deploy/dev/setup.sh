#!/usr/bin/env bash
# Creates .venv with rnnwatch installed editable (extras given as $1, default "train,dev,demo") and resolves the
# Kafka broker jars. Idempotent: a second run with an unchanged pyproject.toml does nothing. Source or run it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
EXTRAS="${1:-train,dev,demo}"
PYTHON="${PYTHON:-python3}"

die() { echo "setup.sh: error: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: install Python 3.11 or newer"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python 3.11 or newer is needed, $PYTHON is $("$PYTHON" -V 2>&1)"

VENV="$ROOT/.venv"
STAMP="$VENV/.rnnwatch-installed"
PYPROJECT_SHA="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -d' ' -f1)"
# The stamp holds "<sha of pyproject.toml + constraints.txt> <extras>". Extras installed before are kept (the union
# is installed), so run.sh (train,demo) and test.sh (train,dev,demo) share one venv without reinstalling.
STAMP_SHA="" STAMP_EXTRAS=""
read -r STAMP_SHA STAMP_EXTRAS 2>/dev/null <"$STAMP" || true
UNION="$(printf '%s\n' ${EXTRAS//,/ } ${STAMP_EXTRAS//,/ } | sort -u | paste -sd, -)"
if [[ "${STAMP_SHA:-}" != "$PYPROJECT_SHA" || "$UNION" != "${STAMP_EXTRAS:-}" ]]; then
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV" || die "could not create $VENV (is python3-venv installed?)"
  echo "setup.sh: installing rnnwatch[$UNION] into .venv (first time: several minutes, torch is large)" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" -e "$ROOT[$UNION]" || die "pip install failed (see the output above)"
  echo "$PYPROJECT_SHA $UNION" >"$STAMP"
fi
bash "$ROOT/deploy/kafka/broker.sh" fetch
# The TLS tests make their development certificates with openssl (deploy/kafka/tls-certs.sh).
if [[ "$EXTRAS" == *dev* ]] && ! command -v openssl >/dev/null 2>&1; then
  die "openssl not found: install the Debian package 'openssl' (the TLS tests make certificates with it)"
fi

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
