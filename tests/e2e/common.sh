# shellcheck shell=bash
# What every end-to-end script shares; source it from the repository root.
# Defines BIN (the release binaries), step (a heading), fail (message, exit 1), free_port (a
# free TCP port on 127.0.0.1), and checks
# that the binaries exist (scripts/test.sh builds them before running the scripts).
BIN=target/release
step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
for b in dataflow producer analytics; do
  [ -x "$BIN/$b" ] || fail "$BIN/$b is missing: run cargo build --release first"
done
