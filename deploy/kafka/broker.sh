#!/usr/bin/env bash
# Local single-node Apache Kafka broker (KRaft) for development, tests and the demo.
#
#   deploy/kafka/broker.sh fetch                    resolve the pinned broker jars with Maven (idempotent)
#   deploy/kafka/broker.sh start [RUN_DIR] [EXTRA]  format storage, start on a free loopback port (or on
#                                                   $RNNWATCH_KAFKA_PORT), wait until it answers; prints the
#                                                   bootstrap address
#   deploy/kafka/broker.sh stop  [RUN_DIR]          stop it cleanly (SIGTERM, then SIGKILL after 30 s)
#   deploy/kafka/broker.sh status [RUN_DIR]         print the bootstrap address if it is running
#   deploy/kafka/broker.sh resume RUN_DIR           start a stopped broker again on its port and data (no
#                                                   format): a broker outage and recovery, for fault tests
#
# RUN_DIR defaults to $RNNWATCH_KAFKA_RUN_DIR or deploy/kafka/.run/default and holds server.properties, data/, server.log,
# broker.pid and bootstrap. EXTRA is a properties file appended to server.properties (later keys win) with
# @PORT@, @CONTROLLER_PORT@, @DATA_DIR@, @TLS_DIR@ and a distinct free port for every other @NAME_PORT@ filled
# in, e.g. sasl.properties.in for a SASL listener (its address goes to RUN_DIR/sasl_bootstrap) or
# ssl.properties.in for TLS listeners (each address goes to RUN_DIR/<listener>_bootstrap, e.g. ssl_bootstrap).
# An EXTRA that names @TLS_DIR@ (RUN_DIR/tls, or $RNNWATCH_KAFKA_TLS_DIR) gets development certificates made
# there by tls-certs.sh when there are none. RNNWATCH_KAFKA_SCRAM='SCRAM-SHA-256=[name=u,password=p]' adds
# SCRAM credentials when the storage is formatted. Failures print one line starting with "broker.sh: error:".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Writable state (jars, run directories): beside this script in a checkout; an installed copy (share/rnnwatch/kafka,
# possibly read-only) is given RNNWATCH_KAFKA_STATE_DIR by rnnwatch (stream/local_broker.py).
STATE="${RNNWATCH_KAFKA_STATE_DIR:-$HERE}"
JARS="${RNNWATCH_KAFKA_JARS:-$STATE/.jars}"
READY_TIMEOUT_S="${RNNWATCH_KAFKA_READY_TIMEOUT_S:-30}"
DEFAULT_RUN_DIR="${RNNWATCH_KAFKA_RUN_DIR:-$STATE/.run/default}"

die() { echo "broker.sh: error: $*" >&2; exit 1; }

need_java() {
  command -v java >/dev/null 2>&1 || die "Java is not installed (need Java 17+ on PATH to run the Kafka broker)"
  java -version >/dev/null 2>&1 || die "'java' is on PATH but does not run (need Java 17+)"
}

fetch() {
  need_java
  local stamp="$JARS/.pom.sha256" want
  want="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "Maven is not installed (need 'mvn' on PATH to resolve the Kafka jars)"
  mkdir -p "$STATE/.run"
  local log="$STATE/.run/mvn.log" tmp="$JARS.tmp.$$"
  rm -rf "$tmp"
  echo "broker.sh: resolving Kafka jars with Maven (once; log: $log)" >&2
  # RNNWATCH_MVN_ARGS: extra Maven flags, e.g. "-s settings.xml" for a mirror or proxy.
  # shellcheck disable=SC2086
  if ! mvn -B ${RNNWATCH_MVN_ARGS:-} -f "$HERE/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$tmp" -DincludeScope=runtime >"$log" 2>&1; then
    rm -rf "$tmp"
    if grep -qiE 'could not transfer|unknownhost|connect(ion)? (timed out|refused)|network is unreachable|no route to host|temporary failure in name resolution|cannot access central' "$log"; then
      die "Maven Central cannot be reached, so the Kafka jars cannot be downloaded (details: $log)"
    fi
    die "Maven failed to resolve the Kafka jars (details: $log)"
  fi
  rm -rf "$JARS"
  mv "$tmp" "$JARS"
  echo "$want" >"$stamp"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The broker's port: RNNWATCH_KAFKA_PORT when given (a fixed address for scripts and notes), else a free one.
broker_port() {
  local want="${RNNWATCH_KAFKA_PORT:-}"
  if [[ -z "$want" ]]; then
    free_port
    return 0
  fi
  [[ "$want" =~ ^[0-9]+$ ]] && ((want >= 1 && want <= 65535)) \
    || die "RNNWATCH_KAFKA_PORT=$want is not a port (1..65535)"
  python3 -c 'import socket, sys; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.close()' "$want" \
    2>/dev/null || die "port $want is in use: give another RNNWATCH_KAFKA_PORT (--port), or none for a free one"
  echo "$want"
}

cluster_id() {  # never starting with "-" (1 in 64 do): kafka-storage would take it for an option
  python3 -c 'import base64, uuid
ids = (base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=") for _ in iter(int, 1))
print(next(i for i in ids if not i.startswith("-")))'
}

is_running() {
  local dir="$1"
  [[ -f "$dir/broker.pid" ]] && kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null
}

start() {
  local dir="${1:-$DEFAULT_RUN_DIR}" extra="${2:-}"
  if is_running "$dir"; then
    cat "$dir/bootstrap"
    return 0
  fi
  local port
  port="$(broker_port)"
  fetch
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  rm -rf "$dir/data" "$dir/server.log" "$dir/bootstrap"
  rm -f "$dir"/*_bootstrap
  local cport taken name p
  cport="$(free_port)"
  while [[ "$cport" == "$port" ]]; do cport="$(free_port)"; done
  sed -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$cport|g" -e "s|@DATA_DIR@|$dir/data|g" \
    "$HERE/server.properties.in" >"$dir/server.properties"
  if [[ -n "$extra" ]]; then
    [[ -f "$extra" ]] || die "extra config file not found: $extra"
    local subst=(-e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$cport|g" -e "s|@DATA_DIR@|$dir/data|g")
    taken=" $port $cport "
    for name in $(grep -o '@[A-Z][A-Z_]*_PORT@' "$extra" | sort -u); do
      [[ "$name" == "@CONTROLLER_PORT@" ]] && continue
      p="$(free_port)"
      while [[ "$taken" == *" $p "* ]]; do p="$(free_port)"; done
      taken+="$p "
      subst+=(-e "s|$name|$p|g")
    done
    if grep -q '@TLS_DIR@' "$extra"; then
      local tls="${RNNWATCH_KAFKA_TLS_DIR:-$dir/tls}"
      local err
      err="$(bash "$HERE/tls-certs.sh" "$tls" 2>&1 >/dev/null)" \
        || die "the development TLS certificates could not be made in $tls: ${err##*tls-certs.sh: error: }"
      tls="$(cd "$tls" && pwd)"
      subst+=(-e "s|@TLS_DIR@|$tls|g")
    fi
    sed "${subst[@]}" "$extra" >>"$dir/server.properties"
  fi
  local scram=()
  [[ -n "${RNNWATCH_KAFKA_SCRAM:-}" ]] && scram=(--add-scram "$RNNWATCH_KAFKA_SCRAM")
  local java_opts=(-Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$HERE/log4j2.properties" "-Dkafka.logs.dir=$dir")
  java "${java_opts[@]}" -cp "$JARS/*" kafka.tools.StorageTool format \
    -t "$(cluster_id)" -c "$dir/server.properties" "${scram[@]}" >"$dir/format.log" 2>&1 \
    || die "formatting the broker storage failed (details: $dir/format.log)"
  launch "$dir" "$port"
}

# Run the broker of RUN_DIR's server.properties and wait until it answers on PORT; prints the bootstrap address.
launch() {
  local dir="$1" port="$2"
  local java_opts=(-Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$HERE/log4j2.properties" "-Dkafka.logs.dir=$dir")
  : >"$dir/server.log"
  # setsid: the broker must not receive the terminal's Ctrl-C before rnnwatch has stopped cleanly.
  # shellcheck disable=SC2086
  setsid java "${java_opts[@]}" ${RNNWATCH_KAFKA_JAVA_OPTS:-} -cp "$JARS/*" kafka.Kafka \
    "$dir/server.properties" >"$dir/stdout.log" 2>&1 </dev/null &
  echo $! >"$dir/broker.pid"
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until grep -q "Kafka Server started" "$dir/server.log" 2>/dev/null \
        && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if ! is_running "$dir"; then
      die "the broker exited during start-up (see $dir/server.log and $dir/stdout.log)"
    fi
    if ((SECONDS >= deadline)); then
      stop "$dir" >/dev/null 2>&1 || true
      die "the broker did not become ready within ${READY_TIMEOUT_S}s (see $dir/server.log)"
    fi
    sleep 0.2
  done
  echo "127.0.0.1:$port" >"$dir/bootstrap"
  # Every other listener's address (the last listeners= line wins, as in the broker).
  local listener file name
  for listener in $(grep '^listeners=' "$dir/server.properties" | tail -n 1 | cut -d= -f2- | tr ',' ' '); do
    name="${listener%%://*}"
    [[ "$name" == "PLAINTEXT" || "$name" == "CONTROLLER" ]] && continue
    file="$(echo "$name" | tr '[:upper:]' '[:lower:]')_bootstrap"
    [[ "$name" == "SASL_PLAINTEXT" ]] && file=sasl_bootstrap
    echo "${listener#*://}" >"$dir/$file"
  done
  cat "$dir/bootstrap"
}

resume() {
  local dir="${1:?resume needs the RUN_DIR of a broker started before}"
  [[ -f "$dir/server.properties" && -d "$dir/data" ]] || die "no stopped broker to resume in $dir"
  if is_running "$dir"; then
    cat "$dir/bootstrap"
    return 0
  fi
  dir="$(cd "$dir" && pwd)"
  local port
  port="$(sed -n 's|^listeners=PLAINTEXT://127.0.0.1:\([0-9]*\).*|\1|p' "$dir/server.properties" | tail -n 1)"
  [[ -n "$port" ]] || die "cannot find the PLAINTEXT port in $dir/server.properties"
  launch "$dir" "$port"
}

stop() {
  local dir="${1:-$DEFAULT_RUN_DIR}"
  [[ -f "$dir/broker.pid" ]] || return 0
  local pid
  pid="$(cat "$dir/broker.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "broker.sh: broker $pid did not stop within 30 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$dir/broker.pid" "$dir/bootstrap" "$dir"/*_bootstrap
}

status() {
  local dir="${1:-$DEFAULT_RUN_DIR}"
  if is_running "$dir" && [[ -f "$dir/bootstrap" ]]; then
    cat "$dir/bootstrap"
  else
    echo "not running" >&2
    return 1
  fi
}

cmd="${1:-}"
shift || true
case "$cmd" in
  fetch) fetch ;;
  start) start "$@" ;;
  stop) stop "$@" ;;
  status) status "$@" ;;
  resume) resume "$@" ;;
  *) echo "usage: $0 {fetch|start [RUN_DIR] [EXTRA_PROPERTIES]|stop [RUN_DIR]|status [RUN_DIR]|resume RUN_DIR}" >&2
     exit 2 ;;
esac
