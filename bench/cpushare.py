"""Where a benchmark's CPU went: the load generator's own share, the server's, the machine's.

On a 2-core machine the load generator competes with the server it measures, so a latency
ratio can be queueing behind the generator rather than the cost of what is measured. These
figures let a reader tell the two apart (bench_webhooks prints them beside each phase), and
`pin` puts the generator on one core and the system under test on the others, as far as
the machine's cores allow (other processes on the machine still run anywhere).

Linux only (/proc, sched_setaffinity).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, every thread (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """User + system CPU time of this process (the generator), every thread."""
    t = os.times()
    return t.user + t.system


@dataclass(frozen=True)
class MachineTicks:
    """/proc/stat's first line: busy and total jiffies of all cores since boot."""

    busy: int
    total: int

    @staticmethod
    def now() -> MachineTicks:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        total = sum(values[:8])  # guest time is already counted in user/nice
        return MachineTicks(total - idle, total)

    def busy_since(self, earlier: MachineTicks) -> float:
        """The share of all cores busy between two readings (0..1)."""
        total = self.total - earlier.total
        return (self.busy - earlier.busy) / total if total > 0 else float("nan")


def descendants(pid: int) -> list[int]:
    """pid and every process below it (by /proc/*/stat's parent pid)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pin(pid: int, cpus: set[int]) -> int:
    """Every thread of pid and of its descendants onto `cpus` (threads they start later
    inherit it from the thread that starts them). Returns the number of threads pinned."""
    n = 0
    for p in descendants(pid):
        try:
            tids = [int(t.name) for t in Path(f"/proc/{p}/task").iterdir()]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, cpus)
                n += 1
            except (ProcessLookupError, PermissionError):
                continue
    return n


@dataclass(frozen=True)
class Split:
    """The generator's cores and the system under test's: disjoint when pinned."""

    generator: set[int]
    system: set[int]

    @staticmethod
    def pinned() -> Split:
        """The first core this process may use for the generator, the rest for the system
        under test; an error on a machine with fewer than two."""
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            raise SystemExit("--pin needs at least 2 cores")
        return Split({cores[0]}, set(cores[1:]))

    def describe(self) -> str:
        return (
            f"generator on core {','.join(map(str, sorted(self.generator)))}, "
            f"control plane + operator on {','.join(map(str, sorted(self.system)))}"
        )


def pyspy_record(pid: int, out: Path, *options: str) -> subprocess.Popen[bytes]:
    """py-spy recording `pid` (every thread, idle included, raw stacks) into `out` until it
    ends or is sent SIGINT; `options` add its own (--rate, --duration)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("--pyspy: py-spy not found (.venv/bin/pip install py-spy)")
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"[bench] py-spy: {out}", file=sys.stderr)
    argv = [spy, "record", "--pid", str(pid), *options, "--idle", "--threads", "--nonblocking"]
    return subprocess.Popen(
        [*argv, "--format", "raw", "--output", str(out)], stdout=subprocess.DEVNULL
    )
