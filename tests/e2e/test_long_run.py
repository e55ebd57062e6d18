"""A long run: thirty promotions into dev spread over four minutes — several of the fake
nodes' heartbeat periods — with the operator restarted halfway. Every rollout must become
available, and no node may turn NotReady at any moment of the run.

The local control plane once failed this: kwok held no node lease and heartbeat every
600 s, so the node-lifecycle controller declared every node NotReady about every 55 s,
marked the pods on them not ready for good, and rollouts stalled at "2/2 updated, 0/2
available" until they rolled back (hack/devenv/kwok.yaml says how that was fixed)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client, watch
from tests.e2e.conftest import running_operator
from tests.e2e.shop import Shop
from tests.kube_support import eventually

from devenv.controlplane import ControlPlane

ROUNDS = 30
SPREAD_SECONDS = 240.0  # kwok used to flap every ~55 s: this spans four of those periods
RESTART_AT = ROUNDS // 2
TERMINAL = {"Deployed", "Failed", "Blocked", "Halted", "Rejected", "Superseded"}
# What kube-controller-manager's node-lifecycle controller logs when a node misses its
# heartbeats ("all Nodes are not-Ready. Entering master disruption mode", "Node ... is
# NotReady", "Marking all pods on node not ready"): none of it may appear during the run.
KCM_NOT_READY = ("not-Ready", "NotReady", "master disruption", "pods on node not ready")


@dataclass
class NodeWatch:
    """Every Node event during the run in which Ready is not True. A flap lasts only until
    kwok re-initialises the node (and kwok rewrites lastTransitionTime), so polling can miss
    it; a watch sees each update."""

    api: client.ApiClient
    seen: list[tuple[float, str, str, str]] = field(default_factory=list)
    events: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> NodeWatch:
        core = client.CoreV1Api(self.api)
        rv = _resource_version(core)
        self._thread = threading.Thread(target=self._run, args=(core, rv), daemon=True)
        self._thread.start()
        return self

    def _run(self, core: client.CoreV1Api, rv: str | None) -> None:
        while not self._stop.is_set():
            w = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                stream = w.stream(  # type: ignore[no-untyped-call]
                    core.list_node, resource_version=rv, timeout_seconds=5
                )
                for ev in stream:
                    node = ev["object"]
                    rv = node.metadata.resource_version
                    self.events += 1
                    for c in node.status.conditions or []:
                        if c.type == "Ready" and c.status != "True":
                            self.seen.append((time.time(), node.metadata.name, c.status, c.reason))
                    if self._stop.is_set():
                        break
            except client.exceptions.ApiException as exc:
                if exc.status == 410:  # resourceVersion too old: start from now
                    rv = _resource_version(core)
            finally:
                w.stop()  # type: ignore[no-untyped-call]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)


def _resource_version(core: client.CoreV1Api) -> str | None:
    listed = core.list_node()
    assert listed.metadata is not None
    return listed.metadata.resource_version


def _settled(shop: Shop, name: str) -> dict[str, Any]:
    return cast(
        dict[str, Any],
        eventually(
            lambda: (p := shop.progress(name, "dev")) and p.get("phase") in TERMINAL and p,
            timeout=150,
            interval=0.5,
            what=f"{name} settled in dev",
        ),
    )


@pytest.mark.timeout(480)
def test_thirty_promotions_over_four_minutes_no_node_ever_not_ready(
    kube: ControlPlane, kube_admin: client.ApiClient, shop: Shop, tmp_path: Path, registry: Any
) -> None:
    kcm_log = kube.state / "logs" / "kube-controller-manager.log"
    kcm_offset = kcm_log.stat().st_size
    nodes = NodeWatch(kube_admin).start()
    apps, core = client.AppsV1Api(kube_admin), client.CoreV1Api(kube_admin)
    durations: list[float] = []
    try:
        with running_operator(kube, tmp_path, {"STELLA_INSECURE_REGISTRIES": registry.host}) as op:
            # The operator first: it writes the managed namespace's approved-digests
            # parameter, without which the API server admits no workload there. A rollout
            # timeout long enough that only a stalled rollout (pods never ready) fails.
            shop.environment("dev", rollout={"timeout": "90s", "rollbackOnFailure": True})
            start = time.monotonic()
            for i in range(ROUNDS):
                due = start + i * SPREAD_SECONDS / (ROUNDS - 1)
                time.sleep(max(0.0, due - time.monotonic()))
                if i == RESTART_AT:
                    op.proc.stop()
                    op.restart()
                name = f"long-{i:02d}"
                image = shop.image(f"9.{i}")
                t0 = time.monotonic()
                shop.release(name, image, ["dev"])
                p = _settled(shop, name)
                durations.append(time.monotonic() - t0)
                assert p["phase"] == "Deployed", f"round {i}: {p}"
                d = apps.read_namespaced_deployment("web", shop.target_ns("dev"))
                assert d.spec is not None and d.spec.template.spec is not None
                assert d.status is not None
                assert d.spec.template.spec.containers[0].image == image
                assert d.status.available_replicas == 2, f"round {i}: {d.status}"
        elapsed = time.monotonic() - start
    finally:
        nodes.stop()
    kcm_lines = [
        line
        for line in kcm_log.read_text(errors="replace")[kcm_offset:].splitlines()
        if any(s in line for s in KCM_NOT_READY)
    ]
    print(
        f"\n{ROUNDS} promotions in {elapsed:.0f}s; each {min(durations):.1f}-"
        f"{max(durations):.1f}s (mean {sum(durations) / len(durations):.1f}s); "
        f"{nodes.events} node updates watched"
    )
    assert elapsed >= SPREAD_SECONDS
    assert nodes.events > 0, "the node watch saw no heartbeat at all"
    assert nodes.seen == [], f"nodes turned NotReady during the run: {nodes.seen[:10]}"
    assert kcm_lines == [], "controller-manager saw nodes not ready:\n" + "\n".join(kcm_lines[:10])
    # Nothing was left not ready behind a flap: every pod of the last rollout is Ready.
    pods: list[Any] = core.list_namespaced_pod(
        shop.target_ns("dev"), label_selector="app=web"
    ).items
    ready = [
        p.metadata.name
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]
    assert len(ready) == 2, [(p.metadata.name, p.status.conditions) for p in pods]
