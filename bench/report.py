"""The closing table of `make bench`: every measure the benchmarks recorded
(bench/summary.py), beside its goal, its floor from the same run, and pass / falls short.

    .venv/bin/python bench/report.py FILE [FILE ...]

With more than one file (e.g. a run before and after a change), measures are listed per
file, each under its own heading.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        s = f"{x:.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.2f}"
    return f"{s} {unit}".strip()


def verdict(row: dict[str, Any]) -> tuple[str, str]:
    """(ratio text, verdict) of one measure."""
    goal, op, floor, figure = row.get("goal"), row.get("op", "<="), row.get("floor"), row["figure"]
    ratio = figure / floor if floor else None
    value = ratio if floor else figure
    if goal is None or value is None:
        return (f"{ratio:.2f}x" if ratio is not None else "-"), "context"
    ok = value <= goal if op == "<=" else value >= goal
    return (f"{ratio:.2f}x" if ratio is not None else "-"), ("pass" if ok else "falls short")


def table(rows: list[dict[str, Any]]) -> list[str]:
    head = ("bench", "measure", "goal", "figure", "floor", "ratio", "verdict", "load")
    lines: list[tuple[str, ...]] = [head]
    for r in rows:
        unit = r.get("unit", "")
        goal = r.get("goal")
        if goal is None:
            goal_s = "-"
        elif r.get("floor"):
            goal_s = f"{r.get('op', '<=')} {goal:g}x floor"
        else:
            goal_s = f"{r.get('op', '<=')} {_fmt(goal, unit)}"
        ratio, v = verdict(r)
        measure = r["measure"] + (f" ({r['note']})" if r.get("note") else "")
        lines.append(
            (
                r["bench"],
                measure,
                goal_s,
                _fmt(r["figure"], unit),
                _fmt(r.get("floor"), unit),
                ratio,
                v,
                f"{r['load1']:.1f}" if "load1" in r else "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


def machine() -> str:
    load = os.getloadavg()
    return (
        f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        " (1/5/15 min, at the end of the run; `load`: 1-min load when a figure was taken)"
    )


def main(argv: list[str]) -> int:
    files = [Path(a) for a in argv] or [Path(os.environ.get("STELLA_BENCH_SUMMARY", ""))]
    for path in files:
        if not path.is_file():
            print(f"no bench summary at {path}", file=sys.stderr)
            return 1
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        print(f"\n== {path}" if len(files) > 1 else "")
        print("\n".join(table(rows)))
        short = sum(1 for r in rows if verdict(r)[1] == "falls short")
        print(f"{len(rows)} measures, {short} fall short of their goal")
    print(machine())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
