"""The chart's HA shape: every replica runs with leader election on one Lease, whose
create/get/update the operator holds (get/update by name only); more than one replica
adds anti-affinity and a PodDisruptionBudget, and refuses a per-pod signing key."""

from __future__ import annotations

from typing import Any

import yaml
from tests.unit.chart.test_chart import CA, DIGEST, LOG, by_kind, render

BASE = (
    f"image.digest={DIGEST}",
    LOG,
    "webhook.certManager.enabled=false",
    f"webhook.caBundle={CA}",
)


def _docs(*sets: str) -> list[dict[str, Any]]:
    out = render(*BASE, *sets)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _env(docs: list[dict[str, Any]]) -> dict[str, str]:
    dep = by_kind(docs, "Deployment", "stella-operator")
    return {
        e["name"]: e.get("value", "")
        for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]
    }


def test_every_install_elects_a_leader_on_one_lease() -> None:
    docs = _docs()
    env = _env(docs)
    assert env["STELLA_LEADER_ELECTION"] == "stella-engine"
    assert env["STELLA_LEASE_SECONDS"] == "15"
    assert "STELLA_PEERING" not in env
    role = by_kind(docs, "Role", "stella-operator-leader-election")
    assert role["metadata"]["namespace"] == "stella-system"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["stella-engine"],
            "verbs": ["get", "update"],
        },
    ]
    binding = by_kind(docs, "RoleBinding", "stella-operator-leader-election")
    assert binding["subjects"][0]["name"] == "stella-operator"
    # One operator replica: no disruption budget that would block every drain (admission's
    # two replicas have their own, tests/unit/chart/test_chart.py).
    assert not [
        d
        for d in docs
        if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == "stella-operator"
    ]


def test_two_replicas_spread_and_keep_one_through_a_drain() -> None:
    docs = _docs("replicas=2", "leaderElection.leaseSeconds=8")
    dep = by_kind(docs, "Deployment", "stella-operator")
    assert dep["spec"]["replicas"] == 2
    spec = dep["spec"]["template"]["spec"]
    term = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert _env(docs)["STELLA_LEASE_SECONDS"] == "8"
    pdb = by_kind(docs, "PodDisruptionBudget", "stella-operator")
    assert pdb["spec"]["minAvailable"] == 1


def test_replicas_with_a_local_signing_key_are_refused() -> None:
    out = render(*BASE, "replicas=2", "evidence.signer=local")
    assert out.returncode != 0
    assert "replicas > 1 needs evidence.signer: vault" in out.stderr


def test_out_of_range_replicas_and_lease_are_refused() -> None:
    assert render(*BASE, "replicas=9").returncode != 0
    out = render(*BASE, "leaderElection.leaseSeconds=1")
    assert out.returncode != 0 and "leaseSeconds" in out.stderr
    out = render(*BASE, "peering=stella")
    assert out.returncode != 0 and "peering" in out.stderr
