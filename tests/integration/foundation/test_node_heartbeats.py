"""The fake nodes heartbeat like kubelets: each holds a Lease in kube-node-lease that kwok
renews well inside the controller-manager's grace period, so the node-lifecycle controller
never declares them NotReady (tests/e2e/test_long_run.py watches that over minutes)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client
from tests.kube_support import eventually

from devenv.controlplane import NODE_MONITOR_GRACE_SECONDS


def _name(meta: client.V1ObjectMeta | None) -> str:
    assert meta is not None and meta.name is not None  # the API server always sets them
    return meta.name


def _renewals(api: client.CoordinationV1Api, nodes: list[str]) -> dict[str, datetime]:
    items: list[Any] = api.list_namespaced_lease("kube-node-lease").items
    leases = {lease.metadata.name: lease.spec for lease in items}
    return {n: leases[n].renew_time for n in nodes if n in leases and leases[n].renew_time}


def test_every_fake_node_holds_a_lease_renewed_well_inside_the_grace_period(
    kube_admin: client.ApiClient,
) -> None:
    nodes = [
        _name(n.metadata)
        for n in client.CoreV1Api(kube_admin).list_node(label_selector="type=kwok").items
    ]
    assert nodes
    coord = client.CoordinationV1Api(kube_admin)
    first = cast(
        dict[str, datetime],
        eventually(
            lambda: (r := _renewals(coord, nodes)) and len(r) == len(nodes) and r,
            timeout=30,
            what="a node Lease for every kwok node",
        ),
    )
    for name in nodes:
        lease = coord.read_namespaced_lease(name, "kube-node-lease")
        assert lease.spec is not None
        assert lease.spec.holder_identity, name
        # The lease outlives a missed renewal or three, and is shorter than the grace period.
        assert lease.spec.lease_duration_seconds is not None
        assert 0 < lease.spec.lease_duration_seconds < NODE_MONITOR_GRACE_SECONDS
    # Renewed again within a quarter of the grace period (kwok renews every duration / 4).
    later = cast(
        dict[str, datetime],
        eventually(
            lambda: (r := _renewals(coord, nodes)) and all(r[n] > first[n] for n in nodes) and r,
            timeout=NODE_MONITOR_GRACE_SECONDS / 4 + 5,
            interval=0.5,
            what="every node Lease renewed",
        ),
    )
    now = datetime.now(UTC)
    assert all((now - later[n]).total_seconds() < NODE_MONITOR_GRACE_SECONDS / 4 for n in nodes)
    for node in client.CoreV1Api(kube_admin).list_node(label_selector="type=kwok").items:
        assert node.status is not None and node.status.conditions is not None
        ready = next(c for c in node.status.conditions if c.type == "Ready")
        assert ready.status == "True", (_name(node.metadata), ready)
