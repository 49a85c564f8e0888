#!/usr/bin/env bash
# End-to-end test of the monitoring kit against a real Prometheus (Debian's package, started
# on loopback; fails loudly if it cannot start) scraping a live engine and producer:
#
#   tests/e2e/prometheus.sh [WORK_DIR]     # default WORK_DIR: target/e2e-prometheus
#
# 1. starts the embedded run (`dataflow` with no input flags: in-process Kafka and the
#    built-in producer at 100 events/s, live, 2 s allowed lateness, provisional daily values
#    every minute) with its engine and producer metrics on free ports;
# 2. starts Prometheus with monitoring/prometheus.yml, its targets rewritten to those ports
#    and its scrape and evaluation intervals to 1 s;
# 3. once the engine has committed window rows and Prometheus has scraped for a while,
#    asserts that every panel query of monitoring/grafana/dashboards/pipeline.json returns
#    at least one series, and that every alert rule is loaded and evaluated without error.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/e2e/common.sh
source scripts/services/prometheus.sh

WORK=${1:-target/e2e-prometheus}
prometheus_install
rm -rf "$WORK" && mkdir -p "$WORK"
ENGINE_PORT=$(free_port) PRODUCER_PORT=$(free_port) PROM_PORT=$(free_port)

step "embedded run: engine metrics on :$ENGINE_PORT, producer metrics on :$PRODUCER_PORT"
"$BIN/dataflow" -w 2 --rate 100 --allowed-lateness 2s --daily-refresh 1m --output "$WORK/out" \
  --metrics-addr "127.0.0.1:$ENGINE_PORT" --producer-metrics-addr "127.0.0.1:$PRODUCER_PORT" --progress never \
  > "$WORK/engine.txt" 2> "$WORK/engine.log" &
ENGINE=$!
trap 'kill -INT $ENGINE 2>/dev/null || true; prometheus_stop || true' EXIT

step "Prometheus on :$PROM_PORT with monitoring/prometheus.yml (targets and intervals rewritten)"
sed -e "s/127.0.0.1:9187/127.0.0.1:$ENGINE_PORT/; s/127.0.0.1:8082/127.0.0.1:$PRODUCER_PORT/" \
    -e "s/scrape_interval: 15s/scrape_interval: 1s/; s/evaluation_interval: 15s/evaluation_interval: 1s/" \
    monitoring/prometheus.yml > "$WORK/prometheus.yml"
cp monitoring/alerts.yml "$WORK/alerts.yml"
grep -q "127.0.0.1:$ENGINE_PORT" "$WORK/prometheus.yml" || fail "could not rewrite the engine target in monitoring/prometheus.yml"
prometheus_start "$WORK/prometheus.yml" "$PROM_PORT" "$WORK/prometheus"

step "waiting for committed window rows and a provisional daily p95 (up to 180 s)"
deadline=$((SECONDS + 180))
until [ "$(prometheus_api /api/v1/query 'query=sum(iot_etl_windows_emitted_total) > 0 and sum(iot_etl_daily_p95_provisional_milliseconds) > 0' \
  | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["data"]["result"]))')" = 1 ]; do
  kill -0 $ENGINE 2>/dev/null || { tail -20 "$WORK/engine.log" >&2; fail "the engine exited"; }
  [ "$SECONDS" -lt "$deadline" ] || fail "no window rows and provisional daily p95 seen by Prometheus within 180 s"
  sleep 2
done
sleep 5 # a few more scrapes, so that every rate() has two samples

step "every dashboard panel query returns a series"
python3 monitoring/panel_queries.py monitoring/grafana/dashboards/pipeline.json > "$WORK/queries.txt"
failed=0
while IFS= read -r query; do
  n=$(prometheus_api /api/v1/query "query=$query" | python3 -c 'import json, sys; r = json.load(sys.stdin); print(len(r["data"]["result"]) if r["status"] == "success" else -1)')
  if [ "$n" -ge 1 ]; then
    echo "  $n series: $query"
  else
    echo "  NO SERIES: $query" >&2
    failed=1
  fi
done < "$WORK/queries.txt"
[ "$failed" = 0 ] || fail "some dashboard queries return nothing"

step "alert rules are loaded and evaluate"
prometheus_api /api/v1/rules | python3 -c '
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
rules = [r for g in groups for r in g["rules"]]
bad = [r["name"] for r in rules if r.get("health") != "ok" or not r.get("lastEvaluation", "").startswith("20")]
print(f"  {len(rules)} rules, health ok: {len(rules) - len(bad)}")
sys.exit(f"rules not evaluated cleanly: {bad}" if bad or not rules else 0)' || fail "alert rules do not evaluate"

step "SIGINT stops the engine cleanly"
kill -INT $ENGINE
wait $ENGINE || fail "the engine did not exit 0 on SIGINT (see $WORK/engine.log)"
echo "PASS: Prometheus scrapes the live engine and producer; every panel query has data; every rule evaluates"
