"""Admission server memory per connection, bounded against aiohttp's defaults (prints
figures; never a test).

The T10 diagnosis (docs/quotas.md) found asyncio's TLS buffers of the admission server's
connections to be the one allocation site that grew under load. This measures what the
connection bounds (STELLA_WEBHOOK_IDLE_SECONDS, STELLA_WEBHOOK_KEEPALIVE_CONNECTIONS) change:
the real WebhookServer, in a process of its own (its RSS alone), on loopback TLS; a client
that, like the API server under load, opens --connections keep-alive connections at once
and sends a review on each, --rounds times, keeping every connection its server keeps.

For each mode, in the same run: the server's RSS before, after the rounds (the client
still holding every connection the server kept) and after the client closed them and a
settle; the server-side connections kept (from /proc/net/tcp); review latency p50/p99 of
the last round (a closed connection costs the next request a TLS handshake). The floor
is aiohttp's defaults (idle connections kept for an hour). A third mode is the floor with
glibc's mmap threshold fixed at 128 KiB (MALLOC_MMAP_THRESHOLD_): asyncio's 256 KiB TLS
buffers are then mmapped and given back to the system when a connection closes, instead of
staying in the heap once glibc's dynamic threshold has risen above them.

    .venv/bin/python bench/bench_webhook_connections.py [--connections 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "hack")]

REVIEW = json.dumps({"request": {"uid": "u-1", "resource": {"group": "evil.io"}}}).encode()


def serve(port: int, crt: str, key: str, idle: float, cap: int) -> None:
    """The child: the admission server alone, until stdin closes."""
    from stella.engine.view import ClusterView
    from stella.handlers.admission import Admission
    from stella.handlers.webhook import WebhookServer
    from stella.settings import Settings

    server = WebhookServer(
        Admission(Settings()),
        ClusterView(),
        "127.0.0.1",
        port,
        crt,
        key,
        idle_seconds=idle or None,
        keepalive_connections=cap or None,
    )
    server.start()
    print("ready", flush=True)
    sys.stdin.read()
    server.stop()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_connections(port: int) -> int:
    """Server-side sockets of `port` that are not closed yet (ESTABLISHED, CLOSE_WAIT, ...)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            if int(local.rsplit(":", 1)[1], 16) == port and state not in ("0A", "06"):
                count += 1  # 0A LISTEN, 06 TIME_WAIT (no socket buffers left)
    return count


async def rounds(
    port: int, ca: str, connections: int, count: int, probe: Callable[[], tuple[float, int]]
) -> tuple[list[float], tuple[float, int]]:
    """The last round's latencies, and probe() (RSS, open connections) taken after the last
    round while the client still holds every connection its server kept."""
    import aiohttp

    context = ssl.create_default_context(cafile=ca)
    connector = aiohttp.TCPConnector(
        limit=connections, keepalive_timeout=3600, ssl=context, force_close=False
    )
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> float:
            started = time.perf_counter()
            async with session.post(
                f"https://127.0.0.1:{port}/validate-release?timeout=5s",
                data=REVIEW,
                headers={"Content-Type": "application/json"},
            ) as answer:
                await answer.read()
            return time.perf_counter() - started

        for _ in range(count):
            latencies = list(await asyncio.gather(*(one() for _ in range(connections))))
        await asyncio.sleep(1.0)  # the server closes what it does not keep
        return latencies, probe()


@dataclass
class Result:
    mode: str
    rss_before: float
    rss_after: float
    held: int
    rss_settled: float
    p50_ms: float
    p99_ms: float


def measure(
    mode: str,
    idle: float,
    cap: int,
    args: argparse.Namespace,
    tls: tuple[str, ...],
    malloc: dict[str, str] | None = None,
) -> Result:
    from devenv.proc import free_port

    ca, crt, key = tls
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), crt, key, str(idle), str(cap)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(Path(tls[0]).parent / f"server-{port}.log").open("w"),
        text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'hack'}", **(malloc or {})},
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        before = rss_mib(child.pid)
        pid = child.pid
        latencies, (after, held) = asyncio.run(
            rounds(
                port,
                ca,
                args.connections,
                args.rounds,
                lambda: (rss_mib(pid), open_connections(port)),
            )
        )
        time.sleep(args.settle)  # the client's pool is closed by now
        settled = rss_mib(child.pid)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    q = statistics.quantiles(latencies, n=100)
    return Result(mode, before, after, held, settled, q[49] * 1000, q[98] * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--idle", type=float, default=120.0)
    parser.add_argument("--cap", type=int, default=64)
    parser.add_argument("--serve", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        port, crt, key, idle, cap = args.serve
        serve(int(port), crt, key, float(idle), int(cap))
        return
    from devenv.webhooks import make_serving_cert

    tmp = Path(tempfile.mkdtemp(prefix="bench-webhook-conn-"))
    tls = tuple(str(p) for p in make_serving_cert(tmp))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{args.connections} keep-alive connections at once, {args.rounds} rounds, "
        f"settle {args.settle:.0f}s; server in its own process"
    )
    results = [
        measure("aiohttp defaults (floor)", 0, 0, args, tls),
        measure(f"idle {args.idle:.0f}s, cap {args.cap}", args.idle, args.cap, args, tls),
        measure(
            "floor + MALLOC_MMAP_THRESHOLD_=131072",
            0,
            0,
            args,
            tls,
            {"MALLOC_MMAP_THRESHOLD_": "131072"},
        ),
    ]
    print(
        f"{'mode':34} {'RSS MiB before':>14} {'after':>7} {'growth':>7} {'settled':>8} "
        f"{'conns kept':>10} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for r in results:
        print(
            f"{r.mode:34} {r.rss_before:14.1f} {r.rss_after:7.1f} "
            f"{r.rss_after - r.rss_before:+7.1f} {r.rss_settled:8.1f} {r.held:10d} "
            f"{r.p50_ms:7.1f} {r.p99_ms:7.1f}"
        )
    floor = results[0]
    for r in results[1:]:
        print(
            f"{r.mode}, against the floor: RSS growth x"
            f"{(r.rss_after - r.rss_before) / max(floor.rss_after - floor.rss_before, 0.1):.2f}, "
            f"RSS left after the clients closed x"
            f"{(r.rss_settled - r.rss_before) / max(floor.rss_settled - floor.rss_before, 0.1):.2f}, "
            f"p50 x{r.p50_ms / floor.p50_ms:.2f}, p99 x{r.p99_ms / floor.p99_ms:.2f}"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
