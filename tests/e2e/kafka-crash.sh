#!/usr/bin/env bash
# Crashes in live mode and in a cluster, against a real Kafka-protocol broker (tansu, installed
# and started on loopback by scripts/services/kafka.sh; fails loudly if it cannot start):
#
#   tests/e2e/kafka-crash.sh [WORK_DIR]    # default WORK_DIR: target/e2e-kafka-crash (recreated)
#
# 1. Live: a producer writes 6 hours of events into a 3-partition topic in 30 slices, one
#    slice per second (event time runs ~12 minutes per second), while the live job reads it.
#    The job is killed with SIGKILL at 5 random instants and restarted each time; after the
#    producer stops and the job has caught up, it is stopped with SIGINT (exit 0). A bounded
#    run over the topic into a fresh output is the reference: `analytics diff --prefix` asserts
#    that every row the live run committed equals a reference row, and that the reference
#    has no row before the live run's committed frontier that the live run lacks.
# 2. Cluster: the bounded job with -n 2 (two processes on loopback) over the same topic;
#    process 1 is killed with SIGKILL mid-run. Process 0 must end on its own (no hang),
#    then both are restarted on the same output and must end with exactly the reference's
#    tables and part files.
# Expects release binaries in target/release (scripts/test.sh builds them first).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/services/kafka.sh
source tests/e2e/common.sh

WORK=${1:-target/e2e-kafka-crash}
SEED=${SEED:-$RANDOM}
echo "random seed: SEED=$SEED (rerun with SEED=$SEED to repeat the kill instants)"
RANDOM=$SEED

kafka_install
rm -rf "$WORK" && mkdir -p "$WORK"
DATA=$WORK/data
step "generating $DATA (6 hours at 5 events/s) and slicing it into 30 parts"
"$BIN/producer" --out-dir "$DATA" --duration 6h --rate 5 --partitions 3 --seed 9 --start 2025-11-03T00:00:00Z \
  --duplicates 0.02 --late 0.005 --invalid 0.005 --outliers 0.01 --metrics-addr 127.0.0.1:0
for p in 0 1 2; do
  mkdir -p "$WORK/slices/p$p"
  split -n l/30 -d -a 2 "$DATA/partition-$p.jsonl" "$WORK/slices/p$p/"
done
for s in $(seq -w 0 29); do
  mkdir -p "$WORK/slices/$s"
  for p in 0 1 2; do mv "$WORK/slices/p$p/$s" "$WORK/slices/$s/partition-$p.jsonl"; done
done

cleanup() {
  jobs -p | xargs -r kill -9 2>/dev/null || true
  kafka_stop || true
}
trap cleanup EXIT
step "starting tansu"
kafka_start "$WORK/broker"
echo "broker at $KAFKA_BROKERS"

step "live job, killed with SIGKILL 5 times while the producer writes"
LIVE=$WORK/live
live_job() {
  "$BIN/dataflow" --brokers "$KAFKA_BROKERS" --topic live --output "$LIVE" -w 2 --metrics-addr 127.0.0.1:0 \
    --progress never >>"$WORK/live.log" 2>&1 &
  job=$!
}
# The topic exists (with 3 partitions) before the job starts: the first slice creates it.
"$BIN/producer" replay "$WORK/slices/00" --brokers "$KAFKA_BROKERS" --topic live --metrics-addr 127.0.0.1:0 >/dev/null
(
  for s in $(seq -w 1 29); do
    sleep 1
    "$BIN/producer" replay "$WORK/slices/$s" --brokers "$KAFKA_BROKERS" --topic live --metrics-addr 127.0.0.1:0 >/dev/null
  done
) &
producer=$!
live_job
for kill in 1 2 3 4 5; do
  sleep "$((2 + RANDOM % 5)).$((RANDOM % 10))"
  kill -0 "$job" 2>/dev/null || fail "the live job exited on its own before kill $kill (see $WORK/live.log)"
  kill -9 "$job"
  wait "$job" 2>/dev/null || true
  echo "kill $kill: SIGKILL after $(ls "$LIVE/_checkpoint" 2>/dev/null | wc -l) checkpoint files; restarting"
  live_job
done
wait "$producer" || fail "the producer failed"
# Caught up: the committed frontier stops moving once every message has been read.
last=""
for _ in $(seq 60); do
  sleep 2
  now=$(ls "$LIVE/_checkpoint" | sort | tail -n 1)
  [ "$now" = "$last" ] && break
  last=$now
done
kill -INT "$job"
wait "$job" || fail "the live job did not stop cleanly on SIGINT (see $WORK/live.log)"

step "reference: a bounded run over the topic from a fresh output"
"$BIN/dataflow" --brokers "$KAFKA_BROKERS" --topic live --output "$WORK/reference" --bounded -w 2 \
  --metrics-addr 127.0.0.1:0 --progress never > "$WORK/reference.txt" 2>"$WORK/reference.log"
"$BIN/analytics" diff --prefix "$LIVE" "$WORK/reference" | tee "$WORK/live-diff.txt" \
  || fail "the live run's committed rows differ from the reference (above)"
grep -q "^same tables" "$WORK/live-diff.txt" || fail "analytics diff --prefix printed no verdict"

step "cluster: -n 2 bounded, process 1 killed with SIGKILL mid-run, both restarted"
hostfile 2 "$WORK/hosts.txt"
cluster_job() { # PROCESS LOG [METRICS_PORT]: starts one process in the background; its PID in $pid
  "$BIN/dataflow" --brokers "$KAFKA_BROKERS" --topic live --output "$WORK/cluster" --bounded -w 1 -n 2 -p "$1" \
    -h "$WORK/hosts.txt" --metrics-addr "127.0.0.1:${3:-0}" --progress never \
    --kafka-option fetch.message.max.bytes=4096 >"$2" 2>&1 &
  pid=$!
}
p1_port=$(free_port)
cluster_job 1 "$WORK/cluster-p1-killed.log" "$p1_port"; p1=$pid
cluster_job 0 "$WORK/cluster-p0-first.log"; p0=$pid
# Kill process 1 once it has read a few thousand messages (it is mid-run).
wait_until_read "$p1_port" "$p1" 5000 "$WORK/cluster-p1-killed.log"
before=$(metric_value "$p1_port" iot_etl_events_read_total)
kill -9 "$p1"
wait "$p1" 2>/dev/null || true
echo "process 1 killed with SIGKILL after reading $before messages"
grep -q "^lines read" "$WORK/cluster-p1-killed.log" && fail "process 1 had finished before the kill: the test killed nothing mid-run"
echo "process 0 must end on its own"
for _ in $(seq 300); do kill -0 "$p0" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$p0" 2>/dev/null; then
  kill -9 "$p0"
  fail "process 0 still ran 30 s after its peer was killed (a hang; see $WORK/cluster-p0-first.log)"
fi
if wait "$p0"; then fail "process 0 exited 0 although its peer died mid-run (see $WORK/cluster-p0-first.log)"; fi
echo "process 0 ended on its own with a non-zero exit code: $(grep -m 1 "^error: " "$WORK/cluster-p0-first.log")"
cluster_job 1 "$WORK/cluster-p1.log"; p1=$pid
cluster_job 0 "$WORK/cluster-p0.log"; p0=$pid
wait "$p0" || fail "process 0 failed after the restart (see $WORK/cluster-p0.log)"
wait "$p1" || fail "process 1 failed after the restart (see $WORK/cluster-p1.log)"
"$BIN/analytics" diff "$WORK/reference" "$WORK/cluster" || fail "-n 2 after a kill differs from the reference"
echo "PASS: live run killed 5 times equals the reference up to its frontier; -n 2 after a kill equals it exactly"
