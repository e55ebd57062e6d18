"""Digest verification throughput and latency against a real local registry.

Starts its own Debian docker-registry (distribution 2.8) on loopback, pushes images, and
prints:
  * verifications/s, one at a time, with a warm pooled client vs a cold client per call
  * verifications/s with 8 in flight on the warm client
  * p50/p99 latency of one verification (warm), anonymous and behind basic auth
  * what verification adds to one promotion: verify_release_images for a 3-component
    Release on a warm client (p50/p99)

Run: .venv/bin/python bench/bench_registry.py [--seconds 4]   (about 30 s in all)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hack"))
sys.path.insert(0, str(ROOT / "operator"))

from devenv.services import Registry, basic_auth, push_image  # noqa: E402
from stella.registry import (  # noqa: E402
    RegistryClient,
    RegistryCredentials,
    static_credentials,
    verify_release_images,
)
from stella.secrets import SecretValue  # noqa: E402
from summary import record  # noqa: E402


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def timed_loop(seconds: float, one: Callable[[int], Awaitable[object]]) -> list[float]:
    lat: list[float] = []
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end:
        t = time.perf_counter()
        await one(i)
        lat.append(time.perf_counter() - t)
        i += 1
    return lat


def line(name: str, lat: list[float], wall: float | None = None) -> str:
    rate = len(lat) / (wall if wall is not None else sum(lat))
    return (
        f"{name:<44} {rate:8.0f}/s   p50 {statistics.median(lat) * 1e3:6.2f} ms   "
        f"p99 {pct(lat, 99) * 1e3:6.2f} ms   (n={len(lat)})"
    )


async def bench(reg: Registry, reg_basic: Registry, seconds: float) -> None:
    images = [
        f"{reg.host}/bench/app{i}:v1@"
        + push_image(reg.url, f"bench/app{i}", "v1", uuid.uuid4().bytes * 64)
        for i in range(16)
    ]
    auth = basic_auth("bench", "bench-pass")
    basic_images = [
        f"{reg_basic.host}/bench/app{i}:v1@"
        + push_image(reg_basic.url, f"bench/app{i}", "v1", uuid.uuid4().bytes * 64, auth)
        for i in range(4)
    ]
    creds = RegistryCredentials("bench", SecretValue("bench-pass"))
    insecure = {reg.host, reg_basic.host}

    async with RegistryClient(insecure_registries=insecure) as warm:
        await warm.verify_digest(images[0])  # open the pool
        warm_lat = await timed_loop(seconds, lambda i: warm.verify_digest(images[i % 16]))

        async def cold_one(i: int) -> None:
            async with RegistryClient(insecure_registries=insecure) as c:
                await c.verify_digest(images[i % 16])

        cold_lat = await timed_loop(seconds, cold_one)

        # 8 in flight on the warm pool
        n = 0
        lat8: list[float] = []
        end = time.perf_counter() + seconds
        start = time.perf_counter()

        async def worker(w: int) -> None:
            nonlocal n
            while time.perf_counter() < end:
                t = time.perf_counter()
                await warm.verify_digest(images[(n + w) % 16])
                lat8.append(time.perf_counter() - t)
                n += 1

        await asyncio.gather(*(worker(w) for w in range(8)))
        wall8 = time.perf_counter() - start

        await warm.verify_digest(basic_images[0], creds)
        basic_lat = await timed_loop(
            seconds, lambda i: warm.verify_digest(basic_images[i % 4], creds)
        )

        release = images[:3]

        async def promote(i: int) -> None:
            report = await verify_release_images(warm, release, static_credentials(None))
            assert report.ok, report.message

        promo_lat = await timed_loop(seconds, promote)

    print(f"registry: distribution 2.8 on loopback; {seconds:.0f}s per line; manifests ~0.5 KiB")
    print(line("warm pooled client, sequential", warm_lat))
    print(line("cold client per call (new session + TCP)", cold_lat))
    print(line("warm pooled client, 8 in flight", lat8, wall8))
    print(line("warm, behind basic auth (preemptive)", basic_lat))
    print(line("one promotion: 3-component Release (warm)", promo_lat))
    ratio = (len(warm_lat) / sum(warm_lat)) / (len(cold_lat) / sum(cold_lat))
    record("registry", "verify, warm, 8 in flight", len(lat8) / wall8, "/s", goal=800.0, op=">=")
    record("registry", "verify, warm, sequential", len(warm_lat) / sum(warm_lat), "/s")
    promo = sorted(promo_lat)
    record(
        "registry",
        "one 3-component promotion p99",
        promo[min(len(promo) - 1, int(len(promo) * 0.99))] * 1000,
        "ms",
        goal=10.0,
    )
    print(f"warm/cold throughput ratio: {ratio:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="stella-bench-registry-") as tmp:
        reg = Registry(Path(tmp) / "anon").start()
        reg_basic = Registry(Path(tmp) / "basic", htpasswd={"bench": "bench-pass"}).start()
        try:
            asyncio.run(bench(reg, reg_basic, args.seconds))
        finally:
            reg.stop()
            reg_basic.stop()


if __name__ == "__main__":
    main()
