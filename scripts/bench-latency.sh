#!/usr/bin/env bash
# Live commit latency (README.md, "Benchmarks"): how long after the dataflow frontier passes a
# window's end its row is committed (visible to readers).
#
#   scripts/bench-latency.sh [MINUTES] [RATE] [WORKERS]   # default: 10 minutes, 100 events/s, -w 2
#
# Runs the embedded live pipeline (mock Kafka cluster fed by the built-in producer, paced in
# wall-clock time, so event time advances like the clock) with 2 s of allowed lateness and a
# commit at every frontier advance, stops it with Ctrl-C after MINUTES, and prints the
# engine's summary: its "window commits" line gives p50 and p99 over every window file
# committed (one per event-time minute), measured from the instant worker 0 saw the source
# frontier pass the window's end to the end of the commit that published the file. Also
# prints the commit-duration histogram the engine exported. The latency includes waiting for
# the slowest partition's watermark; it does not include the allowed lateness itself.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-10}
RATE=${2:-100}
WORKERS=${3:-2}
cargo build --release -p dataflow >&2
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/dataflow -w "$WORKERS" --rate "$RATE" --allowed-lateness 2s --commit-interval 0s \
  --metrics-addr "127.0.0.1:$PORT" --producer-metrics-addr 127.0.0.1:0 --progress never \
  --output "$OUT/tables" > "$OUT/summary.txt" 2> "$OUT/log.txt" &
PID=$!
echo "embedded live run: -w $WORKERS, $RATE events/s, for $MINUTES minutes ..." >&2
sleep $((MINUTES * 60))
curl -sf "http://127.0.0.1:$PORT/metrics" | grep -E '^iot_etl_(window_commit_latency|epoch_commit_duration)_seconds_(count|sum)' || true
kill -INT "$PID"
wait "$PID" || { echo "the engine failed:" >&2; tail -20 "$OUT/log.txt" >&2; exit 1; }
grep -E '^(lines read|rows written|window commits|elapsed)' "$OUT/summary.txt"
grep -q '^window commits' "$OUT/summary.txt" || { echo "no window was committed" >&2; exit 1; }
