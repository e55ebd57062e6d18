"""What the web console's pages cost with 1,000 Releases: prints figures, asserts nothing.

.venv/bin/python bench/bench_console.py [--releases 1000] [--requests 200]

Starts its own control plane (etcd + kube-apiserver only), five Environments in a path
(dev -> qa -> staging -> perf -> prod), --releases Releases in one namespace with a status
per Environment (one in ten waiting for approval in staging, so "waiting for me" runs
admission's Approval rule for each), and `stella web` as its own process with its own
ServiceAccount token. It logs in as bob (TokenReview) and then, one request after the
other over one kept-alive TLS connection, asks each page --requests times:

* `/healthz` — the floor: TLS, aiohttp and the session-less path, no view work;
* `/api/pipeline` — the cells the pipelines page's script fetches when something changed
  (built once per revision of the view and per set of readable namespaces, then cached);
* `/api/pipeline?since=<revision>` — its poll every 2 s when nothing changed;
* `/` — the pipelines page (Releases x Environments);
* `/inbox` — waiting for me (admission's rule per waiting Release, bob's access reviews);
* `/releases/shop/<one>` — one Release's page.

It reports p50/p99 per page and the ratio of each p99 to the floor's, measured in the
same run. Then the webhook gateway (OpenBao holding the receiver's key): --events signed
CI events, each accepted one creating a Release as the receiver's ServiceAccount, and as
many with a wrong signature; deliveries per second against the floor's requests per
second. SelfSubjectAccessReviews are cached for 10 s per person and question, so most
requests are served from the view and the cache; the API server's share shows in p99.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import ssl
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hvac

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "hack"))

from kubernetes import client  # noqa: E402
from tests.kube_support import api_client_for, start_console  # noqa: E402

from devenv.bootstrap import install_crds_and_rbac  # noqa: E402
from devenv.controlplane import ControlPlane  # noqa: E402
from devenv.proc import Process, wait_until  # noqa: E402
from devenv.services import OpenBao  # noqa: E402
from stella.policy.identity import Identity, format_identity  # noqa: E402
from summary import record  # noqa: E402

G, V = "stella.io", "v1alpha1"
STAGES = ["dev", "qa", "staging", "perf", "prod"]
DIGEST = "sha256:" + "ab" * 32
ALICE = Identity("alice", "uid-alice", frozenset({"release-requesters"}))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def world(admin: client.ApiClient, releases: int) -> None:
    core, custom = client.CoreV1Api(admin), client.CustomObjectsApi(admin)
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name="shop", labels={"team": "shop"}))
    )
    for i, stage in enumerate(STAGES):
        custom.create_cluster_custom_object(
            G,
            V,
            "environments",
            {
                "apiVersion": f"{G}/{V}",
                "kind": "Environment",
                "metadata": {"name": stage},
                "spec": {
                    "requires": [STAGES[i - 1]] if i else [],
                    "targets": [{"namespace": f"shop-{stage}"}],
                    "allowedRegistries": ["registry.example.com"],
                    "approvals": {
                        "required": 1 if stage in ("staging", "prod") else 0,
                        "approverGroups": ["release-approvers"],
                    },
                },
            },
        )

    def one(n: int) -> None:
        name = f"shop-{n:05d}"
        custom.create_namespaced_custom_object(
            G,
            V,
            "shop",
            "releases",
            {
                "apiVersion": f"{G}/{V}",
                "kind": "Release",
                "metadata": {
                    "name": name,
                    "annotations": {"stella.io/requester": format_identity(ALICE)},
                },
                "spec": {
                    "version": f"1.0.{n}",
                    "environments": STAGES,
                    "components": [
                        {
                            "name": "web",
                            "image": f"registry.example.com/shop/web@{DIGEST}",
                            "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                        }
                    ],
                },
            },
        )
        waiting = n % 10 == 0
        phases = ["Deployed", "Deployed"] + (
            ["WaitingForApproval", "Pending", "Pending"]
            if waiting
            else ["Deployed", "Deployed", "Superseded"]
        )
        custom.patch_namespaced_custom_object_status(
            G,
            V,
            "shop",
            "releases",
            name,
            {
                "status": {
                    "environments": [
                        {"name": s, "phase": p, "reason": p, "message": ""}
                        for s, p in zip(STAGES, phases, strict=True)
                    ]
                }
            },
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(releases)))


class Session:
    """bob's browser, reduced to one kept-alive TLS connection and his cookies."""

    def __init__(self, port: int, ca: Path) -> None:
        self.conn = http.client.HTTPSConnection(
            "127.0.0.1", port, context=ssl.create_default_context(cafile=str(ca)), timeout=60
        )
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        body: str | bytes | None = None,
        extra: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        headers.update(extra or {})
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        text = resp.read().decode(errors="replace")
        for raw in resp.msg.get_all("Set-Cookie") or []:
            name, _, rest = raw.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return resp.status, text

    def login(self, token: str) -> None:
        status, page = self.request("GET", "/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert status == 200 and csrf, page[:300]
        form = urllib.parse.urlencode({"csrf": csrf.group(1), "token": token})
        status, _ = self.request("POST", "/login", form)
        assert status == 303 and "__Host-stella-access" in self.cookies, status


def floor_rate(results: dict[str, list[float]]) -> float:
    times = results["floor /healthz"]
    return len(times) / sum(times)


def gateway(admin: client.ApiClient, hook: Session, key: str, events: int, floor: float) -> None:
    """Signed CI events, one after the other: each accepted one creates a Release as the
    receiver's ServiceAccount (impersonated); then the same number with a wrong signature."""
    from stella.secrets.value import SecretValue
    from stella.web.hooks import sign

    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    custom = client.CustomObjectsApi(admin)
    sa = "stella-receiver-ci"
    core.create_namespaced_service_account(
        "shop", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=sa))
    )
    group = "rbac.authorization.k8s.io"
    rbac.create_namespaced_role_binding("shop", client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="receiver-requests"),
        role_ref=client.V1RoleRef(api_group=group, kind="ClusterRole", name="stella-requester"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=sa, namespace="shop")],
    ))  # fmt: skip
    rbac.create_namespaced_role("shop", client.V1Role(
        metadata=client.V1ObjectMeta(name="impersonate"),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["serviceaccounts"],
                                   verbs=["impersonate"], resource_names=[sa])],
    ))  # fmt: skip
    rbac.create_namespaced_role_binding("shop", client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="impersonate"),
        role_ref=client.V1RoleRef(api_group=group, kind="Role", name="impersonate"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name="stella-console",
                                       namespace="stella-system")],
    ))  # fmt: skip
    web = {"kind": "Deployment", "name": "web", "container": "web"}
    custom.create_namespaced_custom_object(G, V, "shop", "receivers", {
        "apiVersion": f"{G}/{V}", "kind": "Receiver", "metadata": {"name": "ci"},
        "spec": {"secret": "vault:secret/data/hooks/ci#hmac", "serviceAccountName": sa,
                 "environments": ["dev"], "ratePerMinute": 6000, "burst": 1000,
                 "components": [{"name": "web", "repository": "registry.example.com/shop/web",
                                 "workload": web}]},
    })  # fmt: skip
    secret = SecretValue(key)

    def deliver(version: str, signing: SecretValue) -> int:
        body = json.dumps({"version": version, "components": [
            {"name": "web", "image": f"registry.example.com/shop/web@{DIGEST}"}]}).encode()  # fmt: skip
        stamp, nonce = str(int(time.time())), uuid.uuid4().hex
        headers = {"X-Stella-Timestamp": stamp, "X-Stella-Nonce": nonce,
                   "X-Stella-Signature": sign(signing, stamp, nonce, body),
                   "Content-Type": "application/json"}  # fmt: skip
        return hook.request("POST", "/hooks/shop/ci", body, headers)[0]

    wait_until(lambda: deliver("0.0.0", SecretValue("wrong")) == 401, 60, "the receiver")
    print(f"\ngateway, {events} sequential deliveries each over one TLS connection")
    print(f"{'deliveries':<34}{'p50 ms':>9}{'p99 ms':>9}{'per s':>9}{'vs floor':>10}")
    for label, signing, expected in (
        ("accepted (a Release each)", secret, 201),
        ("refused: bad signature", SecretValue("wrong"), 401),
    ):
        times = []
        for n in range(events):
            t0 = time.perf_counter()
            status = deliver(f"9.{n}.{len(label)}", signing)
            times.append(time.perf_counter() - t0)
            assert status == expected, (label, status)
        rate = len(times) / sum(times)
        p50, p99 = pct(times, 0.5) * 1000, pct(times, 0.99) * 1000
        print(f"{label:<34}{p50:>9.1f}{p99:>9.1f}{rate:>9.1f}{rate / floor:>10.3f}")
        record(
            "console",
            f"gateway {label}",
            rate,
            "events/s",
            floor=floor,
            note=f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; floor = /healthz req/s",
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--releases", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--events", type=int, default=200, help="gateway deliveries to send")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-console-"))
    cp = ControlPlane(workdir / "cluster", with_workers=False)
    cp.up()
    proc: Process | None = None
    bao: OpenBao | None = None
    key_box: dict[str, str] = {}
    try:
        install_crds_and_rbac(cp)
        bao = OpenBao(workdir / "bao").start()
        key_box["key"] = uuid.uuid4().hex
        hvac.Client(url=bao.addr, token=bao.root_token).secrets.kv.v2.create_or_update_secret(
            path="hooks/ci", secret={"hmac": key_box["key"]}
        )
        (workdir / "vault-token").write_text(bao.root_token + "\n")
        admin = api_client_for(str(cp.kubeconfig), "admin")
        started = time.monotonic()
        world(admin, args.releases)
        print(
            f"{args.releases} Releases x {len(STAGES)} Environments created in "
            f"{time.monotonic() - started:.1f} s"
        )
        proc, port, ca, _ = start_console(
            admin,
            cp.server,
            str(cp.ca_file),
            workdir,
            {
                "STELLA_WEB_RATE": "100000",  # the per-person limit is not what is measured
                "STELLA_WEB_BURST": "100000",
                "STELLA_VAULT_ADDR": bao.addr,
                "STELLA_VAULT_AUTH": "token",
                "STELLA_VAULT_TOKEN_FILE": str(workdir / "vault-token"),
            },
        )
        synced_at = time.monotonic()
        wait_until(
            lambda: Session(port, ca).request("GET", "/readyz")[0] == 200, 120, "console", proc.log
        )
        bob = Session(port, ca)
        print(f"console view synced in {time.monotonic() - synced_at:.1f} s")
        bob.login(cp.tokens["bob"])
        revision = json.loads(bob.request("GET", "/api/pipeline")[1])["revision"]
        pages = [
            ("floor /healthz", "/healthz"),
            ("/api/pipeline", "/api/pipeline"),
            ("poll, nothing new", f"/api/pipeline?since={revision}"),
            ("pipelines /", "/"),
            ("waiting for me /inbox", "/inbox"),
            ("a Release", f"/releases/shop/shop-{args.releases // 2:05d}"),
        ]
        results: dict[str, list[float]] = {}
        for label, path in pages:
            for _ in range(5):  # warm: caches, connection
                status, body = bob.request("GET", path)
                assert status == 200, (path, status, body[:300])
            times = []
            for _ in range(args.requests):
                t0 = time.perf_counter()
                status, body = bob.request("GET", path)
                times.append(time.perf_counter() - t0)
                assert status == 200, (path, status)
            results[label] = times
            if path == "/inbox":
                offered = body.count('value="Approve"')
                print(f"  (bob's inbox offers {offered} decisions)")
        floor = pct(results["floor /healthz"], 0.99)
        print(
            f"\nconsole pages, {args.releases} Releases, {args.requests} sequential requests "
            "each over one TLS connection (ms)"
        )
        print(f"{'page':<24}{'p50':>9}{'p99':>9}{'req/s':>9}{'p99/floor':>11}")
        for label, times in results.items():
            p50, p99 = pct(times, 0.5) * 1000, pct(times, 0.99) * 1000
            rate = len(times) / sum(times)
            print(f"{label:<24}{p50:>9.1f}{p99:>9.1f}{rate:>9.0f}{p99 / (floor * 1000):>11.1f}")
            if label != "floor /healthz":
                record(
                    "console",
                    f"{label} p99 ({args.releases} Releases)",
                    p99,
                    "ms",
                    floor=floor * 1000,
                    note=f"p50 {p50:.1f} ms; mean {statistics.mean(times) * 1000:.1f} ms",
                )
        gateway(admin, Session(port, ca), key_box["key"], args.events, floor_rate(results))
        return 0
    finally:
        if proc is not None:
            proc.stop()
        if bao is not None:
            bao.stop()
        cp.down()


if __name__ == "__main__":
    sys.exit(main())
