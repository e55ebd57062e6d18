"""One table for `make bench`: every benchmark reports its measures here, and
`bench/report.py` prints them against their goals at the end.

A benchmark calls `record(...)` once per measure. When STELLA_BENCH_SUMMARY names a
file, each call appends one JSON line to it; otherwise the call does nothing (a
benchmark run by hand prints its own figures as before).

A measure states its goal as a comparison with a number (`"<="` or `">="`) and,
where the goal is relative, the floor it was divided by, measured in the same run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Literal

ENV = "STELLA_BENCH_SUMMARY"


def record(
    bench: str,
    measure: str,
    figure: float,
    unit: str,
    goal: float | None = None,
    op: Literal["<=", ">="] = "<=",
    floor: float | None = None,
    note: str = "",
) -> None:
    """One figure. With `floor`, the goal applies to figure/floor (a ratio); without
    it, to the figure itself. No goal: reported as context only."""
    path = os.environ.get(ENV)
    if not path:
        return
    line = {
        "bench": bench,
        "measure": measure,
        "figure": figure,
        "unit": unit,
        "goal": goal,
        "op": op,
        "floor": floor,
        "note": note,
        "at": time.time(),
        "load1": os.getloadavg()[0],
        "cores": os.cpu_count(),
    }
    with Path(path).open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
