"""What grew between two tracemalloc snapshots of the operator (bench_t10.py --tracemalloc):
the top allocation sites by growth, Stella's own frames first.

.venv/bin/python bench/memtrace/diff.py OLD.bin NEW.bin [--top 15]
"""

from __future__ import annotations

import argparse
import tracemalloc


def report(old: str, new: str, top: int = 15) -> list[str]:
    a = tracemalloc.Snapshot.load(old)
    b = tracemalloc.Snapshot.load(new)
    keep = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen*")]
    a, b = a.filter_traces(keep), b.filter_traces(keep)
    out = []
    total_a = sum(s.size for s in a.statistics("filename"))
    total_b = sum(s.size for s in b.statistics("filename"))
    out.append(
        f"traced {total_a / 2**20:.1f} MiB -> {total_b / 2**20:.1f} MiB "
        f"({(total_b - total_a) / 2**20:+.1f} MiB)"
    )
    for stat in b.compare_to(a, "traceback")[:top]:
        frames = [f for f in stat.traceback if "/stella/" in f.filename] or list(stat.traceback)
        where = " <- ".join(
            f"{f.filename.split('/operator/')[-1].split('site-packages/')[-1]}:{f.lineno}"
            for f in frames[:3]
        )
        out.append(f"{stat.size_diff / 2**20:+8.2f} MiB {stat.count_diff:+8d} blocks  {where}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print("\n".join(report(args.old, args.new, args.top)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
