"""T10 under load: Release creates at a fixed rate plus a storm of plugin steps. Prints
figures, asserts nothing.

nice -n 5 .venv/bin/python bench/bench_t10.py [--rate 200] [--seconds 600] [--namespaces 10]
    [--connections 128] [--keep-finished N]

Starts its own control plane (with kwok nodes), a loopback registry, a loopback HTTP
service, and the operator as its own process with its webhooks registered (the per-person
rate limit raised out of the way: this measures the system behind it, and a 429 it still
answers — overloaded — or the API server policy's 403 for the quota or a loop is a
documented refusal). Each of N namespaces releases into
its own Environment, whose Gate and PostDeploy steps are a signed smoke-test plugin
(WebAssembly, in the sandbox) that GETs the loopback service: every promotion the engine
starts runs two plugins.

The generator is bench/openloop.py: one asyncio loop, one keep-alive connection pool,
bodies serialised before the clock starts, an open-loop schedule whose lateness it
records — so that what limits the rate is the system under test, not the client.

1. floor: the same open-loop load of Release creates with no webhook registered (the
   operator not started), into a namespace deleted afterwards — the API server alone;
2. load: the creates at --rate for --seconds, round-robin over the namespaces, each a
   distinct Release (its version), as alice through all of Stella's admission, while the
   operator's RSS is sampled every --sample seconds;
3. settle: the newest Release of each namespace must become Deployed (the
   others are Superseded), and no Release may stay unfinished: one that does is a lost
   promotion.

It reports the achieved rate and the generator's lateness, create latency p50/p99 against
the floor's, every answer by kind (created; 429 or 403 by rule; anything else is an error beyond
the documented refusals), plugin runs by outcome, lost promotions, the load average, and
the operator's RSS over time with its growth from the end of the warm-up (--warmup
seconds) to the end of the load (the issue's bound is 10 %). --keep-finished N turns on
the opt-in retention of finished Releases (STELLA_KEEP_FINISHED_RELEASES, docs/quotas.md);
without it every Release created is kept, and held by the operator's views, by design.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "hack"), str(ROOT / "bench")]

from kubernetes import client  # noqa: E402
from tests import plugin_support as ps  # noqa: E402
from tests.e2e.conftest import start_operator  # noqa: E402
from tests.e2e.test_plugins_e2e import Service  # noqa: E402
from tests.kube_support import api_client_for, grant_release_retention  # noqa: E402

from bench_promotion import deployment, pct, rss_mib  # noqa: E402
from devenv.bootstrap import bootstrap  # noqa: E402
from devenv.controlplane import ControlPlane  # noqa: E402
from devenv.services import Registry, push_image  # noqa: E402
from devenv.webhooks import unregister  # noqa: E402
from memtrace import smaps  # noqa: E402
from openloop import OpenLoop, Result, body_template  # noqa: E402
from summary import record  # noqa: E402

G, V = "stella.io", "v1alpha1"
FINAL = {"Deployed", "Failed", "Rejected", "Superseded"}


def release(name: str, env: str, image: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Release",
        "metadata": {"name": name},
        "spec": {
            "version": version,
            "environments": [env],
            "components": [
                {
                    "name": "web",
                    "image": image,
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
        },
    }


def creates(namespaces: list[str], envs: list[str], image: str, prefix: str, version: str) -> Any:
    """request(i) for OpenLoop: Release `{prefix}{i:07d}` in namespaces[i % n]."""
    fills = [
        body_template(release("@NAME@", env, image, "@VER@"), "@NAME@", "@VER@") for env in envs
    ]

    def request(i: int) -> tuple[str, str, bytes]:
        k = i % len(namespaces)
        ns = namespaces[k]
        body = fills[k](f"{prefix}{i:07d}", f"{version}.{i}")
        return ns, f"/apis/{G}/{V}/namespaces/{ns}/releases", body

    return request


def metric(url: str, name: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        body = r.read().decode()
    out: dict[str, float] = collections.defaultdict(float)
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name == name:
                out[s.labels.get("outcome", "")] += s.value
    return dict(out)


def releases_held(api: client.CustomObjectsApi) -> int:
    """How many Releases exist (one LIST of one item: the rest is remainingItemCount)."""
    try:
        page: Any = api.list_cluster_custom_object(G, V, "releases", limit=1, _request_timeout=30)
    except Exception:
        return -1  # a busy API server: a sample is not worth failing the run for
    meta = page.get("metadata") or {}
    return len(page.get("items") or []) + int(meta.get("remainingItemCount") or 0)


# seconds since the load began, RSS MiB, Releases held, Releases deleted by retention so far
Sample = tuple[float, float, int, float]


def pruned_total(url: str) -> float:
    try:
        return sum(metric(url, "stella_releases_pruned_total").values())
    except OSError:
        return float("nan")  # a busy operator: a sample is not worth failing the run for


def fit(samples: list[Sample]) -> tuple[float, float, float] | None:
    """RSS = a + b x (Releases held) + c x t, least squares: (a MiB, b KiB per Release held,
    c MiB a minute). c is the climb the Releases held do not explain — what the bound is
    about (memory per Release held is constant by design, docs/quotas.md)."""
    rows = [(1.0, float(n), t) for t, _, n, _ in samples if n >= 0]
    ys = [r for _, r, n, _ in samples if n >= 0]
    if len(rows) < 4:
        return None
    a = [[sum(x[i] * x[j] for x in rows) for j in range(3)] for i in range(3)]
    b = [sum(x[i] * y for x, y in zip(rows, ys, strict=True)) for i in range(3)]
    try:  # Cramer's rule on the 3x3 normal equations
        det = _det3(a)
        c = [
            _det3([[b[r] if k == i else a[r][k] for k in range(3)] for r in range(3)]) / det
            for i in range(3)
        ]
    except ZeroDivisionError:
        return None  # the Releases held never changed: no fit to make
    return c[0], c[1] * 1024, c[2] * 60


def correlation(pairs: list[tuple[float, int]]) -> float:
    """Pearson's r of (t, Releases held): near 1, the fit cannot tell them apart."""
    n = len(pairs)
    if n < 2:
        return 0.0
    mx, my = sum(p[0] for p in pairs) / n, sum(p[1] for p in pairs) / n
    sxy = sum((x - mx) * (y - my) for x, y in pairs)
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    syy = sum((y - my) ** 2 for _, y in pairs)
    return sxy / (sxx * syy) ** 0.5 if sxx and syy else 0.0


def _det3(m: list[list[float]]) -> float:
    return (
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    )


async def load_with_rss(
    gen: OpenLoop,
    rate: float,
    seconds: float,
    request: Any,
    pid: int,
    every: float,
    held: Callable[[], int],
    pruned: Callable[[], float],
    maps: list[smaps.Snapshot] | None = None,
) -> tuple[Result, list[Sample]]:
    """The load, and (seconds since start, RSS MiB, Releases held) every `every` seconds
    while it runs: RSS is judged against the Releases the views hold at that moment. With
    `maps`, a smaps snapshot is appended beside each sample."""
    samples: list[Sample] = []
    start = time.monotonic()

    async def one() -> Sample:
        count = await asyncio.to_thread(held)  # off the generator's loop
        gone = await asyncio.to_thread(pruned)
        if maps is not None:
            maps.append(smaps.snapshot(pid))
        return time.monotonic() - start, rss_mib(pid), count, gone

    async def sample() -> None:
        while True:
            samples.append(await one())
            await asyncio.sleep(every)

    sampler = asyncio.create_task(sample())
    try:
        result = await gen.run(rate, seconds, request)
    finally:
        sampler.cancel()
    samples.append(await one())
    return result, samples


def survey(
    api: client.CustomObjectsApi, namespaces: list[str]
) -> tuple[list[str], dict[str, tuple[str, list[Any]]]]:
    """Releases with an Environment not in a final phase (or never evaluated), and the
    newest Release of each namespace with its phases — newest as the engine judges it
    (engine.view.release_order: the API server's creation time, then the name), not by
    the index in its name: with 128 connections a Release can reach the API server a
    second after one with a higher index, and is then rightly the one Deployed."""
    out: list[str] = []
    newest: dict[str, tuple[str, list[Any]]] = {}
    order: dict[str, tuple[str, str]] = {}
    for ns in namespaces:
        token = None
        while True:
            for attempt in range(10):  # the API server times out LISTs under load (504)
                try:
                    page: Any = api.list_namespaced_custom_object(
                        G, V, ns, "releases", limit=500, _continue=token
                    )
                    break
                except client.exceptions.ApiException as exc:
                    if exc.status < 500 or attempt == 9:
                        raise
                    time.sleep(5)
            for item in page["items"]:
                name = item["metadata"]["name"]
                phases = [
                    e.get("phase") for e in (item.get("status") or {}).get("environments") or []
                ]
                if not phases or not set(phases) <= FINAL:
                    out.append(f"{ns}/{name}: {phases}")
                key = (str(item["metadata"].get("creationTimestamp", "")), name)
                if ns not in newest or key > order[ns]:
                    newest[ns], order[ns] = (name, phases), key
            token = page["metadata"].get("continue")
            if not token:
                break
    return out, newest


def ms(values: list[float], q: float) -> str:
    return f"{pct(values, q) * 1000:8.1f} ms" if values else "       - ms"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--floor-seconds", type=float, default=None)
    parser.add_argument("--connections", type=int, default=128, help="keep-alive pool size")
    parser.add_argument("--warmup", type=float, default=None, help="RSS growth counts after it")
    parser.add_argument("--sample", type=float, default=15.0, help="RSS sample interval, s")
    parser.add_argument("--keep-finished", type=int, default=0, help="opt-in retention, 0 = off")
    parser.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for the operator (again for more), e.g. "
        "MALLOC_MMAP_THRESHOLD_=131072 (docs/quotas.md)",
    )
    parser.add_argument(
        "--smaps",
        action="store_true",
        help="print which kinds of the operator's memory mappings (heap, arenas, thread "
        "stacks, libraries) grew from the end of the warm-up to the end of the load",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="snapshot the operator's allocations (bench/memtrace) and print what grew "
        "from the end of the warm-up to the end of the load (slows the operator)",
    )
    args = parser.parse_args()
    floor_seconds = args.floor_seconds or min(30.0, max(5.0, args.seconds / 6))
    warmup = args.warmup if args.warmup is not None else min(60.0, args.seconds / 5)
    work = Path(tempfile.mkdtemp(prefix="stella-bench-t10-"))
    cp = ControlPlane(work / "cluster")
    registry = Registry(work / "registry")
    service = Service(200)
    op = None
    try:
        cp.up()
        bootstrap(cp)
        registry.start()
        admin = api_client_for(str(cp.kubeconfig), "admin")
        alice: Any = client.CustomObjectsApi(api_client_for(str(cp.kubeconfig), "alice"))
        frank = client.CustomObjectsApi(api_client_for(str(cp.kubeconfig), "frank"))
        core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
        digest = push_image(registry.url, "bench/web", "t10", b"t10")
        image = f"{registry.host}/bench/web@{digest}"
        envs = [f"t10-e{k}" for k in range(args.namespaces)]
        namespaces = [f"t10-r{k}" for k in range(args.namespaces)]
        gen = OpenLoop(cp.server, cp.ca_file, cp.tokens["alice"], args.connections)

        # 1. the floor: the API server alone (no webhook registered yet).
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="t10-floor")))
        floor = asyncio.run(
            gen.run(args.rate, floor_seconds, creates(["t10-floor"], envs[:1], image, "f", "0.0"))
        )
        core.delete_namespace("t10-floor")
        # Gone before the operator starts: its Releases target envs[0], and an engine that
        # saw them would promote thousands of floor Releases there during the load.
        gone_by = time.monotonic() + 600
        while time.monotonic() < gone_by:
            try:
                core.read_namespace("t10-floor")
            except client.exceptions.ApiException as exc:
                if exc.status == 404:
                    break
                raise
            time.sleep(2)

        # The world: a publisher, a smoke plugin, N namespaces and Environments gated by it.
        publisher = ps.Publisher(work, "bench")
        module = ps.build(ps.SMOKE)
        (work / "smoke.wasm").write_bytes(module)
        manifest = ps.manifest_for(
            module,
            name="smoke",
            publisher="bench",
            entryPoints=["gate", "postDeploy"],
            capabilities={
                "network": [{"host": "127.0.0.1", "port": service.port, "scheme": "http"}]
            },
            inputs=[{"name": "url", "required": True}],
        )
        frank.create_cluster_custom_object(
            G,
            V,
            "pluginpublishers",
            {
                "apiVersion": f"{G}/{V}",
                "kind": "PluginPublisher",
                "metadata": {"name": "bench"},
                "spec": {
                    "keys": [{"keyId": k, "publicKey": p} for k, p in publisher.trust.items()]
                },
            },
        )
        extra = {
            "STELLA_INSECURE_REGISTRIES": registry.host,
            "STELLA_WEBHOOK_RATE": "100000",
            "STELLA_WEBHOOK_BURST": "100000",
        }
        if args.keep_finished:
            extra["STELLA_KEEP_FINISHED_RELEASES"] = str(args.keep_finished)
            grant_release_retention(admin)
        traces = work / "memtrace"
        if args.tracemalloc:
            traces.mkdir()
            extra["PYTHONPATH"] = str(ROOT / "bench" / "memtrace")
            extra["STELLA_BENCH_TRACEMALLOC_DIR"] = str(traces)
            extra["STELLA_BENCH_TRACEMALLOC_EVERY"] = str(args.sample)
        extra.update(dict(kv.split("=", 1) for kv in args.operator_env))
        op = start_operator(cp, work / "operator", extra)
        frank.create_cluster_custom_object(
            G,
            V,
            "plugins",
            {
                "apiVersion": f"{G}/{V}",
                "kind": "Plugin",
                "metadata": {"name": "smoke"},
                "spec": {
                    "manifest": publisher.sign(manifest),
                    "module": {"file": str(work / "smoke.wasm")},
                },
            },
        )
        steps = [
            {"plugin": "smoke", "at": at, "inputs": {"url": service.url()}}
            for at in ("Gate", "PostDeploy")
        ]
        for k, env in enumerate(envs):
            for ns in (f"t10-r{k}", f"t10-t{k}"):
                core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
            apps.create_namespaced_deployment(f"t10-t{k}", deployment(f"t10-t{k}", image))
            client.CustomObjectsApi(admin).create_cluster_custom_object(
                G,
                V,
                "environments",
                {
                    "apiVersion": f"{G}/{V}",
                    "kind": "Environment",
                    "metadata": {"name": env},
                    "spec": {
                        "targets": [{"namespace": f"t10-t{k}"}],
                        "allowedRegistries": [registry.host],
                        "plugins": steps,
                    },
                },
            )
        time.sleep(3)  # the views have the Environments
        rss_before = rss_mib(op.proc.pid)
        load_before = os.getloadavg()
        maps: list[smaps.Snapshot] | None = [] if args.smaps else None
        snaps_before = len(list(traces.glob("snapshot-*.bin")))

        # 2. the load.
        load, samples = asyncio.run(
            load_with_rss(
                gen,
                args.rate,
                args.seconds,
                creates(namespaces, envs, image, "r", "1.0"),
                op.proc.pid,
                args.sample,
                lambda: releases_held(client.CustomObjectsApi(admin)),
                lambda: pruned_total(op.url),
                maps,
            )
        )
        load_after = os.getloadavg()
        rss_end = rss_mib(op.proc.pid)
        snaps = sorted(traces.glob("snapshot-*.bin"))

        # 3. settle: the newest Release of each namespace (as the engine orders them; one the client saw
        # time out may still have been created) is Deployed, and none is left unfinished.
        t_settle = time.monotonic()
        deadline = t_settle + 600
        stuck, newest = survey(alice, namespaces)
        while (stuck or any(ph != ["Deployed"] for _, ph in newest.values())) and (
            time.monotonic() < deadline
        ):
            time.sleep(5)
            stuck, newest = survey(alice, namespaces)
        lost = [f"{ns}/{n}: {ph}" for ns, (n, ph) in sorted(newest.items()) if ph != ["Deployed"]]
        settled = time.monotonic() - t_settle
        rss_settled = rss_mib(op.proc.pid)
        runs = metric(op.url, "stella_plugin_runs_total")
        kept = sum(
            len(alice.list_namespaced_custom_object(G, V, ns, "releases")["items"])
            for ns in namespaces
        )

        warm = next((x for x in samples if x[0] >= warmup), samples[-1])
        rss_warm = warm[1]
        growth = (rss_end - rss_warm) / rss_warm * 100
        created = load.answers.get("created", 0)
        print(
            f"\nT10 load: {args.rate:.0f} creates/s asked for {args.seconds:.0f}s over "
            f"{args.namespaces} namespaces, {args.connections} connections "
            f"(the issue asks 200/s for 600s); keep finished: {args.keep_finished or 'off'}"
        )
        print(
            f"  load average      before {load_before[0]:.2f} / {load_before[1]:.2f}, "
            f"after {load_after[0]:.2f} / {load_after[1]:.2f} (1 / 5 min, 2 cores, shared)"
        )
        print(
            f"  achieved          {load.answered / load.elapsed:7.1f} answers/s "
            f"({load.answered} in {load.elapsed:.1f}s), peak in flight {load.peak_in_flight}"
        )
        print(
            f"  generator late    p50 {ms(load.lateness, 0.5)}  p99 {ms(load.lateness, 0.99)}"
            f"  max {max(load.lateness, default=0) * 1000:.1f} ms"
        )
        print(f"  answers           {dict(load.answers)}")
        print(f"  errors beyond the documented refusals: {sum(load.errors.values())} {load.errors}")
        print(f"  create latency    p50 {ms(load.latency, 0.5)}  p99 {ms(load.latency, 0.99)}")
        print(
            f"    of which queued for a connection p50 {ms(load.queued, 0.5)}  "
            f"p99 {ms(load.queued, 0.99)}; service (sent -> answered) "
            f"p50 {ms(load.service, 0.5)}  p99 {ms(load.service, 0.99)}"
        )
        carried = args.rate * pct(load.service, 0.5)
        print(
            f"    Little's law: {args.rate:.0f}/s x p50 service = {carried:.0f} requests at once "
            f"for {args.connections} connections"
            + (
                " — the POOL capped the rate: raise --connections"
                if carried > args.connections
                else ""
            )
        )
        print(
            f"  floor (no webhook, {floor_seconds:.0f}s, {floor.answered / floor.elapsed:.1f}/s) "
            f"p50 {ms(floor.latency, 0.5)}  p99 {ms(floor.latency, 0.99)}  {dict(floor.answers)}"
        )
        print(
            f"  ratio to floor    p50 {pct(load.latency, 0.5) / pct(floor.latency, 0.5):5.2f}x  "
            f"p99 {pct(load.latency, 0.99) / pct(floor.latency, 0.99):5.2f}x"
        )
        print(f"  plugin runs       {runs}")
        print(
            f"  lost promotions   {len(lost)} of {len(newest)} namespaces {lost[:5]}; "
            f"unfinished Releases {len(stuck)} {stuck[:5]} (settled in {settled:.0f}s)"
        )
        print(f"  Releases kept     {kept} of {created} created")
        print("  operator RSS      t(s)   MiB   Releases held   deleted by retention /s")
        for before, sample in zip([None, *samples], samples, strict=False):
            t, r, n, gone = sample
            rate = (gone - before[3]) / (t - before[0]) if before and t > before[0] else 0.0
            print(
                f"                    {t:5.0f}  {r:6.1f}  {n:6d}  {rate:6.1f}"
                f"{'  (warm-up ends)' if sample is warm else ''}"
            )
        print(
            f"  operator RSS      before the load {rss_before:.1f} MiB, after warm-up "
            f"{rss_warm:.1f}, end of load {rss_end:.1f} ({growth:+.1f} % from warm-up), "
            f"settled {rss_settled:.1f}"
        )
        print(
            f"  Releases held     after warm-up {warm[2]}, end of load {samples[-1][2]} "
            "(RSS is flat by design only while this is: every Release held is in the views)"
        )
        fitted = fit([x for x in samples if x[0] >= warm[0]])
        if fitted is not None:
            print(
                f"  fit after warm-up RSS = {fitted[0]:.1f} MiB + {fitted[1]:.2f} KiB per Release "
                f"held + {fitted[2]:.2f} MiB/min: the climb the Releases held do not explain "
                f"comes to {fitted[2] * (samples[-1][0] - warm[0]) / 60 / rss_warm * 100:+.1f} % "
                "over the load"
                + (
                    f" (uncertain: the Releases held rose with time, r = {r:.2f})"
                    if abs(r := correlation([(x[0], x[2]) for x in samples if x[0] >= warm[0]]))
                    > 0.9
                    else ""
                )
            )
        if maps:
            print("  memory mappings grown from the end of the warm-up to the end of the load:")
            for line in smaps.report(maps[samples.index(warm)], maps[-1]):
                print(f"    {line}")
        if args.tracemalloc:
            from memtrace.diff import report

            # Snapshots every --sample s from the operator's start: the first one after the
            # warm-up, and the last one taken before the load ended.
            first = min(snaps_before + int(warmup // args.sample) + 1, len(snaps) - 2)
            if len(snaps) >= 2 and first >= 0:
                print(f"  allocations grown from {snaps[first].name} to {snaps[-1].name}:")
                for line in report(str(snaps[first]), str(snaps[-1])):
                    print(f"    {line}")
        record(
            "t10",
            "errors beyond documented refusals",
            sum(load.errors.values()),
            "requests",
            goal=0,
        )
        record("t10", "lost promotions", len(lost) + len(stuck), "promotions", goal=0)
        record(
            "t10",
            "operator RSS growth under load",
            growth,
            "%",
            goal=10.0,
            note=f"{args.rate:.0f}/s for {args.seconds:.0f}s, keep finished {args.keep_finished}",
        )
        record(
            "t10",
            "create p99 vs no webhook",
            pct(load.latency, 0.99),
            "s",
            floor=pct(floor.latency, 0.99),
        )
        unregister(cp)
    finally:
        if op is not None:  # an operator that never got ready is stopped too
            op.proc.stop()
        service.stop()
        registry.stop()
        cp.down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
