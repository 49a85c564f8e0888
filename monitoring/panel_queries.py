#!/usr/bin/env python3
"""Prints the PromQL of every panel target of a Grafana dashboard, one expression per line.

    python3 monitoring/panel_queries.py monitoring/grafana/dashboards/pipeline.json
    python3 monitoring/panel_queries.py --titles DASHBOARD_JSON   # "panel title<TAB>expr"

Panels nested in rows (collapsed rows keep theirs under the row's own "panels") are
included, in dashboard order. An expression written over several lines is printed on one
(PromQL ignores the line breaks). Exits 1, saying which, when the file is not a dashboard,
when a panel other than a row has no target with an `expr`, or when there is no expression
at all: every panel is meant to show a query that returns data from a running pipeline.
Python 3 standard library only.
"""
import json
import sys


def panels(dashboard):
    """Every panel of the dashboard, rows' nested panels included, in order."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard):
    """(panel title, expr) for every target, and the titles of panels without any."""
    found, empty = [], []
    for panel in panels(dashboard):
        if panel.get("type") == "row":
            continue
        exprs = [t["expr"] for t in panel.get("targets", []) if t.get("expr", "").strip()]
        if not exprs:
            empty.append(panel.get("title", "(untitled)"))
        found.extend((panel.get("title", "(untitled)"), " ".join(e.split("\n"))) for e in exprs)
    return found, empty


def main(argv):
    args = argv[1:]
    titles = "--titles" in args
    args = [a for a in args if a != "--titles"]
    if len(args) != 1:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        with open(args[0], encoding="utf-8") as f:
            dashboard = json.load(f)
    except (OSError, ValueError) as e:
        print(f"panel_queries: error: cannot read {args[0]} as JSON: {e}", file=sys.stderr)
        return 1
    if not isinstance(dashboard, dict) or not isinstance(dashboard.get("panels"), list):
        print(f"panel_queries: error: {args[0]} has no \"panels\" list: not a Grafana dashboard", file=sys.stderr)
        return 1
    found, empty = queries(dashboard)
    for title, expr in found:
        print(f"{title}\t{expr}" if titles else expr)
    for title in empty:
        print(f"panel_queries: error: panel {title!r} has no target with an expr", file=sys.stderr)
    if not found:
        print(f"panel_queries: error: {args[0]} has no panel queries", file=sys.stderr)
    return 1 if empty or not found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
