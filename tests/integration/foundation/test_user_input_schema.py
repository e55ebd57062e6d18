"""What the docs tell people to write, the API server accepts: the samples apply as they
are, and a freeze window time without an offset (read in timeZone) passes the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client

from devenv.controlplane import ControlPlane

ROOT = Path(__file__).resolve().parents[3]


def _name(meta: client.V1ObjectMeta | None) -> str | None:
    assert meta is not None  # the API server always sets it
    return meta.name


def test_the_samples_apply(kube: ControlPlane, kube_admin: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_admin)
    names = {_name(n.metadata) for n in core.list_namespace().items}
    if "shop" not in names:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="shop")))
    done = kube.kubectl(
        "admin", "apply", "--dry-run=server", "-f", str(ROOT / "samples"), check=False
    )
    assert done.returncode == 0, done.stderr
    assert "generate name" not in done.stderr
    assert "approval.stella.io/shop-1-4-2-staging-bob created (server dry run)" in done.stdout


def test_a_freeze_window_in_local_time_is_accepted(kube_admin: client.ApiClient) -> None:
    body = {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": "inventory-freeze"},
        "spec": {
            "freezeWindows": [
                {
                    "name": "inventory",
                    "start": "2025-01-31T18:00:00",
                    "end": "2025-02-03T06:00:00+01:00",
                    "timeZone": "Europe/Berlin",
                }
            ]
        },
    }
    created: Any = client.CustomObjectsApi(kube_admin).create_cluster_custom_object(
        "stella.io", "v1alpha1", "environments", body, dry_run="All"
    )
    window = created["spec"]["freezeWindows"][0]
    assert window["start"] == "2025-01-31T18:00:00"  # stored as written: wall-clock time
