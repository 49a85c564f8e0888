#!/usr/bin/env bash
# Soak under load (README.md, "Benchmarks"): the live job against a real Kafka-protocol broker
# (tansu on loopback, scripts/services/kafka.sh) with the producer sending at the highest rate
# the broker and the job sustain together on this machine, for MINUTES; not a CI test.
#
#   scripts/bench-soak.sh [MINUTES] [WORKERS] [RATE]   # default: 10 minutes, -w 2, 5000 events/s
#   START=2026-12-03T23:57:00Z scripts/bench-soak.sh    # event time from START (paced as well):
#                                                       # crosses a midnight after 3 minutes
#   EVENT_RATE=10 scripts/bench-soak.sh 15              # day cycles: see below
#   JOB_ARGS='--fold-every 0' scripts/bench-soak.sh         # more flags for the job
#
# Every 10 s it samples the job's RSS, its consumer lag (sum of
# iot_etl_partition_lag_messages), the messages it has read and the producer has sent, and
# whether it is alive; at the end it prints the samples, then:
# - lag at the end, and its slope over the second half (messages/min: bounded means ~0);
# - RSS slope after warm-up (the second half, least squares, MB/min: flat means ~0);
# - p99 window commit latency (the engine's summary after Ctrl-C);
# - errors: ERROR lines in the job's log, and whether it exited 0.
# The producer is paced in wall-clock time (event time = now) at RATE events/s (default
# 5,000, about what tansu with SQLite storage takes in on this 2-core machine: it ingests a
# replay at ~30,000 messages/s but needs CPU for the reads too), with 2 % duplicates. The job
# runs with 5 s of allowed lateness (windows commit every minute) and a 2-minute dedup
# horizon, so that the ids it remembers reach their steady size within the warm-up; the one
# state that grows by design is the open day's durations (16 bytes per distinct event,
# ~4.8 MB per minute at 5,000 events/s), which the RSS slope should match.
#
# With EVENT_RATE=N the producer is not paced in event time: it sends events N per second of
# event time, from START (default 2026-01-01T00:00:00Z), at SEND_RATE messages per second of
# wall-clock time (default 22,000: the broker, the producer and the job share this machine's
# 2 cores; unthrottled, the producer sent ~31,000/s while the job read ~27,000/s, so the lag
# grew; SEND_RATE=0 sends as fast as the broker takes them), so that event days pass in
# minutes (at 10 events/s a day is 864,000 events, ~40 s here) and the day state is released
# at every midnight. The RSS then cycles with the event days; the report adds
# each complete event day's peak and trough RSS and their slope per day: flat after warm-up
# means the peaks do not grow from one day to the next.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-10}
WORKERS=${2:-2}
RATE=${3:-5000}
START=${START:-}
EVENT_RATE=${EVENT_RATE:-}
SEND_RATE=${SEND_RATE:-22000}
if [ -n "$EVENT_RATE" ]; then
  PACING=(--no-pace --max-send-rate "$SEND_RATE" --rate "$EVENT_RATE" --duration 365d --start "${START:-2026-01-01T00:00:00Z}")
else
  PACING=(--rate "$RATE" ${START:+--start "$START"})
fi
cargo build --release -p dataflow -p producer >&2
source scripts/services/kafka.sh
kafka_install
WORK=$(mktemp -d)
cleanup() {
  jobs -p | xargs -r kill -9 2>/dev/null || true
  kafka_stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
kafka_start "$WORK/broker" >&2
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
JOB_PORT=$(free_port)
PRODUCER_PORT=$(free_port)
target/release/producer --brokers "$KAFKA_BROKERS" --topic soak --partitions 3 "${PACING[@]}" \
  --duplicates 0.02 --metrics-addr "127.0.0.1:$PRODUCER_PORT" >/dev/null 2>"$WORK/producer.log" &
PRODUCER=$!
sleep 3 # the producer creates the topic
target/release/dataflow --brokers "$KAFKA_BROKERS" --topic soak -w "$WORKERS" --output "$WORK/out" \
  --allowed-lateness 5s --dedup-horizon 2m ${JOB_ARGS:-} \
  --metrics-addr "127.0.0.1:$JOB_PORT" --progress never > "$WORK/summary.txt" 2> "$WORK/job.log" &
JOB=$!
metric() { # PORT NAME [min]: the sum (or the least) of a metric's samples
  python3 - "$@" <<'PY' 2>/dev/null || echo 0
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=2).read().decode()
values = [float(l.split()[-1]) for l in body.splitlines() if l.startswith(sys.argv[2] + "{") or l.startswith(sys.argv[2] + " ")]
print(int((min(values) if values else 0) if sys.argv[3:] == ["min"] else sum(values)))
PY
}
if [ -n "$EVENT_RATE" ]; then
  PRODUCING="$EVENT_RATE events per event-second, at most $SEND_RATE messages/s"
else
  PRODUCING="$RATE events/s paced in wall-clock time"
fi
echo "soak: -w $WORKERS, producer $PRODUCING, for $MINUTES minutes against tansu at $KAFKA_BROKERS" >&2
printf '%6s %10s %10s %12s %12s %12s\n' "t_s" "rss_mb" "lag" "read" "sent" "event_day" | tee "$WORK/samples.txt"
for i in $(seq $((MINUTES * 6))); do
  sleep 10
  kill -0 "$JOB" 2>/dev/null || { echo "the job died (see its log):" >&2; tail -20 "$WORK/job.log" >&2; exit 1; }
  rss=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$JOB/status")
  printf '%6d %10s %10s %12s %12s %12s\n' $((i * 10)) "$rss" "$(metric "$JOB_PORT" iot_etl_partition_lag_messages)" \
    "$(metric "$JOB_PORT" iot_etl_events_read_total)" "$(metric "$PRODUCER_PORT" producer_messages_sent_total)" \
    "$(( $(metric "$JOB_PORT" iot_etl_partition_watermark_seconds min) / 86400 ))" | tee -a "$WORK/samples.txt"
done
kill -INT "$JOB"
if wait "$JOB"; then status=0; else status=$?; fi
kill "$PRODUCER" 2>/dev/null || true
python3 - "$WORK/samples.txt" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
t = [float(r[0]) / 60 for r in rows]; rss = [float(r[1]) for r in rows]; lag = [float(r[2]) for r in rows]
read = [float(r[3]) for r in rows]
half = len(rows) // 2
def slope(x, y):
    n = len(x); mx = sum(x) / n; my = sum(y) / n
    d = sum((a - mx) ** 2 for a in x)
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / d if d else 0.0
print(f"read: {read[-1]:.0f} messages, {read[-1] / (t[-1] * 60):.0f} per second on average")
lag_slope = slope(t[half:], lag[half:])
rate = (read[-1] - read[half]) / (t[-1] - t[half]) if t[-1] > t[half] else 0
# Bounded: over the second half the lag grows by less than 2 % of what is read per minute.
verdict = "bounded" if lag_slope < 0.02 * rate else "GROWING"
print(f"lag at the end: {lag[-1]:.0f} messages; slope over the second half: {lag_slope:+.0f} messages/min ({verdict}: {rate:.0f} messages/min read)")
print(f"RSS: {rss[half]:.1f} MB at the half, {rss[-1]:.1f} MB at the end, max {max(rss):.1f} MB; slope over the second half: {slope(t[half:], rss[half:]):+.2f} MB/min")
# Event days the job read from start to end (not the first, whose start is warm-up, nor the last).
day = [int(r[5]) for r in rows]
complete = sorted(d for d in set(day) if day.count(d) >= 2 and d not in (day[0], day[-1]) and d > 0)
if len(complete) >= 2:
    peaks = [max(r for r, d in zip(rss, day) if d == k) for k in complete]
    troughs = [min(r for r, d in zip(rss, day) if d == k) for k in complete]
    print("event days read whole: " + ", ".join(f"day {k}: {lo:.0f}-{hi:.0f} MB" for k, lo, hi in zip(complete, troughs, peaks)))
    print(f"RSS per event day: peak slope {slope(list(range(len(peaks))), peaks):+.1f} MB/day, trough slope {slope(list(range(len(troughs))), troughs):+.1f} MB/day over {len(complete)} days")
PY
grep -E '^(lines read|window commits|elapsed)' "$WORK/summary.txt" || true
errors=$(grep -c ' ERROR ' "$WORK/job.log" || true)
echo "errors: $errors ERROR lines in the job's log; exit code after Ctrl-C: $status"
[ "$status" = 0 ] && [ "$errors" = 0 ]
