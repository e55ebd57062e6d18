"""Issue 10, CRD upgrades: Helm never upgrades crds/, so `kubectl apply --server-side -f
charts/stella/crds` does (docs/install.md). On a real API server holding objects stored
under the previous chart's CRDs (0.1.0, every status field of that version filled), the
current CRDs apply, every object stays readable with nothing pruned, and each one —
spec and status — passes the current schema when written afresh (a copy under a new
name, so no ratcheting of unchanged fields hides an invalid one)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.install import previous_chart
from tests.install.conftest import CHART, control_plane

from devenv.controlplane import ControlPlane

DIGEST = "sha256:" + "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
T = "2026-11-28T20:00:00Z"
CONDITION = {
    "type": "Ready",
    "status": "True",
    "reason": "Deployed",
    "message": "deployed",
    "lastTransitionTime": T,
    "observedGeneration": 1,
}
# Objects as 0.1.0 stored them: the spec a user wrote, the status its operator wrote.
STORED: list[dict[str, Any]] = [
    {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": "prod"},
        "spec": {
            "requires": ["staging"],
            "releaseNamespaces": {"matchLabels": {"team": "shop"}},
            "targets": [{"namespace": "shop-prod"}],
            "allowedRegistries": ["registry.example.com"],
            "registryCredentials": "vault:secret/registry/prod#token",
            "approvals": {
                "required": 2,
                "approverGroups": ["release-approvers"],
                "preventSelfApproval": True,
            },
            "freezeWindows": [
                {
                    "name": "weekend",
                    "schedule": "0 18 * * FRI",
                    "duration": "62h",
                    "timeZone": "Europe/Berlin",
                }
            ],
            "rollout": {"timeout": "10m", "rollbackOnFailure": True},
            "requireApprovedDigests": True,
        },
        "status": {
            "observedGeneration": 1,
            "conditions": [CONDITION],
            "currentRelease": "shop/shop-1-4-2",
            "inFlight": "shop/shop-1-4-3",
            "halted": {"reason": "DigestMismatch", "message": "web changed", "since": T},
            "path": ["dev", "staging", "prod"],
            "history": [
                {
                    "release": "shop/shop-1-4-2",
                    "version": "1.4.2",
                    "outcome": "Deployed",
                    "at": T,
                    "attempt": 1,
                    "approvers": ["bob", "carol"],
                    "message": "2/2 available",
                }
            ],
        },
    },
    {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Release",
        "metadata": {"name": "shop-1-4-2", "namespace": "shop"},
        "spec": {
            "version": "1.4.2",
            "components": [
                {
                    "name": "web",
                    "image": f"registry.example.com/shop/web@{DIGEST}",
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
            "environments": ["dev", "staging", "prod"],
        },
        "status": {
            "observedGeneration": 1,
            "conditions": [CONDITION],
            "environments": [
                {
                    "name": "prod",
                    "phase": "Deployed",
                    "reason": "Deployed",
                    "message": "2/2 available",
                    "since": T,
                    "approvals": [
                        {"approver": "bob", "decision": "Approve", "at": T, "approval": "a-1"}
                    ],
                    "deployedAt": T,
                    "attempt": 1,
                    "previousImages": [
                        {
                            "namespace": "shop-prod",
                            "kind": "Deployment",
                            "name": "web",
                            "container": "web",
                            "image": f"registry.example.com/shop/web@{DIGEST}",
                        }
                    ],
                }
            ],
            "summary": "prod=Deployed",
        },
    },
    {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Approval",
        "metadata": {"name": "shop-1-4-2-prod-bob", "namespace": "shop"},
        "spec": {
            "release": "shop-1-4-2",
            "environment": "prod",
            "decision": "Approve",
            "comment": "CAB-1234",
        },
        "status": {
            "observedGeneration": 1,
            "conditions": [CONDITION],
            "counted": True,
            "approver": "bob",
        },
    },
    {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "eu-1"},
        "spec": {
            "capabilities": ["deploy.kubernetes"],
            "labels": {"site": "eu-1"},
            "certificateFingerprint": "ab" * 32,
            "revoked": False,
        },
        "status": {
            "observedGeneration": 1,
            "conditions": [CONDITION],
            "lastHeartbeat": T,
            "state": "Online",
        },
    },
]


@pytest.fixture(scope="module")
def api_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd and kube-apiserver only: CRDs and stored objects need nothing else."""
    with control_plane(tmp_path_factory.mktemp("crd-upgrade"), with_workers=False) as cp:
        yield cp


def resource(obj: dict[str, Any]) -> list[str]:
    plural = {"Environment": "environments", "Release": "releases"}.get(
        obj["kind"], obj["kind"].lower() + "s"
    )
    args = [f"{plural}.stella.io", obj["metadata"]["name"]]
    if "namespace" in obj["metadata"]:
        args += ["-n", obj["metadata"]["namespace"]]
    return args


def kubectl(kube: ControlPlane, *args: str, stdin: str | None = None) -> str:
    out = kube.kubectl("admin", *args, stdin=stdin, check=False)
    assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
    return out.stdout


def get(kube: ControlPlane, obj: dict[str, Any]) -> dict[str, Any]:
    return json.loads(kubectl(kube, "get", *resource(obj), "-o", "json"))  # type: ignore[no-any-return]


def store(kube: ControlPlane, obj: dict[str, Any]) -> None:
    """Create the object, then write its status through the status subresource (as an
    operator does); both validated by whichever CRDs are installed."""
    kubectl(kube, "create", "-f", "-", stdin=json.dumps({**obj, "status": None}))
    stored = get(kube, obj)
    kubectl(
        kube,
        "replace",
        "--subresource=status",
        "-f",
        "-",
        stdin=json.dumps({**stored, "status": obj["status"]}),
    )


def holds(stored: dict[str, Any], written: dict[str, Any]) -> bool:
    """Every spec and status field written is stored with the same value."""

    def within(big: Any, small: Any) -> bool:
        if isinstance(small, dict):
            return isinstance(big, dict) and all(
                k in big and within(big[k], v) for k, v in small.items()
            )
        if isinstance(small, list):
            return (
                isinstance(big, list)
                and len(big) == len(small)
                and all(within(b, s) for b, s in zip(big, small, strict=True))
            )
        return bool(big == small)

    return within(stored["spec"], written["spec"]) and within(stored["status"], written["status"])


def establish(kube: ControlPlane, crds: Path) -> None:
    kubectl(kube, "apply", "--server-side", "--force-conflicts", "-f", str(crds))
    names = [yaml.safe_load(p.read_text())["metadata"]["name"] for p in crds.glob("*.yaml")]
    kubectl(
        kube,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *[f"crd/{n}" for n in names],
    )


def test_current_crds_apply_over_the_previous_ones_and_stored_objects_stay_valid(
    api_only: ControlPlane, tmp_path: Path
) -> None:
    kube = api_only
    old = previous_chart.extract(tmp_path / "previous")
    establish(kube, old / "charts" / "stella" / "crds")
    kubectl(kube, "create", "namespace", "shop")
    for obj in STORED:
        store(kube, obj)
    before = {obj["metadata"]["name"]: get(kube, obj) for obj in STORED}
    for obj in STORED:  # every field we wrote was kept (the old schema added its defaults)
        assert holds(before[obj["metadata"]["name"]], obj), obj["metadata"]["name"]

    establish(kube, CHART / "crds")  # what docs/install.md tells a user to run
    for obj in STORED:
        name = obj["metadata"]["name"]
        was, after = before[name], get(kube, obj)
        # Readable, untouched (same resourceVersion), nothing pruned or changed on read; a
        # field the current schema added with a default reads as that default (the API
        # server defaults stored objects on read), which is how a field is added safely.
        assert after["metadata"]["resourceVersion"] == was["metadata"]["resourceVersion"]
        assert holds(after, was), name
        # Valid under the current schema as a whole: the stored spec and status written
        # anew (the current schema may add defaults of its own, never drop a field).
        fresh = {**copy.deepcopy(obj), "spec": was["spec"], "status": was["status"]}
        fresh["metadata"] = {**obj["metadata"], "name": f"{name}-copy"}
        store(kube, fresh)
        assert holds(get(kube, fresh), fresh), name
    # The kind 0.1.0 did not have is served too.
    kubectl(kube, "get", "actions.stella.io")
