#!/usr/bin/env bash
# End-to-end test that the credentials given to the engine never leave it: not in its logs
# (stdout and stderr, at RUST_LOG=trace), not on its HTTP pages (/metrics, /healthz, /readyz
# and the built-in producer's /metrics), not in what it writes (tables and commit records):
#
#   tests/e2e/secrets.sh [WORK_DIR]          # default WORK_DIR: target/e2e-secrets (recreated)
#
# Each run draws fresh random secrets, so that nothing but a leak can contain them, and passes
# them in every form the engine takes (connectors/src/kafka/mod.rs, `resolve_option`): a
# literal `--kafka-option KEY=VALUE`, `KEY=@env:NAME`, `KEY=@file:PATH`; and the S3 client's
# AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (moto's server accepts any).
# 1. the embedded live run (librdkafka's in-process mock cluster; it speaks no SASL, so the
#    options sasl.username=VALUE and sasl.password=@env:NAME are set on the engine's Kafka
#    clients but never used on the wire) writes to s3://iot/run-<token> on moto's S3 server
#    (PyPI; started on loopback, fails loudly if it cannot start); once it has committed, its
#    pages are read, then SIGINT stops it;
# 2. the same with security.protocol=SASL_PLAINTEXT and sasl.password=@file:PATH: the mock
#    broker cannot authenticate it, and the engine must fail (the broker's error is printed);
# 3. a secret as a value librdkafka rejects (security.protocol=@file:PATH): its message quotes
#    the value, as it does for an option this build lacks (ssl.key.password without OpenSSL);
# 4. the password under a mistyped option name (sasl.pasword=@env:NAME): refused at start;
# 5. `analytics p95` and `analytics diff` read the bucket with the same credentials;
# 6. `dataflow --help` with the secrets in the environment (clap shows the values of `env` flags).
# Then every file collected (logs, pages, and every object in the bucket, downloaded) is
# searched for each secret's first 12 characters (a truncated print counts too). Parquet pages
# are compressed, so for the tables the search covers their metadata; no secret can reach
# their rows, which hold the producer's events only.
#
# The search is kept honest: the run's output URL holds a token of its own that the engine does
# log, and the search must find it in the logs; the bucket must hold commit records and tables
# and the pages the engine's counters, or the test fails (a search over nothing passes anything).
# Expects release binaries in target/release (scripts/test.sh builds them first).
set -euo pipefail
cd "$(dirname "$0")/../.."

source tests/e2e/common.sh

WORK=${1:-target/e2e-secrets}
need_moto
rm -rf "$WORK" && mkdir -p "$WORK/found" "$WORK/bucket"
FOUND=$WORK/found # every log and page the search covers; the bucket is downloaded to $WORK/bucket

token() { python3 -c 'import secrets; print(secrets.token_hex(16))'; }
SASL_USER=user$(token)
SASL_PASSWORD=pass$(token)
REJECTED_VALUE=rejected$(token)
AWS_ACCESS_KEY_ID=AKIA$(token | tr a-f A-F | cut -c1-16)
AWS_SECRET_ACCESS_KEY=secret$(token)
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
export IOT_ETL_TEST_SASL_PASSWORD=$SASL_PASSWORD
printf '%s\n' "$SASL_PASSWORD" > "$WORK/sasl-password"
printf '%s\n' "$REJECTED_VALUE" > "$WORK/rejected-value"
CANARY=canary$(token) # not a secret: the output URL holds it, and the engine logs that URL
SECRETS=(SASL_USER SASL_PASSWORD REJECTED_VALUE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY)
KAFKA_OPTIONS=(--kafka-option "sasl.username=$SASL_USER" --kafka-option "sasl.password=@env:IOT_ETL_TEST_SASL_PASSWORD")
EMBEDDED=(--metrics-addr 127.0.0.1:0 --producer-metrics-addr 127.0.0.1:0 --progress never)

step "starting moto_server on 127.0.0.1"
start_moto "$WORK/moto.log"
ENGINE=
trap '[ -z "$ENGINE" ] || kill -9 $ENGINE 2>/dev/null || true; kill $MOTO 2>/dev/null || true' EXIT
export S3_ENDPOINT=$MOTO_URL AWS_REGION=us-east-1
python3 -c 'import os, boto3; boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"]).create_bucket(Bucket="iot")' \
  || fail "cannot create the bucket iot on $S3_ENDPOINT"

export RUST_LOG=trace # every level: debug and beyond
OUTPUT=s3://iot/run-$CANARY
ENGINE_PORT=$(free_port) PRODUCER_PORT=$(free_port)
step "1. embedded live run to $OUTPUT with the secrets (RUST_LOG=$RUST_LOG)"
"$BIN/dataflow" -w 2 --rate 100 --allowed-lateness 2s --output "$OUTPUT" "${KAFKA_OPTIONS[@]}" \
  --metrics-addr "127.0.0.1:$ENGINE_PORT" --producer-metrics-addr "127.0.0.1:$PRODUCER_PORT" --progress always \
  > "$FOUND/live.stdout" 2> "$FOUND/live.stderr" &
ENGINE=$!
deadline=$((SECONDS + 120))
until [ "$(metric_value "$ENGINE_PORT" iot_etl_last_committed_epoch || echo 0)" -ge 1 ] 2>/dev/null; do
  kill -0 $ENGINE 2>/dev/null || { tail -20 "$FOUND/live.stderr" >&2; fail "the engine exited before its first commit"; }
  [ "$SECONDS" -lt "$deadline" ] || fail "no commit within 120 s (see $FOUND/live.stderr)"
  sleep 1
done
for page in metrics healthz readyz; do
  curl -sS "http://127.0.0.1:$ENGINE_PORT/$page" > "$FOUND/engine-$page.txt" || fail "cannot read the engine's /$page"
done
curl -sS "http://127.0.0.1:$PRODUCER_PORT/metrics" > "$FOUND/producer-metrics.txt" || fail "cannot read the built-in producer's /metrics"
grep -q '^iot_etl_events_read_total [1-9]' "$FOUND/engine-metrics.txt" || fail "the engine's /metrics has no events read"
kill -INT $ENGINE
wait $ENGINE || fail "the engine did not stop cleanly on SIGINT (see $FOUND/live.stderr)"
ENGINE=
echo "committed, stopped; $(wc -l < "$FOUND/live.stderr") lines on stderr"

# Runs the embedded engine with ARGS, which must make it fail at start (LOG: its output's
# name); the error must name NEEDLE.
must_refuse() { # LOG NEEDLE ARGS...
  if "$BIN/dataflow" --output "$WORK/unused-$1" "${EMBEDDED[@]}" "${@:3}" > "$FOUND/$1.stdout" 2> "$FOUND/$1.stderr"; then
    fail "the engine started with ${*:3} (see $FOUND/$1.stderr)"
  fi
  grep -m1 '^error: ' "$FOUND/$1.stderr" | grep -F "$2" || fail "the error does not name $2 (see $FOUND/$1.stderr)"
}

step "2. SASL_PLAINTEXT, sasl.password=@file: the mock broker cannot authenticate, the engine fails"
must_refuse sasl "iot-events" --kafka-option "sasl.username=$SASL_USER" --kafka-option "sasl.password=@file:$WORK/sasl-password" \
  --kafka-option security.protocol=SASL_PLAINTEXT --kafka-option sasl.mechanism=PLAIN

step "3. a secret as a value librdkafka rejects (security.protocol=@file:)"
must_refuse rejected "security.protocol" --kafka-option "security.protocol=@file:$WORK/rejected-value"

step "4. the password under a mistyped option name (sasl.pasword=@env:)"
must_refuse typo "sasl.pasword" --kafka-option "sasl.pasword=@env:IOT_ETL_TEST_SASL_PASSWORD"

step "5. analytics reads $OUTPUT with the same credentials"
"$BIN/analytics" p95 --table "$OUTPUT/events" --csv - > "$FOUND/analytics-p95.stdout" 2> "$FOUND/analytics-p95.stderr" \
  || fail "analytics p95 --table $OUTPUT/events (see $FOUND/analytics-p95.stderr)"
"$BIN/analytics" diff "$OUTPUT" "$OUTPUT" > "$FOUND/analytics-diff.stdout" 2> "$FOUND/analytics-diff.stderr" \
  || fail "analytics diff of $OUTPUT with itself (see $FOUND/analytics-diff.stderr)"

step "6. dataflow --help with the secrets in the environment"
"$BIN/dataflow" --help > "$FOUND/help.stdout" 2> "$FOUND/help.stderr"

step "downloading every object of s3://iot/"
python3 - "$WORK/bucket" <<'PY' || fail "cannot download the bucket"
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"])
n = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="iot"):
    for o in page.get("Contents", []):
        path = os.path.join(sys.argv[1], o["Key"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file("iot", o["Key"], path)
        n += 1
print(f"{n} objects")
PY
records=$(find "$WORK/bucket" -path '*/_checkpoint/*' -name '*.json' | wc -l)
tables=$(find "$WORK/bucket" -name '*.parquet' | wc -l)
if [ "$records" -lt 1 ] || [ "$tables" -lt 1 ]; then
  fail "the bucket holds $records commit records and $tables tables: nothing to search"
fi
echo "$records commit records, $tables Parquet files"

step "searching $(find "$FOUND" "$WORK/bucket" -type f | wc -l) files for the secrets"
# The control first: a token the engine does print must be found, or the search is broken.
grep -rqF "${CANARY:0:12}" "$FOUND" || fail "the search did not find the output URL's token in the logs: the search itself is broken"
leaks=0
for name in "${SECRETS[@]}"; do
  value=${!name}
  if hits=$(grep -rlaF "${value:0:12}" "$FOUND" "$WORK/bucket"); then
    echo "LEAK: $name appears in: $(echo "$hits" | tr '\n' ' ')" >&2
    grep -raF -m2 "${value:0:12}" "$FOUND" "$WORK/bucket" | cut -c1-300 >&2
    leaks=$((leaks + 1))
  else
    echo "  $name: not found"
  fi
done
[ "$leaks" = 0 ] || fail "$leaks of ${#SECRETS[@]} secrets appear in the engine's logs, pages or outputs (above)"
echo "PASS: no secret in $(find "$FOUND" -type f | wc -l) logs and pages and $((records + tables)) objects; the control token was found"
