#!/usr/bin/env bash
# End-to-end test of the Kafka source against a real Kafka-protocol broker (tansu, installed
# and started on loopback by scripts/services/kafka.sh; fails loudly if it cannot start):
#
#   tests/e2e/kafka.sh [WORK_DIR]          # default WORK_DIR: target/e2e-kafka (recreated)
#
# 1. generates a day of events with duplicates, late, invalid and outlier events into 3
#    partition files, and processes them with the file source (the expected tables);
# 2. `producer replay`s the folder into a 3-partition topic;
# 3. runs the bounded job from the topic with -w 2, and with -n 2 (two processes on
#    loopback), and asserts with `analytics diff` that both wrote exactly the file source's
#    tables and part files;
# 4. runs it again and kills the broker (SIGKILL) while the job reads, restarts the broker
#    on the same port and storage 3 s later, and asserts that the job resumes, exits 0 and
#    wrote the same tables.
# Expects release binaries in target/release (scripts/test.sh builds them first).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/services/kafka.sh

source tests/e2e/common.sh

WORK=${1:-target/e2e-kafka}

kafka_install
rm -rf "$WORK" && mkdir -p "$WORK"
DATA=$WORK/data
step "generating $DATA"
"$BIN/producer" --out-dir "$DATA" --duration 1d --rate 4 --partitions 3 --seed 5 --start 2025-11-03T00:00:00Z \
  --duplicates 0.02 --late 0.005 --invalid 0.005 --outliers 0.01 --metrics-addr 127.0.0.1:0

step "file source (expected tables)"
"$BIN/dataflow" --input "$DATA" --output "$WORK/files" --bounded -w 1 --metrics-addr 127.0.0.1:0 --progress never

trap 'kafka_stop || true; jobs -p | xargs -r kill 2>/dev/null || true' EXIT
step "starting tansu"
kafka_start "$WORK/broker"
echo "broker at $KAFKA_BROKERS"
step "replaying $DATA into topic iot-events"
"$BIN/producer" replay "$DATA" --brokers "$KAFKA_BROKERS" --topic iot-events --metrics-addr 127.0.0.1:0

kafka_job() { # OUTPUT extra-flags...: a bounded job over the topic
  local out=$1; shift
  "$BIN/dataflow" --brokers "$KAFKA_BROKERS" --topic iot-events --output "$out" --bounded --progress never "$@"
}

step "Kafka source, -w 2"
kafka_job "$WORK/kafka-w2" -w 2 --metrics-addr 127.0.0.1:0 | tee "$WORK/kafka-w2.txt"
"$BIN/analytics" diff "$WORK/files" "$WORK/kafka-w2" || fail "-w 2 over Kafka differs from the file source"

step "Kafka source, -n 2 (two processes)"
hostfile 2 "$WORK/hosts.txt"
kafka_job "$WORK/kafka-n2" -w 1 -n 2 -p 1 -h "$WORK/hosts.txt" --metrics-addr 127.0.0.1:0 > "$WORK/kafka-n2-p1.txt" &
p1=$!
kafka_job "$WORK/kafka-n2" -w 1 -n 2 -p 0 -h "$WORK/hosts.txt" --metrics-addr 127.0.0.1:0 > "$WORK/kafka-n2-p0.txt"
wait "$p1" || fail "process 1 of -n 2 failed"
"$BIN/analytics" diff "$WORK/files" "$WORK/kafka-n2" || fail "-n 2 over Kafka differs from the file source"

step "broker killed with SIGKILL mid-run and restarted"
metrics_port=$(free_port)
# A small fetch size makes the run long enough to be interrupted while it reads.
kafka_job "$WORK/kafka-restart" -w 2 --metrics-addr "127.0.0.1:$metrics_port" \
  --kafka-option fetch.message.max.bytes=4096 > "$WORK/kafka-restart.txt" 2> "$WORK/kafka-restart.log" &
job=$!
wait_until_read "$metrics_port" "$job" 1000 "$WORK/kafka-restart.log"
before=$(metric_value "$metrics_port" iot_etl_events_read_total)
kafka_kill9
echo "broker killed after $before messages read; restarting in 3 s"
sleep 3
kill -0 "$job" 2>/dev/null || fail "the job exited while the broker was down"
kafka_start "$KAFKA_DATA_DIR" "$KAFKA_PORT"
wait "$job" || fail "the job failed after the broker restart (see $WORK/kafka-restart.log)"
total=$(awk '/^lines read/ { print $3 }' "$WORK/kafka-restart.txt")
[ "$before" -lt "$total" ] || fail "the broker was killed after the job had read everything ($before of $total)"
"$BIN/analytics" diff "$WORK/files" "$WORK/kafka-restart" || fail "the tables differ after a broker restart"
echo "PASS: Kafka source equals the file source (-w 2, -n 2, broker restart after $before of $total messages)"
