"""What Stella's webhooks cost a real API server: prints figures, asserts nothing.

.venv/bin/python bench/bench_webhooks.py [--rate 40] [--seconds 20]

Starts its own control plane (etcd + kube-apiserver only) and the operator as its own
process with its webhooks registered on loopback, then sends a sustained, open-loop load
of server-side dry-run Release creates as alice (dry run still goes through mutating and
validating admission) at a fixed rate, twice: with the webhooks registered, and after
unregistering them. It reports

* webhook latency as kube-apiserver itself measures it: p50/p99 interpolated from the
  buckets of apiserver_admission_webhook_admission_duration_seconds for
  stamp-identity.stella.io (mutating) and validate-release.stella.io (validating), the
  difference of two scrapes of /metrics around the measured load;
* client-observed create latency p50/p99 with and without the webhooks, and their ratio;
* the throughput achieved and any request that failed.

The operator runs with its per-identity rate limit raised out of the way
(STELLA_WEBHOOK_RATE): the default (20/s per person) would refuse this load by design.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import urllib3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack"))

from tests.e2e.conftest import OperatorProcess  # noqa: E402

from devenv.bootstrap import install_crds_and_rbac  # noqa: E402
from devenv.controlplane import OPERATOR_USER, ControlPlane  # noqa: E402
from devenv.proc import Process, free_port, port_open, wait_until  # noqa: E402
from devenv.webhooks import make_serving_cert, register, unregister  # noqa: E402
from summary import record  # noqa: E402

G, V = "stella.io", "v1alpha1"
HOOKS = ("stamp-identity.stella.io", "validate-release.stella.io")
METRIC = "apiserver_admission_webhook_admission_duration_seconds"
REGISTRY = "registry.example.com"


# ---- the API server, as a person would call it ---------------------------------------------
@dataclass
class Caller:
    server: str
    token: str
    ca: str
    pool: urllib3.PoolManager = field(init=False)

    def __post_init__(self) -> None:
        self.pool = urllib3.PoolManager(maxsize=16, ca_certs=self.ca, cert_reqs="CERT_REQUIRED")

    def request(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        r = self.pool.request(
            method,
            self.server + path,
            body=data,
            headers=headers,
            timeout=urllib3.Timeout(total=30),
            retries=False,
        )
        return r.status, r.data


def release(i: int, env: str) -> dict[str, object]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Release",
        "metadata": {"name": f"bench-{i}"},
        "spec": {
            "version": "1.0.0",
            "environments": [env],
            "components": [
                {
                    "name": "web",
                    "image": f"{REGISTRY}/shop/web@sha256:{i:064x}",
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
        },
    }


# ---- histograms from kube-apiserver's /metrics ---------------------------------------------
Buckets = dict[str, dict[float, float]]  # webhook name -> upper bound -> cumulative count


def scrape(admin: Caller) -> Buckets:
    status, raw = admin.request("GET", "/metrics")
    if status != 200:
        raise RuntimeError(f"GET /metrics: HTTP {status}")
    out: Buckets = {}
    for line in raw.decode().splitlines():
        if not line.startswith(METRIC + "_bucket{"):
            continue
        labels_s, _, value = line[len(METRIC) + len("_bucket{") :].rpartition("} ")
        labels = dict(
            (k, v.strip('"')) for k, _, v in (p.partition("=") for p in labels_s.split(","))
        )
        name = labels.get("name", "")
        if name not in HOOKS:
            continue
        le = math.inf if labels["le"] == "+Inf" else float(labels["le"])
        # Sum over operation/rejected/type: one distribution per webhook.
        out.setdefault(name, {})
        out[name][le] = out[name].get(le, 0.0) + float(value)
    return out


def quantile(cumulative: dict[float, float], q: float) -> float:
    """Histogram quantile as Prometheus computes it: linear within the bucket."""
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return prev_bound  # beyond the last finite bucket: its bound is all we know
            in_bucket = count - prev_count
            frac = (rank - prev_count) / in_bucket if in_bucket > 0 else 1.0
            return prev_bound + (bound - prev_bound) * frac
        prev_bound, prev_count = bound, count
    return prev_bound


def delta(after: Buckets, before: Buckets) -> Buckets:
    return {
        name: {le: n - before.get(name, {}).get(le, 0.0) for le, n in by_le.items()}
        for name, by_le in after.items()
    }


# ---- load ----------------------------------------------------------------------------------
@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    stamped: int = 0
    wall: float = 0.0
    late: float = 0.0  # how far behind schedule the last request started (open loop)
    lock: threading.Lock = field(default_factory=threading.Lock)


def load(alice: Caller, ns: str, env: str, rate: float, seconds: float, first: int) -> Run:
    """Open loop: request i starts at t0 + i/rate whether or not earlier ones returned."""
    run = Run()
    path = f"/apis/{G}/{V}/namespaces/{ns}/releases?dryRun=All"
    total = int(rate * seconds)

    def one(i: int) -> None:
        t0 = time.perf_counter()
        status, body = alice.request("POST", path, release(first + i, env))
        took = time.perf_counter() - t0
        with run.lock:
            run.latencies.append(took)
            run.statuses[status] = run.statuses.get(status, 0) + 1
            if status == 201 and b"stella.io/requester" in body:
                run.stamped += 1

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=12) as pool:
        for i in range(total):
            due = start + i / rate
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            else:
                run.late = max(run.late, now - due)
            pool.submit(one, i)
    run.wall = time.perf_counter() - start
    return run


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), for CPU per request."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


# ---- setup ---------------------------------------------------------------------------------
def start_operator(cp: ControlPlane, workdir: Path, env: dict[str, str]) -> OperatorProcess:
    """tests/e2e/conftest.start_operator without --verbose: logging as in production (kopf's
    debug log of every webhook call would be part of what is measured)."""
    ca, crt, key = make_serving_cert(workdir / "webhook-pki")
    hook_port, http_port = free_port(), free_port()
    full = {
        "STELLA_WEBHOOK_CERT": str(crt),
        "STELLA_WEBHOOK_KEY": str(key),
        "STELLA_WEBHOOK_PORT": str(hook_port),
        "KUBECONFIG": str(cp.kubeconfig_for(OPERATOR_USER)),
        "STELLA_HTTP_PORT": str(http_port),
        "STELLA_STATE_DIR": str(workdir / "state"),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    stella = str(Path(sys.executable).parent / "stella")
    proc = Process(
        "stella-operator", [stella, "operator", "run"], workdir / "operator.log", env=full
    )
    op = OperatorProcess(proc, http_port, full)
    op.restart()  # starts it and waits for /readyz
    # /readyz does not cover the webhook server: wait for its port too.
    wait_until(lambda: port_open(hook_port), 30, "operator webhook server", proc.log)
    register(cp, ca, hook_port)
    return op


@contextmanager
def cluster(workdir: Path) -> Iterator[ControlPlane]:
    cp = ControlPlane(workdir / "cluster", with_workers=False)
    try:
        cp.up()
        # bootstrap() also waits for the controller-manager's default ServiceAccount;
        # nothing here runs Pods, so CRDs and RBAC are all this needs.
        install_crds_and_rbac(cp)
        yield cp
    finally:
        cp.down()


def prepare(cp: ControlPlane, admin: Caller, alice: Caller) -> tuple[str, str]:
    ns, env = "bench-shop", "bench-prod"
    admin.request(
        "POST",
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"team": "shop"}},
        },
    )
    admin.request(
        "POST",
        f"/apis/{G}/{V}/environments",
        {
            "apiVersion": f"{G}/{V}",
            "kind": "Environment",
            "metadata": {"name": env},
            "spec": {
                "allowedRegistries": [REGISTRY],
                "releaseNamespaces": {"matchLabels": {"team": "shop"}},
                "approvals": {"required": 1, "approverGroups": ["release-approvers"]},
            },
        },
    )
    deadline = time.monotonic() + 30
    while True:  # the operator's view knows the namespace and Environment
        status, body = alice.request(
            "POST", f"/apis/{G}/{V}/namespaces/{ns}/releases?dryRun=All", release(0, env)
        )
        if status == 201:
            return ns, env
        if time.monotonic() > deadline:
            raise RuntimeError(f"a valid Release is not admitted: HTTP {status} {body[:300]!r}")
        time.sleep(0.2)


def wait_unregistered(alice: Caller, ns: str, env: str) -> None:
    """Until a create comes back without the stamped requester: the webhooks are gone."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, body = alice.request(
            "POST", f"/apis/{G}/{V}/namespaces/{ns}/releases?dryRun=All", release(1, env)
        )
        if status == 201 and b"stella.io/requester" not in body:
            return
        time.sleep(0.1)
    raise RuntimeError("the webhooks still answer after unregistering them")


# ---- report --------------------------------------------------------------------------------
def ms(seconds: float) -> str:
    return "   n/a" if math.isnan(seconds) else f"{seconds * 1000:6.1f}"


def report(rate: float, seconds: float, hooks: Buckets, with_: Run, without: Run) -> None:
    print()
    print(
        f"Stella webhooks on a real kube-apiserver: {rate:g} dry-run Release creates/s "
        f"as alice, {seconds:g} s per phase, {os.cpu_count()} cores"
    )
    print()
    print("kube-apiserver's own measure (apiserver_admission_webhook_admission_duration_seconds,")
    print("interpolated within its buckets)")
    print(
        f"  {'webhook':<30} {'calls':>6} {'p50 ms':>7} {'p99 ms':>7}   buckets (s) holding p50 / p99"
    )
    for name in HOOKS:
        b = hooks.get(name, {})
        calls = b.get(math.inf, 0.0)
        p50, p99 = quantile(b, 0.5), quantile(b, 0.99)
        bounds = sorted(le for le in b if not math.isinf(le))

        def holding(v: float, bounds: list[float] = bounds) -> str:
            if math.isnan(v):
                return "n/a"
            lo = max([x for x in bounds if x < v] or [0.0])
            hi = min([x for x in bounds if x >= v] or [math.inf])
            return f"({lo:g}, {hi:g}]"

        print(
            f"  {name:<30} {calls:6.0f} {ms(p50):>7} {ms(p99):>7}   {holding(p50)} / {holding(p99)}"
        )
    print()
    print("Client-observed create latency (POST ... ?dryRun=All, TLS, bearer token)")
    print(
        f"  {'':<22} {'requests':>8} {'ok':>6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
    )
    for label, r in (("with webhooks", with_), ("without webhooks", without)):
        ok = r.statuses.get(201, 0)
        print(
            f"  {label:<22} {len(r.latencies):8d} {ok:6d} {len(r.latencies) / r.wall:7.1f} "
            f"{ms(pct(r.latencies, 0.5)):>7} {ms(pct(r.latencies, 0.99)):>7} "
            f"{ms(max(r.latencies, default=math.nan)):>7}"
        )
    r50 = pct(with_.latencies, 0.5) / pct(without.latencies, 0.5)
    r99 = pct(with_.latencies, 0.99) / pct(without.latencies, 0.99)
    note = f"{rate:g}/s; goal at 200/s"
    record(
        "webhooks",
        "Release create p50, all admission vs none",
        pct(with_.latencies, 0.5) * 1000,
        "ms",
        goal=1.10,
        floor=pct(without.latencies, 0.5) * 1000,
        note=note,
    )
    record(
        "webhooks",
        "Release create p99, all admission vs none",
        pct(with_.latencies, 0.99) * 1000,
        "ms",
        goal=1.25,
        floor=pct(without.latencies, 0.99) * 1000,
        note=note,
    )
    print(f"  {'ratio with/without':<22} {'':>8} {'':>6} {'':>7} {r50:6.2f}x {r99:6.2f}x")
    print()
    for label, r in (("with webhooks", with_), ("without webhooks", without)):
        bad = {s: n for s, n in r.statuses.items() if s != 201}
        print(
            f"  {label}: statuses {dict(sorted(r.statuses.items()))}"
            + (f" (NOT all admitted: {bad})" if bad else "")
            + (f"; requester stamped on {r.stamped}" if label == "with webhooks" else "")
            + f"; the sender fell {r.late * 1000:.0f} ms behind schedule at worst"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=40.0, help="creates per second")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase")
    ap.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="stella-bench-webhooks-"))
    t_start = time.monotonic()
    op: OperatorProcess | None = None
    try:
        with cluster(workdir) as cp:
            print(f"[bench] control plane up in {time.monotonic() - t_start:.1f}s", file=sys.stderr)
            op = start_operator(
                cp,
                workdir,
                {
                    "STELLA_WEBHOOK_RATE": "100000",
                    "STELLA_WEBHOOK_BURST": "100000",
                    "STELLA_RESYNC_SECONDS": "300",
                },
            )
            admin = Caller(cp.server, cp.tokens["admin"], str(cp.ca_file))
            alice = Caller(cp.server, cp.tokens["alice"], str(cp.ca_file))
            ns, env = prepare(cp, admin, alice)
            print(
                f"[bench] operator and webhooks ready at {time.monotonic() - t_start:.1f}s",
                file=sys.stderr,
            )

            load(alice, ns, env, args.rate, args.warmup, 1_000_000)
            before = scrape(admin)
            cpu0 = cpu_seconds(op.proc.pid)
            with_ = load(alice, ns, env, args.rate, args.seconds, 0)
            op_cpu = cpu_seconds(op.proc.pid) - cpu0
            hooks = delta(scrape(admin), before)

            unregister(cp)
            wait_unregistered(alice, ns, env)
            load(alice, ns, env, args.rate, args.warmup, 2_000_000)
            without = load(alice, ns, env, args.rate, args.seconds, 0)
            report(args.rate, args.seconds, hooks, with_, without)
            print(
                f"  operator CPU while serving: {op_cpu:.1f} s in {with_.wall:.0f} s "
                f"({op_cpu / with_.wall * 100:.0f}% of one core), "
                f"{op_cpu / len(with_.latencies) * 1000:.1f} ms per create (two webhook calls)"
            )
            print(f"\n[bench] total {time.monotonic() - t_start:.0f}s", file=sys.stderr)
    finally:
        if op is not None:
            op.proc.stop()
        if args.keep:
            print(f"[bench] kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
