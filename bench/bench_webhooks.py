"""What Stella's admission costs a real API server: prints figures, asserts nothing.

.venv/bin/python bench/bench_webhooks.py [--rate 40,200] [--seconds 20]

Starts its own control plane (etcd + kube-apiserver only), admission as its own process
(`stella admission run`, as the chart runs it; `--admission operator`: served by the
operator's process instead, `both`: a run each, side by side) beside the operator, with the
webhooks and the chart's admission policies registered on loopback, then
sends sustained, open-loop loads of server-side dry-run creates (dry run still goes through
mutating and validating admission) at a fixed rate, one phase after another:

1. Release creates as alice through all of Stella's admission (webhooks + policies);
2. the operator stopped: Pod creates in a managed namespace (judged by the policies alone,
   requireApprovedDigests on, 1,000 approved digests in its parameter ConfigMap, listed as
   the operator lists them), in a second one whose parameter lists them in one string (as
   before stella.policy.digest_buckets) and in an unmanaged namespace (no admission of
   Stella's at all), interleaved;
3. webhooks and policies removed: Release creates with the same digest-pinning and
   forged-identity rules as one ValidatingAdmissionPolicy (the CEL floor), then with no
   admission at all (the floor);
4. Approval creates as bob (dry run, naming a real Release of alice's) at --approval-rate,
   through all of Stella's admission in phase 1 and with none in phase 3: what an Approval
   pays for the webhooks that must judge it (the goal: <= 10 ms added at p99).

It reports

* webhook latency as kube-apiserver itself measures it: p50/p99 interpolated from the
  buckets of apiserver_admission_webhook_admission_duration_seconds for
  stamp-identity.stella.io and admit-approval.stella.io (mutating), validate-release.stella.io
  and validate-approval.stella.io (validating: an Approval reaches it only when the final
  object is not what admit-approval judged), the
  difference of two scrapes of /metrics around the measured load;
* client-observed create latency p50/p99 of each phase, and the ratios against the floors
  measured in the same run;
* the throughput achieved and any request that failed;
* kube-apiserver's CPU per request of each phase (/proc: steadier than latency on a shared
  machine) and, with --profile DIR, a CPU profile of each measured phase
  (`go tool pprof -top DIR/200/release-all.pprof`).

The operator runs with its per-identity rate limit raised out of the way
(STELLA_WEBHOOK_RATE): the default (20/s per person) would refuse this load by design.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import urllib3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack"))

from tests.e2e.conftest import OperatorProcess  # noqa: E402

from cpushare import (  # noqa: E402
    MachineTicks,
    Split,
    cpu_seconds,
    own_cpu_seconds,
    pin,
    pyspy_record,
)
from devenv.bootstrap import install_crds_and_rbac  # noqa: E402
from devenv.controlplane import ADMISSION_USER, OPERATOR_USER, ControlPlane  # noqa: E402
from devenv.proc import Process, free_port, port_open, wait_until  # noqa: E402
from devenv.webhooks import make_serving_cert, register, unregister  # noqa: E402
from stella.policy.digest_buckets import digest_buckets  # noqa: E402
from summary import record  # noqa: E402

G, V = "stella.io", "v1alpha1"
HOOKS = (
    "stamp-identity.stella.io",
    "admit-approval.stella.io",
    "validate-release.stella.io",
    "validate-approval.stella.io",
)
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


def approval(i: int, release_name: str, env: str) -> dict[str, object]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Approval",
        "metadata": {"name": f"bench-{i}"},
        "spec": {"release": release_name, "environment": env, "decision": "Approve"},
    }


APPROVED_RELEASE = "bench-approve-me"


def approvals(
    bob: Caller, ns: str, env: str, rate: float, seconds: float, first: int, profile: str = ""
) -> Run:
    """Approval creates as bob (dry run) on alice's real Release APPROVED_RELEASE."""
    path = f"/apis/{G}/{V}/namespaces/{ns}/approvals?dryRun=All"
    make = lambda i: approval(i, APPROVED_RELEASE, env)  # noqa: E731
    return send(bob, path, make, rate, seconds, first, profile)


def pod(i: int, image: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"bench-{i}"},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [{"name": "web", "image": image}],
        },
    }


PIN = "^[^@\\\\s]+@sha256:[a-f0-9]{64}$"
STAMPS = "['stella.io/requester', 'stella.io/approver', 'stella.io/actor', 'stella.io/bound-to']"
# The CEL floor: Release digest pinning and refusing a client-written identity, as one
# policy inside kube-apiserver (what the same rules cost with no webhook at all).
CEL_FLOOR = [
    {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "bench-release-floor"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [G],
                        "apiVersions": [V],
                        "resources": ["releases"],
                        "operations": ["CREATE"],
                    }
                ]
            },
            "validations": [
                {"expression": f"object.spec.components.all(c, c.image.matches('{PIN}'))"},
                {
                    "expression": "!has(object.metadata.annotations) || "
                    f"!{STAMPS}.exists(k, k in object.metadata.annotations)"
                },
            ],
        },
    },
    {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "bench-release-floor"},
        "spec": {"policyName": "bench-release-floor", "validationActions": ["Deny"]},
    },
]


# ---- histograms from kube-apiserver's /metrics ---------------------------------------------
Buckets = dict[str, dict[float, float]]  # webhook name -> upper bound -> cumulative count


def scrape(admin: Caller) -> Buckets:
    """The webhooks' latency histograms as kube-apiserver measures them, and (under
    CACHE_WAIT) how long its consistent reads of Approvals waited for the watch cache."""
    status, raw = admin.request("GET", "/metrics")
    if status != 200:
        raise RuntimeError(f"GET /metrics: HTTP {status}")
    text = raw.decode()
    out = buckets_of(text, METRIC, "name")
    waits = buckets_of(text, "apiserver_watch_cache_read_wait_seconds", "resource", False)
    for resource, b in waits.items():
        if resource.partition(".")[0] == "approvals":
            out[CACHE_WAIT] = b
    return out


# kube-apiserver's wait for its watch cache of Approvals to be fresh before it answers the
# operator's LIST of a Release's Approvals (a consistent read served from the cache).
CACHE_WAIT = "(watch cache wait, approvals)"


def scrape_operator(op: OperatorProcess) -> Buckets:
    """The operator's own time to answer each review (stella_admission_review_seconds, from
    the request read to the answer: a worker's wait and any read-through included), under
    the webhook's full name as kube-apiserver's histogram has it."""
    with urllib.request.urlopen(f"{op.url}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {
        f"{hook}.stella.io": b
        for hook, b in buckets_of(text, "stella_admission_review_seconds", "hook", False).items()
    }


def buckets_of(text: str, metric: str, label: str, only_ours: bool = True) -> Buckets:
    """A histogram's cumulative buckets by one label, summed over every other label."""
    out: Buckets = {}
    for line in text.splitlines():
        if not line.startswith(metric + "_bucket{"):
            continue
        labels_s, _, value = line[len(metric) + len("_bucket{") :].rpartition("} ")
        labels = dict(
            (k, v.strip('"')) for k, _, v in (p.partition("=") for p in labels_s.split(","))
        )
        name = labels.get(label, "")
        if only_ours and name not in HOOKS:
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
    rate: float = 0.0  # requests per second asked for
    server_cpu: float = 0.0  # kube-apiserver's user+system CPU seconds during the run
    gen_cpu: float = 0.0  # this process's (the load generator's) CPU seconds during the run
    busy_wall: float = 0.0  # the machine's busy share of all cores x wall seconds
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, other: Run) -> None:
        """Fold another run's requests into this one (slices of one phase)."""
        self.latencies += other.latencies
        for status, n in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + n
        self.stamped += other.stamped
        self.wall += other.wall
        self.late = max(self.late, other.late)
        self.server_cpu += other.server_cpu
        self.gen_cpu += other.gen_cpu
        self.busy_wall += other.busy_wall


@dataclass
class Server:
    """The kube-apiserver under test: its pid (CPU per request from /proc) and, with
    --profile, where each measured phase's CPU profile (/debug/pprof/profile) goes."""

    pid: int = 0  # 0: not measured
    admin: Caller | None = None
    profiles: Path | None = None

    def profile(self, name: str, seconds: float) -> threading.Thread | None:
        """Start a CPU profile of the next `seconds` (whole seconds, at least 1) into
        profiles/<name>.pprof (several slices of one phase: <name>.1.pprof, ...)."""
        if self.profiles is None or self.admin is None:
            return None
        admin = self.admin
        out = self.profiles / f"{name}.pprof"
        n = 1
        while out.exists():
            out = self.profiles / f"{name}.{n}.pprof"
            n += 1
        secs = max(1, int(seconds))

        def fetch() -> None:
            status, raw = admin.request("GET", f"/debug/pprof/profile?seconds={secs}")
            if status == 200:
                out.write_bytes(raw)
            else:
                print(f"[bench] profile {name}: HTTP {status}", file=sys.stderr)

        thread = threading.Thread(target=fetch, daemon=True)
        thread.start()
        return thread


SERVER = Server()  # bench() names the API server under test; send() measures it


def load(
    alice: Caller, ns: str, env: str, rate: float, seconds: float, first: int, profile: str = ""
) -> Run:
    """Release creates as alice (see send)."""
    path = f"/apis/{G}/{V}/namespaces/{ns}/releases?dryRun=All"
    return send(alice, path, lambda i: release(i, env), rate, seconds, first, profile)


def send(
    caller: Caller,
    path: str,
    make: Callable[[int], dict[str, object]],
    rate: float,
    seconds: float,
    first: int,
    profile: str = "",
) -> Run:
    """Open loop: request i starts at t0 + i/rate whether or not earlier ones returned.
    profile: a name for the API server's CPU profile of this run (with --profile)."""
    run = Run(rate=rate)
    total = int(rate * seconds)
    server = SERVER
    cpu0 = cpu_seconds(server.pid) if server.pid else 0.0
    gen0, ticks0 = own_cpu_seconds(), MachineTicks.now()
    profiler = server.profile(profile, seconds) if profile else None

    def one(i: int) -> None:
        t0 = time.perf_counter()
        status, body = caller.request("POST", path, make(first + i))
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
    run.gen_cpu = own_cpu_seconds() - gen0
    run.busy_wall = MachineTicks.now().busy_since(ticks0) * run.wall
    if server.pid:
        run.server_cpu = cpu_seconds(server.pid) - cpu0
    if profiler is not None:
        profiler.join()
    return run


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


# ---- setup ---------------------------------------------------------------------------------
def start_operator(
    cp: ControlPlane, workdir: Path, env: dict[str, str], webhooks: bool = True
) -> OperatorProcess:
    """tests/e2e/conftest.start_operator without --verbose: logging as in production (kopf's
    debug log of every webhook call would be part of what is measured). webhooks=False: the
    engine alone, as the chart runs it beside `stella admission run`."""
    http_port = free_port()
    full = {
        "KUBECONFIG": str(cp.kubeconfig_for(OPERATOR_USER)),
        "STELLA_HTTP_PORT": str(http_port),
        "STELLA_STATE_DIR": str(workdir / "state"),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    hook_port, ca = 0, None
    if webhooks:
        ca, crt, key = make_serving_cert(workdir / "webhook-pki")
        hook_port = free_port()
        full |= {
            "STELLA_WEBHOOK_CERT": str(crt),
            "STELLA_WEBHOOK_KEY": str(key),
            "STELLA_WEBHOOK_PORT": str(hook_port),
        }
    stella = str(Path(sys.executable).parent / "stella")
    proc = Process(
        "stella-operator", [stella, "operator", "run"], workdir / "operator.log", env=full
    )
    op = OperatorProcess(proc, http_port, full, hook_port)
    op.restart()  # starts it and waits for /readyz
    if ca is not None:
        # /readyz does not cover the webhook server: wait for its port too.
        wait_until(lambda: port_open(hook_port), 30, "operator webhook server", proc.log)
        register(cp, ca, hook_port)
    return op


def start_admission(cp: ControlPlane, workdir: Path, env: dict[str, str]) -> OperatorProcess:
    """`stella admission run` as the chart runs it (its own process and identity), its
    webhooks registered."""
    ca, crt, key = make_serving_cert(workdir / "webhook-pki")
    hook_port, http_port = free_port(), free_port()
    full = {
        "STELLA_WEBHOOK_CERT": str(crt),
        "STELLA_WEBHOOK_KEY": str(key),
        "STELLA_WEBHOOK_PORT": str(hook_port),
        "KUBECONFIG": str(cp.kubeconfig_for(ADMISSION_USER)),
        "STELLA_HTTP_PORT": str(http_port),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    stella = str(Path(sys.executable).parent / "stella")
    proc = Process(
        "stella-admission", [stella, "admission", "run"], workdir / "admission.log", env=full
    )
    adm = OperatorProcess(proc, http_port, full, hook_port)
    adm.restart()  # /readyz: the view synced and the webhook server listening
    register(cp, ca, hook_port)
    return adm


@contextmanager
def cluster(workdir: Path, profiling: bool = False) -> Iterator[ControlPlane]:
    cp = ControlPlane(workdir / "cluster", with_workers=False, profiling=profiling)
    try:
        cp.up()
        # bootstrap() also waits for the controller-manager's default ServiceAccount;
        # nothing here runs Pods, so CRDs and RBAC are all this needs.
        install_crds_and_rbac(cp)
        yield cp
    finally:
        cp.down()


MANAGED, UNMANAGED = "bench-managed", "bench-plain"
# A second managed namespace whose parameter lists the digests the way they were listed
# before digest_buckets (one string, still read by the policy): the before beside the after.
ONE_STRING = "bench-one-string"
APPROVED = 1_000  # digests in the managed namespace's parameter ConfigMap
SLICES = 4


def prepare(cp: ControlPlane, admin: Caller, alice: Caller) -> tuple[str, str]:
    ns, env = "bench-shop", "bench-prod"
    for name, labels in (
        (ns, {"team": "shop"}),
        (MANAGED, {"stella.io/managed": "true"}),
        (ONE_STRING, {"stella.io/managed": "true"}),
        (UNMANAGED, {}),
    ):
        admin.request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
        )
    for name in (MANAGED, ONE_STRING, UNMANAGED):  # no controller-manager here to make them
        admin.request(
            "POST",
            f"/api/v1/namespaces/{name}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
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
                "targets": [{"namespace": MANAGED}, {"namespace": ONE_STRING}],
                "requireApprovedDigests": True,
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


def approve_digests(operator: Caller, env: str) -> str:
    """With the operator stopped, its ConfigMaps in the managed namespaces as a busy one's
    would be (APPROVED digests, spread as sha256 digests are, approved for `env`): in MANAGED
    as the operator writes them (digest_buckets), in ONE_STRING as one string; written with
    the operator's own token (the writer policy lets no one else). Returns an approved image
    for the Pods."""
    digests = [f"sha256:{hashlib.sha256(str(i).encode()).hexdigest()}" for i in range(APPROVED)]
    for ns, data in (
        (MANAGED, digest_buckets(digests)),
        (ONE_STRING, {"digests": "\n".join(digests)}),
    ):
        path = f"/api/v1/namespaces/{ns}/configmaps/stella-approved-digests"
        deadline = time.monotonic() + 30
        while True:  # the operator wrote it when it saw the namespace
            status, raw = operator.request("GET", path)
            if status == 200:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no stella-approved-digests in {ns}: HTTP {status}")
            time.sleep(0.2)
        cm = json.loads(raw)
        cm["data"] = {"environments": env, **data}
        status, raw = operator.request("PUT", path, cm)
        if status != 200:
            raise RuntimeError(f"PUT {path}: HTTP {status} {raw[:300]!r}")
    return f"{REGISTRY}/shop/web@{digests[-1]}"


def wait_admitted(caller: Caller, path: str, body: dict[str, object], why: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        status, raw = caller.request("POST", path, body)
        if status == 201:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{why}: HTTP {status} {raw[:300]!r}")
        time.sleep(0.1)


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


def server_cpu(r: Run) -> float:
    """kube-apiserver CPU seconds per request of a run."""
    return r.server_cpu / len(r.latencies) if r.latencies else math.nan


def share(cpu: float, r: Run) -> str:
    """CPU seconds over a run's wall time, as % of one core."""
    return f"{cpu / r.wall * 100:5.0f}" if r.wall > 0 else "  n/a"


def client_table(title: str, rows: list[tuple[str, Run]], floor: Run) -> None:
    print(title)
    print("  (api ms: kube-apiserver CPU per request, /proc; api x: against the floor's;")
    print("   gen %, api %: the load generator's (this process) and kube-apiserver's CPU, % of one")
    print(
        f"   core; busy %: the whole machine's, % of all {os.cpu_count()} cores, others included)"
    )
    print(
        f"  {'':<34} {'requests':>8} {'ok':>6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'max ms':>7} {'p50 x':>6} {'p99 x':>6} {'api ms':>7} {'api x':>6} "
        f"{'gen %':>5} {'api %':>5} {'busy %':>6}"
    )
    for label, r in rows:
        ok = r.statuses.get(201, 0)
        busy = r.busy_wall / r.wall * 100 if r.wall > 0 else math.nan
        print(
            f"  {label:<34} {len(r.latencies):8d} {ok:6d} {len(r.latencies) / r.wall:7.1f} "
            f"{ms(pct(r.latencies, 0.5)):>7} {ms(pct(r.latencies, 0.99)):>7} "
            f"{ms(max(r.latencies, default=math.nan)):>7} "
            f"{pct(r.latencies, 0.5) / pct(floor.latencies, 0.5):5.2f}x "
            f"{pct(r.latencies, 0.99) / pct(floor.latencies, 0.99):5.2f}x "
            f"{ms(server_cpu(r)):>7} {server_cpu(r) / server_cpu(floor):5.2f}x "
            f"{share(r.gen_cpu, r)} {share(r.server_cpu, r)} {busy:6.0f}"
        )
    for label, r in rows:
        bad = {s: n for s, n in r.statuses.items() if s != 201}
        print(
            f"    {label}: statuses {dict(sorted(r.statuses.items()))}"
            + (f" (NOT all admitted: {bad})" if bad else "")
            + f"; the sender fell {r.late * 1000:.0f} ms behind schedule at worst"
        )
    print()


API_MEASURE = (
    "kube-apiserver's own measure (apiserver_admission_webhook_admission_duration_seconds,"
)
OPERATOR_MEASURE = (
    "the operator's own time to answer (stella_admission_review_seconds, from reading the"
)


def hook_table(hooks: Buckets, phase: str, measure: str = API_MEASURE) -> None:
    print(measure)
    print(f"interpolated within its buckets), during the all-admission {phase} phase")
    print(
        f"  {'webhook':<30} {'calls':>6} {'p50 ms':>7} {'p99 ms':>7}   buckets (s) holding p50 / p99"
    )
    for name in (*HOOKS, *([CACHE_WAIT] if CACHE_WAIT in hooks else [])):
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


@dataclass
class Phases:
    release_all: Run
    release_cel: Run
    release_none: Run
    pod_managed: Run
    pod_unmanaged: Run
    pod_one_string: Run
    approval_all: Run
    approval_none: Run
    # With --engine-busy: Approvals while the engine works on real Releases arriving, and
    # the operator's CPU share meanwhile (is admission ever behind the engine's work?).
    approval_busy: Run | None = None
    operator_busy: float = 0.0
    busy_hooks: Buckets = field(default_factory=dict)  # kube-apiserver's, then the operator's
    busy_operator_hooks: Buckets = field(default_factory=dict)
    # The busy phase's floor: the same Releases created meanwhile with no admission and the
    # operator stopped (the API server's own share of the busy phase's cost).
    approval_none_busy: Run | None = None
    apart: bool = True  # admission in its own process (else served by the operator's)


def report(
    rate: float,
    seconds: float,
    hooks: Buckets,
    approval_hooks: Buckets,
    p: Phases,
    operator_hooks: Buckets | None = None,
) -> None:
    print()
    print(
        f"Stella's admission on a real kube-apiserver: {rate:g} dry-run creates/s, "
        f"{seconds:g} s per phase, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"
    )
    print()
    hook_table(hooks, "Release")
    hook_table(approval_hooks, "Approval")
    if operator_hooks is not None:
        # The difference to the table above: the API server's side of the call (its TLS
        # client, queueing for a CPU) and the way there and back.
        hook_table(operator_hooks, "Approval", OPERATOR_MEASURE + " request to the answer,")
    client_table(
        "Release create as alice, client-observed (POST ...?dryRun=All, TLS, bearer token);"
        " x = against no admission",
        [
            ("all admission (webhooks + policies)", p.release_all),
            ("CEL floor (the same rules as a VAP)", p.release_cel),
            ("no admission", p.release_none),
        ],
        p.release_none,
    )
    client_table(
        f"Pod create as admin, operator stopped; x = against the unmanaged namespace "
        f"({APPROVED} approved digests in the parameter)",
        [
            ("managed namespace (policies only)", p.pod_managed),
            ("managed, digests in one string (before)", p.pod_one_string),
            ("unmanaged namespace", p.pod_unmanaged),
        ],
        p.pod_unmanaged,
    )
    client_table(
        "Approval create as bob (dry run); x = against no admission",
        [
            ("all admission (webhooks)", p.approval_all),
            *([("all, engine busy (see below)", p.approval_busy)] if p.approval_busy else []),
            ("no admission", p.approval_none),
            *(
                [("none, same Releases created", p.approval_none_busy)]
                if p.approval_none_busy
                else []
            ),
        ],
        p.approval_none,
    )
    if p.approval_busy is not None:
        print(
            f"  engine busy: real Releases created meanwhile; the operator used "
            f"{p.operator_busy * 100:.0f}% of one core "
            + (
                "(the engine; admission in its own process)"
                if p.apart
                else "(admission and engine together)"
            )
        )
        print()
        hook_table(p.busy_hooks, "Approval, engine busy,")
        hook_table(
            p.busy_operator_hooks,
            "Approval, engine busy,",
            OPERATOR_MEASURE + " request to the answer,",
        )
    print(f"  requester stamped on {p.release_all.stamped} of the all-admission Release creates")
    calls = hooks.get("validate-release.stella.io", {}).get(math.inf, 0.0)
    record(
        "webhooks",
        "validate-release calls per plain Release create",
        calls / max(1, len(p.release_all.latencies)),
        "",
        goal=0.0,
        note=f"{rate:g}/s; judged by the release-create policy",
    )
    record(
        "webhooks",
        "Approval create p99 added by admission",
        (pct(p.approval_all.latencies, 0.99) - pct(p.approval_none.latencies, 0.99)) * 1000,
        "ms",
        goal=10.0,
        note=f"{p.approval_all.rate:g}/s, admission {'apart' if p.apart else 'in the operator'}; "
        f"all {pct(p.approval_all.latencies, 0.99) * 1000:.1f} "
        f"vs none {pct(p.approval_none.latencies, 0.99) * 1000:.1f} ms",
    )
    if p.approval_busy is not None and p.approval_none_busy is not None:
        busy_p99 = pct(p.approval_busy.latencies, 0.99)
        floor_p99 = pct(p.approval_none_busy.latencies, 0.99)
        record(
            "webhooks",
            "Approval create p99 added by admission, Releases created meanwhile",
            (busy_p99 - floor_p99) * 1000,
            "ms",
            goal=10.0,
            note=f"{p.approval_busy.rate:g}/s, admission {'apart' if p.apart else 'in the operator'}; "
            f"all {busy_p99 * 1000:.1f} vs none "
            f"{floor_p99 * 1000:.1f} ms, the same Releases created meanwhile in both "
            "(none: operator stopped)",
        )
    for measure, run, floor in (
        ("Release create", p.release_all, p.release_none),
        ("Pod create (managed vs unmanaged)", p.pod_managed, p.pod_unmanaged),
        ("Approval create", p.approval_all, p.approval_none),
    ):
        record(
            "webhooks",
            f"{measure}: kube-apiserver CPU per request, all admission vs none",
            server_cpu(run) * 1000,
            "ms",
            floor=server_cpu(floor) * 1000,
            note=f"{run.rate:g}/s; context for the latency ratios",
        )
    release = p.release_all
    record(
        "webhooks",
        "load generator's own CPU during the all-admission Release phase",
        release.gen_cpu / release.wall * 100 if release.wall > 0 else math.nan,
        "% of a core",
        note=f"{rate:g}/s; machine {release.busy_wall / max(release.wall, 1e-9) * 100:.0f}% busy "
        "(all cores): context for the latency ratios (queueing or cost)",
    )
    note = f"{rate:g}/s; goal at 200/s"
    for q, name, goal in ((0.5, "p50", 1.10), (0.99, "p99", 1.25)):
        record(
            "webhooks",
            f"Release create {name}, all admission vs none",
            pct(p.release_all.latencies, q) * 1000,
            "ms",
            goal=goal,
            floor=pct(p.release_none.latencies, q) * 1000,
            note=note,
        )
        record(
            "webhooks",
            f"Release create {name}, CEL floor vs none",
            pct(p.release_cel.latencies, q) * 1000,
            "ms",
            floor=pct(p.release_none.latencies, q) * 1000,
            note=f"{rate:g}/s",
        )
        record(
            "webhooks",
            f"Pod create {name}, managed vs unmanaged namespace",
            pct(p.pod_managed.latencies, q) * 1000,
            "ms",
            goal=1.05 if q == 0.5 else None,
            floor=pct(p.pod_unmanaged.latencies, q) * 1000,
            note=f"{rate:g}/s, operator stopped",
        )


def approvals_while_busy(
    alice: Caller,
    bob: Caller,
    op: OperatorProcess | None,
    ns: str,
    env: str,
    approval_rate: float,
    release_rate: float,
    secs: float,
    first: int = 0,
    profile: str = "approval-busy",
) -> tuple[Run, float]:
    """Approval creates (dry run) while alice creates real Releases (stored: the engine
    evaluates each, writes its status, publishes the policy's parameter); returns the
    Approvals' run and the operator's CPU share of one core meanwhile (0 with op None: the
    busy floor, the same Releases stored with no admission and no operator)."""
    path = f"/apis/{G}/{V}/namespaces/{ns}/releases"

    def make(i: int) -> dict[str, object]:
        body = release(5_000_000 + i, env)
        body["metadata"] = {"name": f"bench-busy-{i}"}
        return body

    busy = threading.Thread(
        target=send, args=(alice, path, make, release_rate, secs + 2, first), daemon=True
    )
    cpu0, t0 = (cpu_seconds(op.proc.pid) if op else 0.0), time.monotonic()
    busy.start()
    time.sleep(1)  # the engine has work before the first Approval
    run = approvals(bob, ns, env, approval_rate, secs, 4_000_000, profile)
    share = ((cpu_seconds(op.proc.pid) - cpu0) if op else 0.0) / (time.monotonic() - t0)
    busy.join()
    return run, share


def record_operator(pid: int, seconds: float, into: Path | None) -> subprocess.Popen[bytes] | None:
    """py-spy recording the operator for `seconds` (wall time, every thread), or None."""
    if into is None:
        return None
    duration = str(max(1, int(seconds)))
    return pyspy_record(
        pid, into / "approval-operator.txt", "--duration", duration, "--rate", "200"
    )


def side_by_side(rate: float, results: list[tuple[str, Phases]]) -> None:
    """The measures of each mode (unpinned or pinned; admission apart or in the operator) in
    one table: queueing or cost?"""

    def x(run: Run, floor: Run, q: float) -> str:
        return f"{pct(run.latencies, q) / pct(floor.latencies, q):.2f}x"

    def cpu_x(run: Run, floor: Run) -> str:
        return f"{server_cpu(run) / server_cpu(floor):.2f}x"

    def added(run: Run, floor: Run) -> str:
        return f"{(pct(run.latencies, 0.99) - pct(floor.latencies, 0.99)) * 1000:+.1f} ms"

    rows: list[tuple[str, Callable[[Phases], str]]] = [
        ("Release p50, all / none (goal 1.10x)", lambda p: x(p.release_all, p.release_none, 0.5)),
        ("Release p99, all / none (goal 1.25x)", lambda p: x(p.release_all, p.release_none, 0.99)),
        ("Release p50, CEL floor / none", lambda p: x(p.release_cel, p.release_none, 0.5)),
        ("Release API CPU, all / none", lambda p: cpu_x(p.release_all, p.release_none)),
        (
            "Pod p50, managed / unmanaged (goal 1.05x)",
            lambda p: x(p.pod_managed, p.pod_unmanaged, 0.5),
        ),
        ("Pod p99, managed / unmanaged", lambda p: x(p.pod_managed, p.pod_unmanaged, 0.99)),
        ("Pod API CPU, managed / unmanaged", lambda p: cpu_x(p.pod_managed, p.pod_unmanaged)),
        ("Approval p99 added (goal <= 10 ms)", lambda p: added(p.approval_all, p.approval_none)),
        (
            "Approval p99 added, engine busy",
            lambda p: added(p.approval_busy, p.approval_none) if p.approval_busy else "n/a",
        ),
        (
            "Approval p99 added, busy vs busy floor",
            lambda p: (
                added(p.approval_busy, p.approval_none_busy)
                if p.approval_busy and p.approval_none_busy
                else "n/a"
            ),
        ),
        (
            "generator CPU, Release all (% core)",
            lambda p: share(p.release_all.gen_cpu, p.release_all).strip(),
        ),
        (
            "machine busy, Release all (% cores)",
            lambda p: f"{p.release_all.busy_wall / p.release_all.wall * 100:.0f}",
        ),
    ]
    print(f"\nSide by side at {rate:g}/s (each ratio against its floor in the same run)")
    print(f"  {'':<44}" + "".join(f" {name:>21}" for name, _ in results))
    for label, figure in rows:
        print(f"  {label:<44}" + "".join(f" {figure(p):>21}" for _, p in results))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--rate", default="40,200", help="creates per second, comma-separated: one run each"
    )
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase")
    ap.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--approval-rate", type=float, default=20.0, help="Approval creates per second")
    ap.add_argument(
        "--profile",
        type=Path,
        help="save kube-apiserver's CPU profile of every measured phase here "
        "(<rate>/<phase>.pprof; read with `go tool pprof -top FILE`)",
    )
    ap.add_argument(
        "--pyspy",
        type=Path,
        help="record the operator with py-spy (on PATH or beside this Python) during the "
        "measured all-admission Approval phase: <rate>/approval-operator.txt, raw stacks "
        "of every thread, idle ones included (wall time: where an Approval waits)",
    )
    ap.add_argument(
        "--pin",
        choices=("off", "on", "both"),
        default="off",
        help="on: the load generator on one core, the control plane and the operator on the "
        "others (sched_setaffinity; other processes on the machine still run anywhere); "
        "both: a run each way, on a control plane each, and the two side by side",
    )
    ap.add_argument(
        "--engine-busy",
        type=float,
        default=0.0,
        metavar="RATE",
        help="also measure Approvals while alice creates RATE real Releases per second "
        "(the engine evaluates each: admission shares the operator's process with it), "
        "and their floor: no admission, the operator stopped, the same Releases created",
    )
    ap.add_argument(
        "--admission",
        choices=("apart", "operator", "both"),
        default="apart",
        help="apart: admission in its own process (`stella admission run`) beside the engine, "
        "as the chart runs them; operator: served by the operator's process "
        "(`stella operator run` with a certificate); both: a run each, side by side",
    )
    args = ap.parse_args()
    choices: dict[str, list[Split | None]] = {
        "off": [None],
        "on": [Split.pinned()],
        "both": [None, Split.pinned()],
    }
    modes = choices[args.pin]
    for rate in (float(r) for r in str(args.rate).split(",")):
        profiles = args.profile / f"{rate:g}" if args.profile else None
        pyspy = args.pyspy / f"{rate:g}" if args.pyspy else None
        results: list[tuple[str, Phases]] = []
        placements = {"apart": [True], "operator": [False], "both": [True, False]}
        for split, apart in [(m, a) for m in modes for a in placements[args.admission]]:
            name = ("pinned" if split else "unpinned") + (", apart" if apart else ", in operator")
            print(
                f"\n== {rate:g}/s, {split.describe() if split else 'not pinned'}, admission "
                f"{'in its own process' if apart else 'in the operator'}",
                flush=True,
            )
            phases = bench(
                rate,
                args.seconds,
                args.warmup,
                args.keep,
                args.approval_rate,
                profiles,
                split=split,
                pyspy=pyspy,
                engine_busy=args.engine_busy,
                apart=apart,
            )
            results.append((name, phases))
        if len(results) > 1:
            side_by_side(rate, results)


def bench(
    rate: float,
    secs: float,
    warm: float,
    keep: bool,
    approval_rate: float = 20.0,
    profiles: Path | None = None,
    split: Split | None = None,
    pyspy: Path | None = None,
    engine_busy: float = 0.0,
    apart: bool = True,
) -> Phases:
    """One run at one rate, on a control plane of its own; split: pinned to cores so;
    apart: admission in its own process beside the engine (as the chart runs them), else
    served by the operator's process."""
    workdir = Path(tempfile.mkdtemp(prefix="stella-bench-webhooks-"))
    t_start = time.monotonic()
    op: OperatorProcess | None = None
    adm: OperatorProcess | None = None
    everywhere = os.sched_getaffinity(0)
    try:
        with cluster(workdir, profiling=profiles is not None) as cp:
            print(f"[bench] control plane up in {time.monotonic() - t_start:.1f}s", file=sys.stderr)
            if split is not None:
                # This thread starts every sender thread (they inherit it) and the operator
                # (pinned again below, with every thread it started meanwhile).
                os.sched_setaffinity(0, split.generator)
                threads = sum(pin(p.pid, split.system) for p in cp.procs)
                print(f"[bench] pinned {threads} control-plane threads", file=sys.stderr)
            if profiles is not None:
                profiles.mkdir(parents=True, exist_ok=True)
            api = next(p for p in cp.procs if p.name == "kube-apiserver")
            SERVER.pid = api.pid
            SERVER.admin = Caller(cp.server, cp.tokens["admin"], str(cp.ca_file))
            unlimited = {"STELLA_WEBHOOK_RATE": "100000", "STELLA_WEBHOOK_BURST": "100000"}
            if apart:
                adm = start_admission(cp, workdir, unlimited)
                op = start_operator(cp, workdir, {"STELLA_RESYNC_SECONDS": "300"}, webhooks=False)
            else:
                op = start_operator(cp, workdir, {**unlimited, "STELLA_RESYNC_SECONDS": "300"})
                adm = op
            if split is not None:
                threads = sum(
                    pin(p.proc.pid, split.system) for p in {id(op): op, id(adm): adm}.values()
                )
                print(f"[bench] pinned {threads} operator and admission threads", file=sys.stderr)
            admin = Caller(cp.server, cp.tokens["admin"], str(cp.ca_file))
            alice = Caller(cp.server, cp.tokens["alice"], str(cp.ca_file))
            operator = Caller(cp.server, cp.tokens[OPERATOR_USER], str(cp.ca_file))
            ns, env = prepare(cp, admin, alice)
            print(
                f"[bench] operator and webhooks ready at {time.monotonic() - t_start:.1f}s",
                file=sys.stderr,
            )

            # 1. Release creates through all of Stella's admission.
            load(alice, ns, env, rate, warm, 1_000_000)
            before = scrape(admin)
            ours = [op.proc.pid] + ([adm.proc.pid] if adm is not op else [])
            cpu0 = sum(cpu_seconds(pid) for pid in ours)
            SERVER.profiles = profiles  # only the measured phases are profiled
            release_all = load(alice, ns, env, rate, secs, 0, "release-all")
            op_cpu = sum(cpu_seconds(pid) for pid in ours) - cpu0
            hooks = delta(scrape(admin), before)

            # 1b. Approvals, through the webhooks that must judge them (a real Release first).
            bob = Caller(cp.server, cp.tokens["bob"], str(cp.ca_file))
            real = release(0, env)
            real["metadata"] = {"name": APPROVED_RELEASE}
            status, raw = alice.request("POST", f"/apis/{G}/{V}/namespaces/{ns}/releases", real)
            if status != 201:
                raise RuntimeError(f"Release {APPROVED_RELEASE}: HTTP {status} {raw[:300]!r}")
            appr_path = f"/apis/{G}/{V}/namespaces/{ns}/approvals?dryRun=All"
            wait_admitted(bob, appr_path, approval(0, APPROVED_RELEASE, env), "an Approval")
            approvals(bob, ns, env, approval_rate, warm, 1_000_000)
            before, op_before = scrape(admin), scrape_operator(adm)
            spy = record_operator(adm.proc.pid, secs, pyspy)
            approval_all = approvals(bob, ns, env, approval_rate, secs, 0, "approval-all")
            approval_hooks = delta(scrape(admin), before)
            operator_hooks = delta(scrape_operator(adm), op_before)
            if spy is not None:
                spy.wait(timeout=60)
            approval_busy, operator_busy, busy_hooks, busy_op_hooks = None, 0.0, {}, {}
            if engine_busy > 0:
                before, op_before = scrape(admin), scrape_operator(adm)
                approval_busy, operator_busy = approvals_while_busy(
                    alice, bob, op, ns, env, approval_rate, engine_busy, secs
                )
                busy_hooks = delta(scrape(admin), before)
                busy_op_hooks = delta(scrape_operator(adm), op_before)

            # 2. Pods, with the operator (and admission) stopped: the policies alone judge
            # the managed ones.
            op.proc.stop()
            adm.proc.stop()
            image = approve_digests(operator, env)
            spaces = (MANAGED, ONE_STRING, UNMANAGED)
            pods = {n: f"/api/v1/namespaces/{n}/pods?dryRun=All" for n in spaces}
            for n in spaces:
                wait_admitted(admin, pods[n], pod(0, image), f"an approved Pod in {n}")
                send(admin, pods[n], lambda i: pod(i, image), rate, warm, 1_000_000)
            # Interleaved in slices, so both see the same machine (others' load comes and goes).
            pod_managed, pod_one_string, pod_unmanaged = Run(), Run(), Run()
            for _ in range(SLICES):
                for n, into in (
                    (MANAGED, pod_managed),
                    (ONE_STRING, pod_one_string),
                    (UNMANAGED, pod_unmanaged),
                ):
                    make = lambda i: pod(i, image)  # noqa: E731
                    into.add(send(admin, pods[n], make, rate, secs / SLICES, 0, f"pod-{n}"))

            # 3. The floors: the same Release rules as one VAP, then no admission at all.
            unregister(cp)
            wait_unregistered(alice, ns, env)
            cp.kubectl(
                "admin",
                "apply",
                "-f",
                "-",
                stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": CEL_FLOOR}),
            )
            wait_refused(alice, ns, env)
            load(alice, ns, env, rate, warm, 2_000_000)
            release_cel = load(alice, ns, env, rate, secs, 0, "release-cel")
            cp.kubectl(
                "admin",
                "delete",
                "validatingadmissionpolicybinding,validatingadmissionpolicy",
                "bench-release-floor",
            )
            load(alice, ns, env, rate, warm, 3_000_000)
            release_none = load(alice, ns, env, rate, secs, 0, "release-none")
            approvals(bob, ns, env, approval_rate, warm, 2_000_000)
            approval_none = approvals(bob, ns, env, approval_rate, secs, 0, "approval-none")
            approval_none_busy = None
            if engine_busy > 0:
                approval_none_busy, _ = approvals_while_busy(
                    alice,
                    bob,
                    None,
                    ns,
                    env,
                    approval_rate,
                    engine_busy,
                    secs,
                    first=1_000_000,
                    profile="approval-none-busy",
                )
            phases = Phases(
                release_all,
                release_cel,
                release_none,
                pod_managed,
                pod_unmanaged,
                pod_one_string,
                approval_all,
                approval_none,
                approval_busy,
                operator_busy,
                busy_hooks,
                busy_op_hooks,
                approval_none_busy,
                apart,
            )
            report(rate, secs, hooks, approval_hooks, phases, operator_hooks)
            print(
                f"  admission served {'by its own process' if apart else 'by the operator'}; "
                f"operator{' + admission' if apart else ''} "
                f"CPU while serving Releases: {op_cpu:.1f} s in {release_all.wall:.0f} s "
                f"({op_cpu / release_all.wall * 100:.0f}% of one core), "
                f"{op_cpu / len(release_all.latencies) * 1000:.1f} ms per create"
            )
            print(f"\n[bench] total {time.monotonic() - t_start:.0f}s", file=sys.stderr)
            return phases
    finally:
        os.sched_setaffinity(0, everywhere)
        SERVER.pid, SERVER.admin, SERVER.profiles = 0, None, None
        if op is not None:
            op.proc.stop()
        if adm is not None:
            adm.proc.stop()
        if keep:
            print(f"[bench] kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def wait_refused(alice: Caller, ns: str, env: str) -> None:
    """Until the CEL floor refuses a forged requester: the policy is in force."""
    forged = release(3, env)
    forged["metadata"] = {"name": "bench-forged", "annotations": {"stella.io/requester": "{}"}}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, _ = alice.request(
            "POST", f"/apis/{G}/{V}/namespaces/{ns}/releases?dryRun=All", forged
        )
        if status in (403, 422):
            return
        time.sleep(0.1)
    raise RuntimeError("the CEL floor policy does not refuse a forged requester")


if __name__ == "__main__":
    main()
