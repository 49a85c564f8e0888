#!/usr/bin/env bash
# End-to-end test of exactly-once output to a real S3-compatible server (moto's server mode
# from PyPI, started on loopback; fails loudly if it cannot start):
#
#   tests/e2e/s3.sh [WORK_DIR]             # default WORK_DIR: target/e2e-s3 (recreated)
#
# 1. generates a day of events and processes it to a local folder (the expected tables);
# 2. runs the bounded job (-w 2) to s3://iot/clean and asserts that the bucket holds exactly
#    the expected tables and part files; `analytics check --output s3://iot/clean` passes,
#    `analytics diff` of the local run and the bucket finds nothing, and `analytics p95` over
#    s3://iot/clean/events (all dates, and one date) and `analytics outliers` print exactly the
#    local run's CSV;
#    `analytics check` on a copy of the local run missing one events file fails, naming windows;
# 3. runs it to s3://iot/crashed, killing it with SIGKILL at 5 random instants and
#    restarting it on the same output each time; after every kill no object a reader would
#    read is uncommitted; at the end the tables are exact and no pending object is left;
# 4. runs it to s3://iot/paused while the server is frozen (SIGSTOP) for 40 s mid-run and
#    then resumed: longer than the client's 30 s request timeout, so the request in flight
#    times out with its effect unknown (a delete's, too: S3's DeleteObjects is a POST that
#    object_store does not repeat itself); the job retries, finishes, and the tables are exact.
# Expects release binaries in target/release (scripts/test.sh builds them first).
set -euo pipefail
cd "$(dirname "$0")/../.."

source tests/e2e/common.sh

WORK=${1:-target/e2e-s3}
need_moto

rm -rf "$WORK" && mkdir -p "$WORK"
DATA=$WORK/data
step "generating $DATA"
"$BIN/producer" --out-dir "$DATA" --duration 1d --rate 2 --partitions 3 --seed 9 --start 2025-11-03T00:00:00Z \
  --duplicates 0.02 --late 0.005 --invalid 0.005 --outliers 0.01 --metrics-addr 127.0.0.1:0
"$BIN/dataflow" --input "$DATA" --output "$WORK/expected" --bounded -w 1 --metrics-addr 127.0.0.1:0 --progress never >/dev/null

step "starting moto_server on 127.0.0.1"
start_moto "$WORK/moto.log"
trap 'kill -CONT $MOTO 2>/dev/null || true; kill $MOTO 2>/dev/null || true; jobs -p | xargs -r kill 2>/dev/null || true' EXIT
export S3_ENDPOINT=$MOTO_URL AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1

s3() { # python3 helper: mkbucket | download PREFIX DIR | keys PREFIX
  python3 - "$@" <<'PY'
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1")
cmd = sys.argv[1]
def keys(prefix):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="iot", Prefix=prefix):
        for o in page.get("Contents", []):
            yield o["Key"]
if cmd == "mkbucket":
    s3.create_bucket(Bucket="iot")
elif cmd == "download":
    prefix, out = sys.argv[2].rstrip("/") + "/", sys.argv[3]
    import botocore.exceptions
    for k in keys(prefix):
        path = os.path.join(out, k[len(prefix):])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            s3.download_file("iot", k, path)
        except botocore.exceptions.ClientError as e:
            # Listed, then deleted by a request the killed job had already sent (a rename is
            # copy + delete): a deleted object is not visible to readers either.
            if e.response["Error"]["Code"] not in ("404", "NoSuchKey"):
                raise
elif cmd == "keys":
    prefix = sys.argv[2].rstrip("/") + "/"
    for k in keys(prefix):
        print(k[len(prefix):])
PY
}
s3 mkbucket

job() { # PREFIX: the bounded job to s3://iot/PREFIX
  "$BIN/dataflow" --input "$DATA" --output "s3://iot/$1" --bounded -w 2 --metrics-addr 127.0.0.1:0 --progress never
}
check() { # PREFIX: the bucket's tables equal the expected ones, nothing uncommitted is left
  rm -rf "$WORK/got-$1"
  s3 download "$1" "$WORK/got-$1" || fail "cannot download s3://iot/$1"
  "$BIN/analytics" diff "$WORK/expected" "$WORK/got-$1" || fail "s3://iot/$1 differs from the local run"
  if s3 keys "$1" | grep -E '(^|/)_[^/]*\.(pending|inprogress)$'; then fail "uncommitted objects left in s3://iot/$1"; fi
}
stray_check() { # PREFIX: every object a reader would read is committed (prints what it checked)
  rm -rf "$WORK/now"
  # A listing or download that fails is a failure of the check, never a pass.
  s3 download "$1" "$WORK/now" || { echo "cannot list or download s3://iot/$1 (above)" >&2; return 1; }
  python3 - "$WORK/now" <<'PY'
import datetime, json, os, re, sys
root = sys.argv[1]
committed, forgotten = set(), None
cp = os.path.join(root, "_checkpoint")
for name in (os.listdir(cp) if os.path.isdir(cp) else []):
    if name.startswith("commit-") and name.endswith(".json"):
        committed.update(json.load(open(os.path.join(cp, name)))["files"])
    elif name.startswith("base-") and name.endswith(".json"):  # folded records
        base = json.load(open(os.path.join(cp, name)))
        committed.update(base["committed"])
        # A fold forgets the names of partitions that ended at or before this instant
        # (connectors::sink::commit, "Fold"): those files are committed but not listed.
        if base.get("forgotten_before_micros") is not None:
            forgotten = max(forgotten or 0, base["forgotten_before_micros"])
def partition_end(path):  # microseconds after the hour (or day) of the file's hive folder
    m = re.search(r"year=(\d+)/month=(\d+)/day=(\d+)(?:/hour=(\d+))?/", path)
    if not m:
        return None
    start = datetime.datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=datetime.timezone.utc)
    end = start + (datetime.timedelta(hours=int(m[4]) + 1) if m[4] else datetime.timedelta(days=1))
    return int(end.timestamp()) * 1_000_000
def accounted(path):
    end = partition_end(path)
    return path in committed or (forgotten is not None and end is not None and end <= forgotten)
visible = set()
for dirpath, _, files in os.walk(root):
    for f in files:
        rel = os.path.relpath(os.path.join(dirpath, f), root)
        if f.endswith(".parquet") and not f.startswith("_") and not rel.startswith("_"):
            visible.add(rel)
stray = {f for f in visible if not accounted(f)}
if stray:
    sys.exit(f"visible but not committed: {sorted(stray)[:5]}")
print(f"{len(visible)} visible files, all committed ({len(committed)} names listed, older partitions forgotten before {forgotten})")
PY
}

step "clean run to s3://iot/clean"
start=$EPOCHREALTIME
job clean > "$WORK/clean.txt"
full=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
echo "uninterrupted run: $full s"
check clean

step "analytics reads s3://iot/clean through the engine's store layer"
"$BIN/analytics" check --output s3://iot/clean || fail "analytics check --output s3://iot/clean"
"$BIN/analytics" diff "$WORK/expected" s3://iot/clean || fail "analytics diff: s3://iot/clean differs from the local run"
"$BIN/analytics" p95 --table s3://iot/clean/events --csv - > "$WORK/p95-s3.csv" || fail "analytics p95 --table s3://iot/clean/events"
"$BIN/analytics" p95 --table "$WORK/expected/events" --csv - > "$WORK/p95-local.csv"
[ "$(wc -l < "$WORK/p95-local.csv")" -gt 1 ] || fail "the local run has no daily p95 rows"
cmp "$WORK/p95-s3.csv" "$WORK/p95-local.csv" || fail "analytics p95 over s3://iot/clean/events differs from the local run's"
day=$(sed -n 2p "$WORK/p95-local.csv" | cut -d, -f1)
"$BIN/analytics" p95 --table s3://iot/clean/events --from "$day" --to "$day" --csv - | cmp - <(head -1 "$WORK/p95-local.csv"; grep "^$day," "$WORK/p95-local.csv") \
  || fail "analytics p95 --from $day --to $day over S3 differs from the local run's rows of that day"
cmp <("$BIN/analytics" outliers --table s3://iot/clean/events --csv -) <("$BIN/analytics" outliers --table "$WORK/expected/events" --csv -) \
  || fail "analytics outliers over s3://iot/clean/events differs from the local run's"
echo "analytics check, diff, p95 ($(($(wc -l < "$WORK/p95-local.csv") - 1)) daily rows) and outliers agree over S3"

step "analytics check fails on a deliberately altered copy of the local run"
cp -r "$WORK/expected" "$WORK/altered"
victim=$(find "$WORK/altered/events" -name 'part-*.parquet' | sort | sed -n 5p)
[ -n "$victim" ] || fail "the local run has fewer than 5 events files"
rm "$victim"
if "$BIN/analytics" check --output "$WORK/altered" > "$WORK/altered.txt" 2>&1; then
  fail "analytics check passed on an output missing ${victim#$WORK/altered/}"
fi
grep -q "windows" "$WORK/altered.txt" || fail "analytics check did not report the windows that no longer match: $(head -5 "$WORK/altered.txt")"
echo "analytics check reports $(grep -c . "$WORK/altered.txt") lines for the missing ${victim#$WORK/altered/}"

step "SIGKILL at 5 random instants, restarts on s3://iot/crashed"
kills=0 attempts=0
while [ "$kills" -lt 5 ]; do
  attempts=$((attempts + 1))
  [ "$attempts" -le 40 ] || fail "could kill only $kills runs"
  delay=$(python3 -c "import random; random.seed($attempts); print(round(random.uniform(0.2, $full), 2))")
  job crashed > /dev/null 2>> "$WORK/crashed.log" &
  pid=$!
  sleep "$delay"
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true
    kills=$((kills + 1))
    sleep 0.5 # requests the job sent before it died may still be served
    checked=$(stray_check crashed) || fail "after kill $kills at ${delay}s: the stray-object check failed (above)"
    echo "killed at ${delay}s: $checked"
  else
    wait "$pid" || fail "a run failed (see $WORK/crashed.log)"
    # It finished before the kill: start over, to keep killing mid-run.
    s3 keys crashed | python3 -c "
import os, sys, boto3
s3 = boto3.client('s3', endpoint_url=os.environ['S3_ENDPOINT'], region_name='us-east-1')
for k in sys.stdin.read().split():
    s3.delete_object(Bucket='iot', Key='crashed/' + k)"
  fi
done
job crashed > /dev/null 2>> "$WORK/crashed.log" || fail "the final run failed (see $WORK/crashed.log)"
check crashed

FREEZE=40
step "server frozen for $FREEZE s mid-run (s3://iot/paused)"
job paused > "$WORK/paused.txt" 2> "$WORK/paused.log" &
pid=$!
sleep "$(awk -v f="$full" 'BEGIN { printf "%.2f", f / 3 }')"
kill -0 "$pid" 2>/dev/null || fail "the job ended before the server could be frozen"
kill -STOP $MOTO
sleep "$FREEZE"
kill -0 "$pid" 2>/dev/null || fail "the job exited while the server was frozen (see $WORK/paused.log)"
kill -CONT $MOTO
wait "$pid" || fail "the job failed after the server resumed (see $WORK/paused.log)"
check paused
# The freeze outlasts the client's 30 s request timeout, so the request in flight when the
# server froze must have failed on the transport and been retried (by object_store or by
# our own retry, both log "transport"); none means the freeze tested nothing.
retried=$(grep -c 'transport' "$WORK/paused.log" || true)
[ "$retried" -ge 1 ] || fail "no request was retried during the $FREEZE s freeze: the job made no request while the server was frozen (see $WORK/paused.log)"
echo "requests retried after the freeze: $retried"
echo "PASS: S3 output is exact: clean run, $kills SIGKILLs with restarts, $FREEZE s server freeze"
