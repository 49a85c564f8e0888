#!/usr/bin/env bash
# Analytics benchmark (README.md, "Benchmarks", "Analytics vs DuckDB"): the exact daily p95
# of the events table by `analytics p95` against DuckDB running the same query, in one run.
#
#   scripts/bench-analytics.sh [DAYS] [RATE]   # default: 7 days at 10 events/s (~6 M events)
#
# Uses the data set of scripts/bench.sh (generated once, cached under target/bench-data/),
# processes it once with the release engine (`dataflow --bounded -w 2`, cached under
# target/bench-analytics/; delete that folder to process it again), installs DuckDB from PyPI into target/bench-venv (once), then
# times BENCH_REPEAT (3) rounds of, over OUT/events:
#   - `analytics p95 --table OUT/events --csv FILE`;
#   - DuckDB with quantile_disc(x, 0.95): per UTC date and device type with >= 500 events,
#     mean, stddev_samp, keep |x - mean| <= 3 stddev, the p95 of the kept values;
#   - DuckDB with the nearest rank written out: row_number() = ceil(0.95 k), the definition.
#   - `analytics outliers --table OUT/events --csv FILE` (3-sigma and IQR counts per date and
#     type), whose analytics/it ratio is then its cost against `analytics p95`'s.
# Each is one process reading read_parquet('OUT/events/**/*.parquet') (the DuckDB ones
# inside Python: its in-query time is printed too, and that of the quantile_disc query run
# a third time in one connection, as in a long-lived session). Prints the median wall time, events/s,
# peak RSS and the time ratio analytics / DuckDB; exits 1 if any p95 (or count) differs
# between the three. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
DAYS=${1:-7}
RATE=${2:-10}
REPEAT=${BENCH_REPEAT:-3}
DATA=target/bench-data/${DAYS}d-${RATE}eps
WORK=target/bench-analytics/${DAYS}d-${RATE}eps
OUT=$WORK/out
VENV=target/bench-venv
cargo build --release -p analytics >&2
if [ ! -f "$DATA/.complete" ] || [ ! -f "$WORK/.complete" ]; then
  cargo build --release -p dataflow -p producer >&2
fi

if [ ! -f "$DATA/.complete" ]; then # the same data set as scripts/bench.sh
  rm -rf "$DATA" && mkdir -p "$DATA"
  echo "generating $DAYS days at $RATE events/s into $DATA ..." >&2
  target/release/producer --out-dir "$DATA" --duration "${DAYS}d" --rate "$RATE" --duplicates 0.02 \
    --late 0.001 --invalid 0.001 --outliers 0.005 --seed 42 --start 2025-11-03T00:00:00Z --partitions 3 >&2
  touch "$DATA/.complete"
fi
if [ ! -f "$WORK/.complete" ]; then
  rm -rf "$WORK" && mkdir -p "$WORK"
  echo "processing $DATA into $OUT (dataflow --bounded -w 2) ..." >&2
  target/release/dataflow --input "$DATA" --output "$OUT" --bounded -w 2 --progress never --metrics-addr 127.0.0.1:0 >&2
  touch "$WORK/.complete"
fi
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import duckdb' 2>/dev/null; then
  echo "installing duckdb (PyPI) into $VENV ..." >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet duckdb >&2
fi
DUCKDB_VERSION=$("$VENV/bin/python" -c 'import duckdb; print(duckdb.__version__)')

cat > "$WORK/duckdb_p95.py" <<'PY'
"""duckdb_p95.py MODE TABLE_DIR OUT_CSV [RUNS]: the daily p95 in DuckDB (MODE: quantile_disc or rank),
RUNS times in one connection; prints the last run's in-query seconds on stderr."""
import csv, sys, time
import duckdb

mode, table, out = sys.argv[1:4]
common = f"""
WITH ev AS (
  SELECT epoch_us("timestamp") // 86400000000 AS day, device_type, event_duration AS x
  FROM read_parquet('{table}/**/*.parquet')
),
stats AS (
  SELECT day, device_type, count(*) AS n, avg(x) AS mean, stddev_samp(x) AS sd
  FROM ev GROUP BY day, device_type HAVING count(*) >= 500
),
kept AS (
  SELECT s.day, s.device_type, s.n, s.mean, s.sd, e.x
  FROM ev e JOIN stats s ON e.day = s.day AND e.device_type = s.device_type
  WHERE abs(e.x - s.mean) <= 3 * s.sd
)"""
queries = {
    "quantile_disc": common + """
SELECT DATE '1970-01-01' + CAST(day AS INTEGER), device_type, any_value(n), count(*), any_value(mean), any_value(sd),
       quantile_disc(x, 0.95)
FROM kept GROUP BY day, device_type ORDER BY day, device_type""",
    "rank": common + """,
ranked AS (
  SELECT day, device_type, n, mean, sd, x,
         row_number() OVER (PARTITION BY day, device_type ORDER BY x) AS r,
         count(*) OVER (PARTITION BY day, device_type) AS k
  FROM kept
)
SELECT DATE '1970-01-01' + CAST(day AS INTEGER), device_type, n, k, mean, sd, x
FROM ranked WHERE r = (95 * k + 99) // 100 ORDER BY day, device_type""",
}
con = duckdb.connect()
for _ in range(int(sys.argv[4]) if len(sys.argv) > 4 else 1):
    start = time.perf_counter()
    rows = con.execute(queries[mode]).fetchall()
    elapsed = time.perf_counter() - start
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["date", "device_type", "event_count", "kept_count", "mean_duration", "stddev_duration", "p95_duration"])
    for r in rows:
        w.writerow([r[0].isoformat(), r[1], r[2], r[3], repr(r[4]), repr(r[5]), repr(r[6])])
print(f"{elapsed:.3f}", file=sys.stderr)
PY

cat > "$WORK/compare.py" <<'PY'
"""compare.py ANALYTICS_CSV QUANTILE_DISC_CSV RANK_CSV: exit 1 unless every row agrees."""
import csv, math, sys

def load(path):
    with open(path) as f:
        return {(r["date"], r["device_type"]): r for r in csv.DictReader(f)}

ours, qd, rank = (load(p) for p in sys.argv[1:4])
problems = []
for name, theirs in (("quantile_disc", qd), ("nearest rank (row_number)", rank)):
    if set(ours) != set(theirs):
        problems.append(f"{name}: groups differ: only analytics {sorted(set(ours) - set(theirs))[:3]}, only DuckDB {sorted(set(theirs) - set(ours))[:3]}")
    for key in sorted(set(ours) & set(theirs)):
        a, d = ours[key], theirs[key]
        for col in ("event_count", "kept_count"):
            if int(a[col]) != int(d[col]):
                problems.append(f"{name} {key}: {col} {a[col]} (analytics) vs {d[col]} (DuckDB)")
        if float(a["p95_duration"]) != float(d["p95_duration"]):
            problems.append(f"{name} {key}: p95 {a['p95_duration']} (analytics) vs {d['p95_duration']} (DuckDB)")
        for col in ("mean_duration", "stddev_duration"):
            if not math.isclose(float(a[col]), float(d[col]), rel_tol=1e-9):
                problems.append(f"{name} {key}: {col} {a[col]} (analytics) vs {d[col]} (DuckDB)")
qd_vs_rank = sum(1 for k in set(qd) & set(rank) if float(qd[k]["p95_duration"]) != float(rank[k]["p95_duration"]))
print(f"{len(ours)} (date, type) rows; p95 identical in analytics, DuckDB quantile_disc and DuckDB nearest rank"
      if not problems else f"{len(problems)} differences")
print(f"quantile_disc(x, 0.95) vs nearest rank ceil(0.95 k): {qd_vs_rank} of {len(qd)} p95 values differ")
for p in problems[:20]:
    print("MISMATCH:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY

EVENTS=$("$VENV/bin/python" -c "import duckdb, sys; print(duckdb.sql(\"SELECT count(*) FROM read_parquet('$OUT/events/**/*.parquet')\").fetchall()[0][0])")
FILES=$(find "$OUT/events" -name '*.parquet' ! -name '_*' | wc -l)
MB=$(du -sm "$OUT/events" | cut -f1)
echo "events table: $EVENTS rows in $FILES files, $MB MB ($OUT/events); DuckDB $DUCKDB_VERSION; $(nproc) cores"

# name | command: the tools, in the order they run in each round.
names=("analytics p95" "duckdb quantile_disc" "duckdb nearest rank" "analytics outliers")
cmds=(
  "target/release/analytics p95 --table $OUT/events --csv $WORK/analytics.csv"
  "$VENV/bin/python $WORK/duckdb_p95.py quantile_disc $OUT/events $WORK/duckdb-qd.csv"
  "$VENV/bin/python $WORK/duckdb_p95.py rank $OUT/events $WORK/duckdb-rank.csv"
  "target/release/analytics outliers --table $OUT/events --csv $WORK/outliers.csv"
)
measure() { # COMMAND: prints "wall_seconds peak_rss_kb cpu_seconds in_query_seconds"
  local t q; t=$(mktemp); q=$(mktemp)
  /usr/bin/time -f "%e %M %U %S" -o "$t" $1 >/dev/null 2>"$q" || { cat "$q" >&2; echo "error: $1 failed" >&2; exit 1; }
  echo "$(awk '{ printf "%s %s %.2f", $1, $2, $3 + $4 }' "$t") $(tail -1 "$q" | grep -E '^[0-9.]+$' || echo -)"; rm -f "$t" "$q"
}
cat "$OUT"/events/*/*/*/*/*.parquet > /dev/null # warm the page cache
LOAD=$(cut -d' ' -f1 /proc/loadavg)
for i in "${!cmds[@]}"; do measure "${cmds[$i]}" > /dev/null; done # warm-up round, untimed
declare -A results
warm=""
for r in $(seq "$REPEAT"); do
  for i in "${!cmds[@]}"; do results[$i]+="$(measure "${cmds[$i]}")"$'\n'; done
  # DuckDB in a long-lived session: the third run of the query in one connection.
  warm+="$(measure "$VENV/bin/python $WORK/duckdb_p95.py quantile_disc $OUT/events $WORK/duckdb-qd-warm.csv 3" | cut -d' ' -f4)"$'\n'
done
"$VENV/bin/python" "$WORK/compare.py" "$WORK/analytics.csv" "$WORK/duckdb-qd.csv" "$WORK/duckdb-rank.csv" || { echo "FAIL: the p95 values differ" >&2; exit 1; }

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
col() { echo -n "${results[$1]}" | cut -d' ' -f"$2" | median; } # TOOL FIELD: the median
echo "median of $REPEAT rounds (load average before: $LOAD):"
printf "%-22s %8s %8s %8s %11s %8s %12s\n" tool wall_s cpu_s query_s events/s RSS_MB "analytics/it"
for i in "${!cmds[@]}"; do
  awk -v name="${names[$i]}" -v s="$(col "$i" 1)" -v rss="$(col "$i" 2)" -v cpu="$(col "$i" 3)" -v q="$(col "$i" 4)" \
    -v n="$EVENTS" -v a="$(col 0 1)" \
    'BEGIN { printf "%-22s %8.2f %8.2f %8s %11.0f %8.0f %11.2fx\n", name, s, cpu, q, n / s, rss / 1024, a / s }'
done
awk -v q="$(echo -n "$warm" | median)" -v n="$EVENTS" -v a="$(col 0 1)" \
  'BEGIN { printf "%-22s %8s %8s %8.3f %11.0f %8s %11.2fx\n", "duckdb qd, warm", "", "", q, n / q, "", a / q }'
echo "wall_s and RSS of the whole process; cpu_s = user + system; query_s = DuckDB's own time inside"
echo "Python (without interpreter start and import); 'duckdb qd, warm': the quantile_disc query run a third time"
echo "in one connection (a long-lived session), its events/s and ratio from query_s; analytics/it = analytics'"
echo "wall time over this one's (< 1: analytics is faster)"
