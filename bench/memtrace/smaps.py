"""Where a process's resident memory lives, by kind of mapping, from /proc/PID/smaps:
what tracemalloc cannot see (native allocations, thread stacks, arenas, libraries).

bench_t10.py --smaps takes one of these at the end of the warm-up and one at the end of the
load and prints what grew. Linux only; a process that is gone gives an empty snapshot.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import NamedTuple

MiB = 1 << 20


class Snapshot(NamedTuple):
    rss_kib: Counter[str]  # resident KiB by kind
    mappings: Counter[str]  # mappings by kind (not `count`: a tuple's method)
    threads: int
    fds: int
    regions: dict[int, tuple[int, int, str]]  # anonymous mappings: start -> (size, RSS KiB, perms)


def kind(name: str, size: int, perms: str) -> str:
    """A mapping's kind: a file's base name, [heap]/[stack], or anonymous memory by size —
    pymalloc's arenas are 1 MiB, glibc's thread arenas reserve 64 MiB, thread stacks 8 MiB."""
    if name.startswith("/"):
        return os.path.basename(name).split(".so")[0] + (" (so)" if ".so" in name else "")
    if name:
        return name
    if size == MiB:
        return "anon 1 MiB (pymalloc arenas)"
    if size in (8 * MiB, 8 * MiB - 4096) or (8 * MiB - 65536 <= size <= 8 * MiB):
        return "anon ~8 MiB (thread stacks)"
    if size >= 32 * MiB:
        return "anon >= 32 MiB (malloc arenas, big blocks)"
    if perms.startswith("---"):
        return "anon guard"
    return "anon other"


def snapshot(pid: int) -> Snapshot:
    rss: Counter[str] = Counter()
    count: Counter[str] = Counter()
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
        threads = len(os.listdir(f"/proc/{pid}/task"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return Snapshot(rss, count, 0, 0, {})
    regions: dict[int, tuple[int, int, str]] = {}
    current, start, size, perms, anon = "", 0, 0, "", False
    for line in text.splitlines():
        head = line.split(None, 5)
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            name = head[5] if len(head) > 5 else ""
            current, start, size, perms = kind(name, hi - lo, head[1]), lo, hi - lo, head[1]
            anon = not name
            count[current] += 1
        elif line.startswith("Rss:"):
            kib = int(line.split()[1])
            rss[current] += kib
            if anon:
                regions[start] = (size, kib, perms)
    return Snapshot(rss, count, threads, fds, regions)


def report(old: Snapshot, new: Snapshot, top: int = 12) -> list[str]:
    """The kinds whose resident memory changed most, then the totals."""
    kinds = set(old.rss_kib) | set(new.rss_kib)
    changes = sorted(kinds, key=lambda k: abs(new.rss_kib[k] - old.rss_kib[k]), reverse=True)
    out = [
        f"threads {old.threads} -> {new.threads}, open fds {old.fds} -> {new.fds}, "
        f"RSS {sum(old.rss_kib.values()) / 1024:.1f} -> {sum(new.rss_kib.values()) / 1024:.1f} MiB"
    ]
    for k in changes[:top]:
        delta = new.rss_kib[k] - old.rss_kib[k]
        if not delta and old.mappings[k] == new.mappings[k]:
            break
        out.append(
            f"{delta / 1024:+8.2f} MiB  {old.rss_kib[k] / 1024:7.1f} -> {new.rss_kib[k] / 1024:7.1f}"
            f"  mappings {old.mappings[k]:4d} -> {new.mappings[k]:4d}  {k}"
        )
    # The anonymous mappings that grew most, by address: one region growing (an arena, a
    # heap of a native library) reads differently from many new ones (Python's arenas).
    grown = sorted(
        (
            (kib - old.regions.get(at, (0, 0, ""))[1], at, size, kib, perms)
            for at, (size, kib, perms) in new.regions.items()
        ),
        reverse=True,
    )
    new_regions = [g for g in grown if g[1] not in old.regions]
    out.append(
        f"anonymous mappings {len(old.regions)} -> {len(new.regions)}; new ones hold "
        f"{sum(g[3] for g in new_regions) / 1024:.1f} MiB; the most grown:"
    )
    for delta, at, size, kib, perms in grown[:top]:
        if delta <= 0:
            break
        fresh = " (new)" if at not in old.regions else ""
        out.append(
            f"{delta / 1024:+8.2f} MiB  at {at:#x} {perms} size {size / MiB:8.2f} MiB,"
            f" resident {kib / 1024:7.2f} MiB{fresh}"
        )
    return out
