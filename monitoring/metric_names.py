#!/usr/bin/env python3
"""Metric names: the ones PromQL expressions use, and the ones a Rust `names` module declares.

    python3 monitoring/metric_names.py used [FILE]        # exprs one per line (stdin: -)
    python3 monitoring/metric_names.py declared RUST_FILE...

`used` prints, sorted and unique, every metric name the expressions select: identifiers that
are neither functions, aggregations, keywords, label names (inside {}, by/without/on/
ignoring/group_left/group_right clauses) nor durations, numbers or strings. Selectors by
{__name__=...} are not seen.

`declared` prints the metric names of the `pub mod names { ... }` module of each Rust file
(dataflow/src/metrics.rs, producer/src/metrics.rs): every `pub const X: &str = "...";`
whose doc comment does not start with "Label". For one whose doc comment starts with
"Histogram", the series Prometheus derives are printed too (NAME_bucket, NAME_sum,
NAME_count). Python 3 standard library only.
"""
import re
import sys

KEYWORDS = {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left",
            "group_right", "offset", "inf", "nan"}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r'\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)')
_TOKEN = re.compile(r'(?P<num>\d[\w.]*)|(?P<id>[A-Za-z_:][\w:]*)(?P<call>\s*\()?')


def used(expr):
    """Metric names selected by one PromQL expression."""
    s = _STRING.sub('""', expr)
    s = re.sub(r'\{[^}]*\}', ' ', s)           # label matchers
    s = re.sub(r'\[[^\]]*\]', ' ', s)          # ranges and subqueries
    s = _GROUPING.sub(' ', s)                  # label lists of grouping/matching clauses
    s = re.sub(r'\boffset\s+-?[\w.]+', ' ', s)  # offset durations
    names = set()
    for m in _TOKEN.finditer(s):
        name = m.group("id")
        if name and not m.group("call") and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def declared(rust_source):
    """Metric names (and derived histogram series) of a Rust `pub mod names` block."""
    m = re.search(r'^pub mod names \{\n(.*?)^\}', rust_source, re.S | re.M)
    if not m:
        return set()
    names = set()
    for doc, value in re.findall(r'((?:[ \t]*///[^\n]*\n)*)[ \t]*pub const \w+: &str = "([^"]+)";', m.group(1)):
        kind = re.sub(r'^\s*///\s*', '', doc.split("\n")[0]) if doc else ""
        if kind.startswith("Label"):
            continue
        names.add(value)
        if kind.startswith("Histogram"):
            names.update(value + suffix for suffix in HISTOGRAM_SERIES)
    return names


def main(argv):
    if len(argv) >= 2 and argv[1] == "used" and len(argv) <= 3:
        path = argv[2] if len(argv) == 3 else "-"
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        names = set().union(*(used(line) for line in text.splitlines())) if text.strip() else set()
    elif len(argv) >= 3 and argv[1] == "declared":
        names = set()
        for path in argv[2:]:
            found = declared(open(path, encoding="utf-8").read())
            if not found:
                print(f"metric_names: error: no `pub mod names` with metric names in {path}", file=sys.stderr)
                return 1
            names |= found
    else:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    for name in sorted(names):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
