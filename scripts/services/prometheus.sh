# shellcheck shell=bash
# Prometheus 2.42 (Debian's package) for monitoring checks and end-to-end tests.
# Source this file; it defines functions and changes nothing else in the calling shell.
#
#   source scripts/services/prometheus.sh
#   prometheus_install                       # apt-get install prometheus, unless
#                                            # `promtool --version` already answers
#   prometheus_start CONFIG_FILE PORT DATA_DIR
#                                            # server on 127.0.0.1:PORT, TSDB in DATA_DIR/tsdb,
#                                            # log in DATA_DIR/prometheus.log; waits up to 30 s
#                                            # for /-/ready; exports PROMETHEUS_PID,
#                                            # PROMETHEUS_PORT, PROMETHEUS_URL, PROMETHEUS_LOG
#   prometheus_api PATH [NAME=VALUE...]      # GET $PROMETHEUS_URL/PATH?NAME=VALUE&..., prints
#                                            # the JSON body, e.g.
#                                            # prometheus_api /api/v1/query 'query=up == 1'
#   prometheus_stop                          # SIGTERM, wait for exit (SIGKILL after 10 s)
#
# Every function returns non-zero with a message on stderr (and the server log's tail when
# the server does not come up), so `set -e` callers stop on the first failure. Only the
# process started by prometheus_start is ever signalled. HTTP goes through python3 (stdlib),
# which the project already requires.
#
# Facts this relies on (../shared/SERVICES.md): `apt-get install -y prometheus` provides
# /usr/bin/prometheus and /usr/bin/promtool and starts no service in a container; rule_files
# in the config are resolved against the config file's directory.
source "$(dirname "${BASH_SOURCE[0]}")/process.sh"

# Installs Prometheus and promtool unless both already answer `--version`.
prometheus_install() {
  if promtool --version >/dev/null 2>&1 && prometheus --version >/dev/null 2>&1; then
    return 0
  fi
  local sudo=
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "prometheus_install: error: installing the prometheus package needs root (or sudo)" >&2; return 1; }
    sudo=sudo
  fi
  echo "prometheus_install: installing Debian's prometheus package (apt-get)..." >&2
  if ! $sudo apt-get update >&2; then
    echo "prometheus_install: error: apt-get update failed" >&2
    return 1
  fi
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y prometheus >&2; then
    echo "prometheus_install: error: apt-get install -y prometheus failed" >&2
    return 1
  fi
  if ! promtool --version >/dev/null 2>&1 || ! prometheus --version >/dev/null 2>&1; then
    echo "prometheus_install: error: the prometheus package is installed but \`promtool --version\` or \`prometheus --version\` does not answer (expected in /usr/bin)" >&2
    return 1
  fi
}

_prometheus_ready() { # URL: true once Prometheus answers 200 at URL/-/ready
  [ "$(_prometheus_http_status "$1/-/ready")" = 200 ]
}

# HTTP status of GET $1, or 000 when nothing answers.
_prometheus_http_status() {
  python3 - "$1" <<'PY' 2>/dev/null || echo 000
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
}




# prometheus_start CONFIG_FILE PORT DATA_DIR
prometheus_start() {
  local usage="usage: prometheus_start CONFIG_FILE PORT DATA_DIR"
  local config=${1:?$usage} port=${2:?$usage} dir=${3:?$usage}
  command -v prometheus >/dev/null 2>&1 || { echo "prometheus_start: error: prometheus is not installed (run prometheus_install)" >&2; return 1; }
  [ -f "$config" ] || { echo "prometheus_start: error: config file $config does not exist" >&2; return 1; }
  if [ -n "${PROMETHEUS_PID:-}" ] && service_alive "$PROMETHEUS_PID"; then
    echo "prometheus_start: error: a Prometheus started here is still running (pid $PROMETHEUS_PID); prometheus_stop first" >&2
    return 1
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "prometheus_start: error: 127.0.0.1:$port is already in use" >&2
    return 1
  fi
  mkdir -p "$dir/tsdb" || return 1
  local log=$dir/prometheus.log url=http://127.0.0.1:$port
  echo "==== $(date -u +%Y-%m-%dT%H:%M:%SZ) prometheus_start: $config on $url, TSDB in $dir/tsdb" >>"$log"
  prometheus --config.file="$config" --storage.tsdb.path="$dir/tsdb" \
    --web.listen-address="127.0.0.1:$port" >>"$log" 2>&1 &
  local pid=$!
  service_wait_ready prometheus "$pid" "$log" "answering 200 at $url/-/ready" _prometheus_ready "$url" || return 1
  export PROMETHEUS_PID=$pid PROMETHEUS_PORT=$port PROMETHEUS_URL=$url PROMETHEUS_LOG=$log
}

# prometheus_api PATH [NAME=VALUE...]: the body of the server's answer, also for an error
# status (Prometheus says there what is wrong, e.g. a PromQL parse error); fails only when
# the server does not answer.
prometheus_api() {
  local path=${1:?usage: prometheus_api PATH [NAME=VALUE...]}
  [ -n "${PROMETHEUS_URL:-}" ] || { echo "prometheus_api: error: no Prometheus started (PROMETHEUS_URL is unset)" >&2; return 1; }
  python3 - "$PROMETHEUS_URL$path" "${@:2}" <<'PY'
import sys, urllib.error, urllib.parse, urllib.request
url = sys.argv[1]
if sys.argv[2:]:
    url += "?" + urllib.parse.urlencode([tuple(a.split("=", 1)) for a in sys.argv[2:]])
try:
    print(urllib.request.urlopen(url, timeout=10).read().decode())
except urllib.error.HTTPError as e:
    print(e.read().decode())
except OSError as e:
    sys.exit(f"prometheus_api: error: GET {url}: {e}")
PY
}

prometheus_stop() {
  [ -n "${PROMETHEUS_PID:-}" ] || return 0
  service_stop prometheus "$PROMETHEUS_PID" || return 1
  unset PROMETHEUS_PID
}
