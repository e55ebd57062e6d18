"""Issue 10, HA: two operator replicas behind one webhook address. The one holding the
Lease runs the engine, the other stands by; both serve admission from synced views. The
active replica is killed in the middle of a rollout: the standby takes over, finishes the
promotion exactly once, and admission keeps answering throughout — never from an unsynced
view.

The API server reaches the replicas through a TCP proxy on loopback that stands in for the
chart's Service: it forwards to replicas whose /readyz answers 200 (as an EndpointSlice
lists only ready Pods), checked every 200 ms.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.e2e.conftest import OperatorProcess, start_operator
from tests.e2e.loopback_proxy import LoopbackProxy
from tests.e2e.shop import G, Shop, V
from tests.e2e.test_actions_e2e import packets
from tests.kube_support import eventually

from devenv.controlplane import ControlPlane
from devenv.webhooks import make_serving_cert, register, unregister

LEASE_SECONDS = 6


class ReadyProxy(LoopbackProxy):
    """Forward TCP connections to a ready backend (round robin)."""

    def __init__(self, backends: list[OperatorProcess]) -> None:
        self.backends = backends
        self.ready: list[OperatorProcess] = []
        self._next = 0
        super().__init__()
        threading.Thread(target=self._probe, daemon=True).start()

    def _probe(self) -> None:
        while not self._stop.is_set():
            self.ready = [b for b in self.backends if _ready(b)]
            time.sleep(0.2)

    def _connected(self, conn: socket.socket) -> None:
        ready = list(self.ready)
        if not ready:
            conn.close()
            return
        backend = ready[self._next % len(ready)]
        self._next += 1
        try:
            upstream = socket.create_connection(("127.0.0.1", backend.hook_port), timeout=2)
        except OSError:
            conn.close()
            return
        for a, b in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    for s in (src, dst):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


def _ready(op: OperatorProcess) -> bool:
    try:
        with urllib.request.urlopen(f"{op.url}/readyz", timeout=0.5) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _generation(apps: client.AppsV1Api, namespace: str) -> int | None:
    meta = apps.read_namespaced_deployment("web", namespace).metadata
    assert meta is not None
    return meta.generation


def _holder(admin: client.ApiClient) -> str:
    lease = client.CoordinationV1Api(admin).read_namespaced_lease("stella-engine", "stella-system")
    assert lease.spec is not None
    return str(lease.spec.holder_identity or "")


def _identity(op: OperatorProcess) -> str:
    found = re.search(r"standing by for lease \S+ as (\S+)", op.logs())
    assert found, "no lease identity in the log"
    return found.group(1)


class AdmissionProbe:
    """Asks admission a question every 100 ms through the API server (a dry-run Release
    CREATE by alice, which every replica must answer from its view) and keeps each
    answer: 'admitted', or the refusal's message."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.answers: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        api = client.CustomObjectsApi(self.shop.users["alice"])
        body = {
            "apiVersion": f"{G}/{V}",
            "kind": "Release",
            "metadata": {"generateName": "probe-"},
            "spec": {
                "version": "1.0.0",
                "environments": [self.shop.env_name("dev")],
                "components": [
                    {
                        "name": "web",
                        "image": self.shop.image("9.9"),
                        "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                    }
                ],
            },
        }
        while not self._stop.is_set():
            try:
                api.create_namespaced_custom_object(
                    G, V, self.shop.release_ns, "releases", body, dry_run="All"
                )
                answer = "admitted"
            except client.exceptions.ApiException as exc:
                answer = f"{exc.status}: {exc.body}"
            self.answers.append((time.monotonic(), answer))
            time.sleep(0.1)


@pytest.fixture
def replicas(
    kube: ControlPlane, tmp_path: Path, registry: Any
) -> Iterator[tuple[OperatorProcess, OperatorProcess, ReadyProxy]]:
    ca, crt, key = make_serving_cert(tmp_path / "pki")
    env = {
        "STELLA_INSECURE_REGISTRIES": registry.host,
        "STELLA_LEADER_ELECTION": "stella-engine",
        "STELLA_LEASE_SECONDS": str(LEASE_SECONDS),
        # One signing key and one evidence log for both (the chart: Vault transit and
        # PostgreSQL); only the Lease holder writes.
        "STELLA_STATE_DIR": str(tmp_path / "state"),
    }
    started: list[OperatorProcess] = []
    proxy = None
    try:
        for name in ("a", "b"):
            started.append(
                start_operator(
                    kube, tmp_path / name, env, serving=(ca, crt, key), register_hooks=False
                )
            )
            if name == "a":
                # a holds the Lease before b exists (so the test knows whom to kill).
                eventually(lambda: "holding lease" in started[0].logs(), what="a leads")
        proxy = ReadyProxy(started)
        register(kube, ca, proxy.port)
        yield started[0], started[1], proxy
    finally:
        for op in started:
            op.proc.stop()
        if proxy is not None:
            proxy.close()
        unregister(kube)


def test_the_standby_takes_over_mid_rollout_and_finishes_exactly_once(
    replicas: tuple[OperatorProcess, OperatorProcess, ReadyProxy],
    shop: Shop,
    kube_admin: client.ApiClient,
) -> None:
    a, b, proxy = replicas
    # Both replicas are ready (synced views, webhooks answering); only a runs the engine.
    eventually(lambda: len(proxy.ready) == 2, what="both replicas ready")
    assert "standing by for lease" in b.logs()
    assert "holding lease" not in b.logs()
    assert _holder(kube_admin) == _identity(a)

    # A rollout that cannot finish until a node carries this label.
    label = f"stella-test/ha-{shop.prefix}"
    env = shop.environment(
        "dev", rollout={"timeout": "5m"}, node_selector={label: "go"}, replicas=1
    )
    shop.release("rel-ha", shop.image("10.0"), ["dev"])
    shop.wait_phase("rel-ha", "dev", "Deploying")
    apps = client.AppsV1Api(kube_admin)
    target = shop.target_ns("dev")
    eventually(lambda: shop.deployed_image("dev") == shop.image("10.0"), what="template patched")
    generation = _generation(apps, target)

    probe = AdmissionProbe(shop)
    time.sleep(1.0)
    killed = time.monotonic()
    os.killpg(a.proc.pid, signal.SIGKILL)
    a.proc.kill()
    eventually(lambda: "holding lease" in b.logs(), timeout=6 * LEASE_SECONDS, what="b leads")
    took_over = time.monotonic()
    first_node = client.CoreV1Api(kube_admin).list_node().items[0].metadata
    assert first_node is not None and first_node.name is not None
    node = first_node.name
    client.CoreV1Api(kube_admin).patch_node(node, {"metadata": {"labels": {label: "go"}}})
    try:
        shop.wait_phase("rel-ha", "dev", "Deployed", timeout=120)
        deployed = time.monotonic()
        time.sleep(2.0)
    finally:
        probe.stop()
        client.CoreV1Api(kube_admin).patch_node(node, {"metadata": {"labels": {label: None}}})

    # Exactly once: one template change, one authorization, one outcome.
    assert _generation(apps, target) == generation
    assert shop.deployed_image("dev") == shop.image("10.0")
    mine = [p for p in packets(kube_admin, env) if p.get("release", {}).get("name") == "rel-ha"]
    kinds = [p["kind"] for p in mine]
    assert kinds.count("PromotionAuthorized") == 1, kinds
    assert kinds.count("PromotionDeployed") == 1, kinds
    assert _holder(kube_admin) == _identity(b)

    # Admission never answered from an unsynced view, and it kept answering.
    answers = probe.answers
    assert answers, "the probe asked nothing"
    assert not [t for t, ans in answers if "not-synced" in ans or "retry in a few" in ans]
    after = [ans for t, ans in answers if t > killed + 1.0]
    assert after and all(ans == "admitted" for ans in after), after[:5]
    failed = [ans for t, ans in answers if ans != "admitted"]
    print(
        f"\nfailover: lease taken {took_over - killed:.1f}s after the kill "
        f"(lease {LEASE_SECONDS}s); Deployed {deployed - killed:.1f}s after the kill; "
        f"admission: {len(answers)} answers, {len(failed)} failed (connections cut by the kill)"
    )
