# shellcheck shell=bash
# A Kafka-protocol broker for end-to-end tests: tansu (crates.io), with SQLite storage.
# Source this file; it defines functions and changes nothing else in the calling shell.
#
#   source scripts/services/kafka.sh
#   kafka_install                 # `cargo install tansu --locked --features libsql` unless
#                                 # `tansu --version` already answers (~11 min on 2 cores)
#   kafka_start DATA_DIR [PORT]   # broker on 127.0.0.1:PORT (default: a free port), data in
#                                 # DATA_DIR/tansu.db, log in DATA_DIR/broker.log; exports
#                                 # KAFKA_BROKERS=127.0.0.1:PORT, KAFKA_PID, KAFKA_PORT,
#                                 # KAFKA_DATA_DIR
#   kafka_stop                    # SIGTERM, wait for exit (SIGKILL after 10 s)
#   kafka_kill9                   # SIGKILL, wait for exit
#
# Every function returns non-zero with a message on stderr (and the broker log's tail when
# the broker does not come up), so `set -e` callers stop on the first failure.
#
# tansu 0.6.0 facts this relies on (../shared/SERVICES.md has the rest):
# - The default features have no storage engine: `--features libsql` is needed for sqlite://.
# - Flags: --listener-url, --advertised-listener-url, --storage-engine (env LISTENER_URL,
#   ADVERTISED_LISTENER_URL, STORAGE_ENGINE; also CLUSTER_ID, SCHEMA_REGISTRY, DATA_LAKE,
#   OTEL_EXPORTER_OTLP_ENDPOINT). Flags win over the environment; `${VAR}` inside a flag's
#   value is expanded by tansu itself; tansu also loads a `.env` file from its working dir.
# - The sqlite:// path is always resolved against the broker's working directory, even when
#   absolute (sqlite:///tmp/x/tansu.db opens ./tmp/x/tansu.db), so the broker is started in /
#   with an absolute DATA_DIR. kafka_start checks that DATA_DIR/tansu.db exists afterwards.
# - Logs (tracing, filtered by RUST_LOG; errors only when unset) go to stdout. The broker is
#   started with RUST_LOG=$KAFKA_LOG (default: warn) so that a caller's RUST_LOG=debug does
#   not flood the log, and NO_COLOR=1 (it writes ANSI colour codes even into a file).
# - Produce uncompressed: with sqlite://, compressed batches are stored but every fetch fails.
source "$(dirname "${BASH_SOURCE[0]}")/process.sh"

# Installs tansu unless `tansu --version` answers.
kafka_install() {
  if tansu --version >/dev/null 2>&1; then
    return 0
  fi
  command -v cargo >/dev/null 2>&1 || { echo "kafka_install: cargo is required to install tansu (install the Rust toolchain)" >&2; return 1; }
  echo "kafka_install: installing tansu with cargo (about 11 minutes on 2 cores)..." >&2
  if ! cargo install tansu --locked --features libsql >&2; then
    echo "kafka_install: error: cargo install tansu --locked --features libsql failed" >&2
    return 1
  fi
  if ! tansu --version >/dev/null 2>&1; then
    echo "kafka_install: error: tansu was installed but \`tansu --version\` does not answer; is \$(cargo's bin dir, ~/.cargo/bin) on PATH?" >&2
    return 1
  fi
}

# A free TCP port on 127.0.0.1.
_kafka_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# True when something accepts connections on 127.0.0.1:$1.
_kafka_port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}


# kafka_start DATA_DIR [PORT]
kafka_start() {
  local dir=${1:?usage: kafka_start DATA_DIR [PORT]} port=${2:-}
  command -v tansu >/dev/null 2>&1 || { echo "kafka_start: error: tansu is not installed (run kafka_install)" >&2; return 1; }
  if [ -n "${KAFKA_PID:-}" ] && service_alive "$KAFKA_PID"; then
    echo "kafka_start: error: a broker started here is still running (pid $KAFKA_PID); kafka_stop first" >&2
    return 1
  fi
  mkdir -p "$dir" || return 1
  dir=$(cd "$dir" && pwd -P) || return 1
  case $dir in
    *[!A-Za-z0-9/._+-]*) echo "kafka_start: error: DATA_DIR $dir has characters that would need escaping in the sqlite:// URL" >&2; return 1 ;;
  esac
  if [ -z "$port" ]; then
    port=$(_kafka_free_port) || { echo "kafka_start: error: cannot pick a free port (python3 needed)" >&2; return 1; }
  elif _kafka_port_open "$port"; then
    echo "kafka_start: error: 127.0.0.1:$port is already in use" >&2
    return 1
  fi
  local log=$dir/broker.log url=tcp://127.0.0.1:$port
  echo "==== $(date -u +%Y-%m-%dT%H:%M:%SZ) kafka_start: tansu broker on $url, storage sqlite://$dir/tansu.db" >>"$log"
  # In /: tansu resolves the sqlite path against its working directory (see the header).
  (cd / && RUST_LOG=${KAFKA_LOG:-warn} NO_COLOR=1 exec tansu broker \
    --listener-url "$url" \
    --advertised-listener-url "$url" \
    --storage-engine "sqlite://$dir/tansu.db") >>"$log" 2>&1 &
  local pid=$!
  service_wait_ready kafka "$pid" "$log" "accepting connections on $url (tansu)" _kafka_port_open "$port" || return 1
  if ! service_alive "$pid"; then  # another process took the port between the pick and the bind
    echo "kafka_start: error: 127.0.0.1:$port answers but tansu (pid $pid) exited" >&2
    service_log_tail "$log"
    return 1
  fi
  if [ ! -f "$dir/tansu.db" ]; then
    echo "kafka_start: error: tansu is up but $dir/tansu.db does not exist: the storage is elsewhere" >&2
    service_log_tail "$log"
    kill -9 "$pid" 2>/dev/null || true
    service_wait_gone "$pid" 100 || true
    return 1
  fi
  export KAFKA_PID=$pid KAFKA_PORT=$port KAFKA_DATA_DIR=$dir KAFKA_BROKERS=127.0.0.1:$port
}

kafka_stop() {
  [ -n "${KAFKA_PID:-}" ] || return 0
  service_stop kafka "$KAFKA_PID" || return 1
  unset KAFKA_PID
}

kafka_kill9() {
  local pid=${KAFKA_PID:?kafka_kill9: no broker started (KAFKA_PID is unset)}
  kill -9 "$pid" 2>/dev/null || true
  service_wait_gone "$pid" 100 || { echo "kafka_kill9: error: tansu (pid $pid) survives SIGKILL" >&2; return 1; }
  unset KAFKA_PID
}
