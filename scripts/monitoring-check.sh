#!/usr/bin/env bash
# Checks the monitoring kit under monitoring/ (monitoring/README.md):
#
#   scripts/monitoring-check.sh
#
# 1. installs Prometheus and promtool (scripts/services/prometheus.sh) unless present;
# 2. promtool: check config (prometheus.yml), check rules (alerts.yml), test rules
#    (alerts.test.yml: every alert fires and stays silent on synthetic series);
# 3. the Grafana dashboard parses and every panel has a query (monitoring/panel_queries.py);
# 4. a real Prometheus on a free loopback port with monitoring/prometheus.yml: it loads
#    every alert and both scrape jobs, and accepts every dashboard query (/api/v1/query);
# 5. every metric name the dashboard and the alerts use is declared in the `names` module
#    of dataflow/src/metrics.rs or producer/src/metrics.rs, or is in TO_BE_ADDED below;
# 6. warns (only) about engine metrics in dataflow/src/metrics.rs no dashboard panel shows;
# 7. every alert has a runbook_url BASE/README.md#ANCHOR, one BASE for all, whose ANCHOR is a
#    heading of the "## Troubleshooting" section of README.md (RUNBOOK_README=FILE checks
#    another copy of it, e.g. a draft of the section).
#
# Runs every check even after a failure, then exits 1 if any failed. Needs python3 and, to
# install Prometheus, apt-get as root (or sudo).
set -uo pipefail
cd "$(dirname "$0")/.."

# Metrics a dashboard or alert may use before dataflow/src/metrics.rs declares them (a change
# in progress), as "NAME TYPE" lines; empty when every name is declared. Delete a line once
# its name is in the `names` module there (this script says when). "histogram" also admits the series
# Prometheus derives: NAME_bucket, NAME_sum, NAME_count.
TO_BE_ADDED=()
# Series Prometheus itself writes for every scrape target.
PROMETHEUS_SERIES=(up)
# The alerts alerts.yml must define (monitoring/README.md explains each).
ALERTS=(EngineDown ProducerDown ConsumerLagGrowing NoRecentCommit RejectedRateHigh FrontierStalled)
# The scrape jobs prometheus.yml must define (the alerts and the dashboard select on them).
JOBS=(iot-etl-engine iot-etl-producer)

DASHBOARD=monitoring/grafana/dashboards/pipeline.json
METRICS_RS=(dataflow/src/metrics.rs producer/src/metrics.rs)
# The README whose "## Troubleshooting" headings the alerts' runbook_url anchors must name.
RUNBOOK_README=${RUNBOOK_README:-README.md}

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
step() { echo; echo "== $*"; }

command -v python3 >/dev/null 2>&1 || { echo "error: python3 is required" >&2; exit 1; }
# shellcheck source=scripts/services/prometheus.sh
source scripts/services/prometheus.sh
step "install Prometheus"
prometheus_install || exit 1
promtool --version | head -n 1

step "promtool check config monitoring/prometheus.yml"
promtool check config monitoring/prometheus.yml || fail "promtool check config monitoring/prometheus.yml"
step "promtool check rules monitoring/alerts.yml"
promtool check rules monitoring/alerts.yml || fail "promtool check rules monitoring/alerts.yml"
step "promtool test rules monitoring/alerts.test.yml"
promtool test rules monitoring/alerts.test.yml || fail "promtool test rules monitoring/alerts.test.yml"

step "runbook_url of every alert: a heading of the Troubleshooting section of $RUNBOOK_README"
python3 - monitoring/alerts.yml "$RUNBOOK_README" <<'PY' || fail "runbook_url annotations of monitoring/alerts.yml (above)"
import re, sys
rules = []  # [alert name (None for a recording rule), runbook_url], in file order
for line in open(sys.argv[1]):
    if m := re.match(r"\s*- (alert|record):\s*(\S+)", line):
        rules.append([m[2] if m[1] == "alert" else None, None])
    elif (m := re.match(r"""\s*runbook_url:\s*["']?([^"'\s]+)""", line)) and rules:
        rules[-1][1] = m[1]
# GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -1, -2, ... on
# repeats. Kept: those of the headings below level 2 under "## Troubleshooting".
anchors, seen, fenced, inside, found = set(), {}, False, False, False
for line in open(sys.argv[2]):
    fenced ^= line.startswith("```")
    if fenced or not (m := re.match(r"(#{1,6})\s+(.*?)[\s#]*$", line)):
        continue
    text = re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", m[2])  # a link's text
    slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
    n = seen.get(slug, 0)
    seen[slug], slug = n + 1, f"{slug}-{n}" if n else slug
    if len(m[1]) <= 2:
        inside = m[1] == "##" and m[2] == "Troubleshooting"
        found |= inside
    elif inside:
        anchors.add(slug)
alerts = [(a, url) for a, url in rules if a]
bases = sorted({url.partition("#")[0] for _, url in alerts if url})
bad = [f'{sys.argv[2]} has no "## Troubleshooting" section'] * (not found)
bad += ["no alert found in monitoring/alerts.yml"] * (not alerts)
bad += [f"{a}: no runbook_url annotation" for a, url in alerts if not url]
bad += [f"{a}: runbook_url {url} is not BASE/README.md#ANCHOR" for a, url in alerts
        if url and not (url.partition("#")[0].endswith("/README.md") and url.partition("#")[2])]
bad += [f"{a}: runbook_url {url}: no heading with anchor #{url.partition('#')[2]} under ## Troubleshooting in {sys.argv[2]}"
        for a, url in alerts if url and url.partition("#")[2] and url.partition("#")[2] not in anchors]
bad += [f"the runbook_url bases differ (use one): {', '.join(bases)}"] * (len(bases) > 1)
print(f"Troubleshooting anchors of {sys.argv[2]}: {', '.join(sorted(anchors)) or 'none'}")
print("\n".join(f"  {a}: {url}" for a, url in alerts))
if any("example.invalid" in b for b in bases):
    print('note: the runbook URLs use the placeholder base example.invalid (monitoring/README.md, "Runbook links")')
sys.exit("\n".join(bad) or None)
PY

work=$(mktemp -d)
trap 'prometheus_stop; rm -rf "$work"' EXIT

step "dashboard $DASHBOARD"
if python3 monitoring/panel_queries.py --titles "$DASHBOARD" >"$work/panels.tsv"; then
  cut -f2 "$work/panels.tsv" >"$work/dashboard.exprs"
  echo "$(wc -l <"$work/dashboard.exprs") panel queries in $(cut -f1 "$work/panels.tsv" | sort -u | wc -l) panels"
else
  fail "$DASHBOARD: not a dashboard, or a panel without a query (above)"
  cut -f2 "$work/panels.tsv" >"$work/dashboard.exprs" 2>/dev/null
fi

step "Prometheus with monitoring/prometheus.yml"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
if prometheus_start monitoring/prometheus.yml "$port" "$work/prometheus"; then
  echo "ready at $PROMETHEUS_URL"
  prometheus_api /api/v1/rules >"$work/rules.json" || fail "GET /api/v1/rules"
  python3 - "$work/rules.json" "$work/alerts.exprs" "${ALERTS[@]}" <<'PY' || fail "alert rules loaded by Prometheus (above)"
import json, sys
rules = [r for g in json.load(open(sys.argv[1]))["data"]["groups"] for r in g["rules"]]
loaded = {r["name"] for r in rules if r["type"] == "alerting"}
open(sys.argv[2], "w").write("".join(" ".join(r["query"].split("\n")) + "\n" for r in rules))
print(f"{len(rules)} rules loaded: {', '.join(sorted(loaded))}")
missing = [a for a in sys.argv[3:] if a not in loaded]
if missing:
    sys.exit(f"alerts missing from monitoring/alerts.yml: {', '.join(missing)}")
PY
  # Targets appear once service discovery has run, a moment after /-/ready.
  targets_ok=
  for _ in $(seq 50); do
    if prometheus_api /api/v1/targets >"$work/targets.json" && python3 - "$work/targets.json" "${JOBS[@]}" >"$work/targets.txt" 2>&1 <<'PY'
import json, sys
targets = json.load(open(sys.argv[1]))["data"]["activeTargets"]
jobs = {t["labels"]["job"] for t in targets}
print("scrape targets: " + ", ".join(f'{t["labels"]["job"]} {t["scrapeUrl"]}' for t in targets))
missing = [j for j in sys.argv[2:] if j not in jobs]
if missing:
    sys.exit(f"scrape jobs missing from monitoring/prometheus.yml: {', '.join(missing)}")
PY
    then
      targets_ok=1
      break
    fi
    sleep 0.2
  done
  cat "$work/targets.txt" 2>/dev/null
  [ -n "$targets_ok" ] || fail "scrape jobs of monitoring/prometheus.yml (above)"
  bad=0
  while IFS= read -r expr; do
    answer=$(prometheus_api /api/v1/query "query=$expr")
    case $answer in
      *'"status":"success"'*) ;;
      *) echo "  rejected: $expr"; echo "    $answer"; bad=$((bad + 1)) ;;
    esac
  done <"$work/dashboard.exprs"
  if [ "$bad" -eq 0 ]; then
    echo "Prometheus accepts all $(wc -l <"$work/dashboard.exprs") dashboard queries"
  else
    fail "$bad dashboard queries are not valid PromQL (above)"
  fi
  prometheus_stop
else
  fail "Prometheus does not start with monitoring/prometheus.yml (above)"
fi

step "metric names"
python3 monitoring/metric_names.py declared "${METRICS_RS[@]}" >"$work/declared" || fail "reading ${METRICS_RS[*]}"
# An empty list would make every name below look undeclared, or (if the dashboard's list is
# empty too) let everything pass: a crash or a parser that finds nothing is a failure.
[ -s "$work/declared" ] || fail "no metric name read from ${METRICS_RS[*]}"
cp "$work/declared" "$work/known"
for entry in "${TO_BE_ADDED[@]}"; do
  read -r name kind <<<"$entry"
  if grep -qx "$name" "$work/declared"; then
    echo "note: $name is declared now; delete it from TO_BE_ADDED in $0"
  fi
  echo "$name" >>"$work/known"
  if [ "$kind" = histogram ]; then printf '%s\n' "${name}_bucket" "${name}_sum" "${name}_count" >>"$work/known"; fi
done
printf '%s\n' "${PROMETHEUS_SERIES[@]}" >>"$work/known"
sort -u -o "$work/known" "$work/known"
python3 monitoring/metric_names.py used "$work/dashboard.exprs" >"$work/dashboard.names" || fail "reading the metric names of the dashboard queries"
[ -s "$work/dashboard.names" ] || fail "no metric name read from the dashboard queries"
if [ -s "$work/alerts.exprs" ]; then
  python3 monitoring/metric_names.py used "$work/alerts.exprs" >"$work/alerts.names" || fail "reading the metric names of the alert expressions"
  [ -s "$work/alerts.names" ] || fail "no metric name read from the alert expressions"
else
  fail "no alert expressions to check (Prometheus did not load monitoring/alerts.yml)"
  : >"$work/alerts.names"
fi
for what in dashboard alerts; do
  unknown=$(comm -23 "$work/$what.names" "$work/known")
  if [ -n "$unknown" ]; then
    fail "metric names in the $what that neither ${METRICS_RS[*]} declare nor TO_BE_ADDED lists: $(echo $unknown)"
  else
    echo "$what: $(wc -l <"$work/$what.names") metric names, all declared or listed"
  fi
done
# Warning only. A histogram counts as shown when any of its series is (panels use NAME_bucket).
base() { sed -E 's/_(bucket|sum|count)$//' | sort -u; }
python3 monitoring/metric_names.py declared dataflow/src/metrics.rs | base >"$work/engine.bases" || fail "reading dataflow/src/metrics.rs"
unshown=$(comm -23 "$work/engine.bases" <(base <"$work/dashboard.names"))
if [ -n "$unshown" ]; then
  echo "WARNING: engine metrics of dataflow/src/metrics.rs that no dashboard panel shows: $(echo $unshown)" >&2
else
  echo "every metric of dataflow/src/metrics.rs is shown by a dashboard panel"
fi

echo
if [ "$failures" -gt 0 ]; then
  echo "monitoring check: $failures check(s) FAILED" >&2
  exit 1
fi
echo "monitoring check: all passed"
