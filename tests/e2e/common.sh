# shellcheck shell=bash
# What every end-to-end script shares; source it from the repository root.
# Defines BIN (the release binaries), step (a heading), fail (message, exit 1), free_port (a
# free TCP port on 127.0.0.1), hostfile, metric_value, wait_until_read, need_moto and start_moto
# (below), and checks that the binaries exist (scripts/test.sh builds them before running the
# scripts).
BIN=target/release
step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
for b in dataflow producer analytics; do
  [ -x "$BIN/$b" ] || fail "$BIN/$b is missing: run cargo build --release first"
done

# The value (integer part) of an unlabelled metric of the engine whose /metrics is on
# 127.0.0.1:PORT; fails when it cannot be read.
metric_value() { # PORT NAME
  python3 - "$1" "$2" <<'PY' 2>/dev/null
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=1).read().decode()
print(next(l.split()[1] for l in body.splitlines() if l.startswith(sys.argv[2] + " ")).split(".")[0])
PY
}

# Waits until the engine (PID, /metrics on 127.0.0.1:PORT) has read more than N messages;
# fails, naming LOG, when it ends first or has not within 60 s.
wait_until_read() { # PORT PID N LOG
  local deadline=$((SECONDS + 60))
  until [ "$(metric_value "$1" iot_etl_events_read_total || echo 0)" -gt "$3" ] 2>/dev/null; do
    kill -0 "$2" 2>/dev/null || fail "the engine ended before it had read $3 messages (see $4)"
    [ "$SECONDS" -lt "$deadline" ] || fail "the engine read at most $3 messages within 60 s (see $4)"
    sleep 0.05
  done
}

# Writes a timely hostfile for N processes on loopback, each on a free port, to FILE.
hostfile() { # N FILE
  python3 - "$1" > "$2" <<'PY'
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("127.0.0.1", 0))
print("\n".join(f"127.0.0.1:{s.getsockname()[1]}" for s in ss))
PY
}

# Installs moto's server (PyPI) unless it is there.
need_moto() {
  if ! command -v moto_server >/dev/null 2>&1 || ! python3 -c 'import boto3' 2>/dev/null; then
    step "installing moto[server] (PyPI)"
    python3 -m pip install --quiet "moto[server]" || fail "cannot install moto[server] from PyPI"
  fi
}

# Starts moto's server (S3, and IAM, STS, CloudFormation... on the same port) on a free port of
# 127.0.0.1, logging to LOG, and waits until it answers: sets MOTO (its pid) and MOTO_URL; fails,
# printing the log, when it exits or does not answer within 20 s. PRELUDE, if given, is Python
# run in the server's process before it starts (tests/e2e/aws.sh works around a moto bug so).
start_moto() { # LOG [PRELUDE]
  local port
  port=$(free_port)
  if [ -n "${2:-}" ]; then
    python3 -c "$2"$'\nfrom moto.server import main\nmain(["-H", "127.0.0.1", "-p", "'"$port"'"])' > "$1" 2>&1 &
  else
    moto_server -H 127.0.0.1 -p "$port" > "$1" 2>&1 &
  fi
  MOTO=$! MOTO_URL=http://127.0.0.1:$port
  for _ in $(seq 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('$MOTO_URL', timeout=1)" 2>/dev/null && return 0
    kill -0 "$MOTO" 2>/dev/null || { cat "$1" >&2; fail "moto_server exited"; }
    sleep 0.2
  done
  kill "$MOTO" 2>/dev/null || true
  cat "$1" >&2
  fail "moto_server does not answer on $MOTO_URL"
}
