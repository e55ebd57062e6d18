"""`stella` as a subprocess, as people run it: against an address where nothing listens
(one line, exit 3, no traceback), and against the real local control plane (-o json in
path order; a misspelled environment refused with exit 2 and nothing created)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devenv.controlplane import ControlPlane

STELLA = str(Path(sys.executable).parent / "stella")
G, V = "stella.io", "v1alpha1"
DIGEST = "sha256:" + "cd" * 32


def stella(kubeconfig: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run(
        [STELLA, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


# --- nothing listening --------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def unreachable_kubeconfig(tmp_path: Path) -> Path:
    port = closed_port()
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "gone",
                        "cluster": {
                            "server": f"https://127.0.0.1:{port}",
                            "insecure-skip-tls-verify": True,
                        },
                    }
                ],
                "users": [{"name": "alice", "user": {"token": "t"}}],
                "contexts": [{"name": "alice", "context": {"cluster": "gone", "user": "alice"}}],
                "current-context": "alice",
            }
        )
    )
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "shop-1-4-2"],
        ["status", "-n", "shop"],
        ["env", "list"],
        ["env", "list", "-o", "json"],
        ["promote", "shop/shop-1-4-2", "prod"],
        ["approve", "shop/shop-1-4-2", "prod"],
        ["env", "clear", "prod", "--reason", "INC-1"],
        ["rollback", "prod"],
        ["action", "list"],
    ],
)
def test_an_unreachable_api_server_is_one_line_and_exit_3(
    unreachable_kubeconfig: Path, argv: list[str]
) -> None:
    res = stella(unreachable_kubeconfig, *argv)
    assert res.returncode == 3, res.stderr
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(
        "error: cannot reach the Kubernetes API server at https://127.0.0.1:"
    )
    assert "connection refused" in lines[0] and "--context/KUBECONFIG" in lines[0]
    assert "Traceback" not in res.stderr and "MaxRetryError" not in res.stderr


# --- the real API server ------------------------------------------------------------------


@pytest.fixture
def path_of_three(kube_admin: client.ApiClient) -> Iterator[list[str]]:
    """Three Environments (uniquely named; cluster-scoped objects outlive a test):
    dev <- staging <- prod, prod promoting by hand; created in reverse order."""
    api = client.CustomObjectsApi(kube_admin)
    tag = uuid.uuid4().hex[:6]
    dev, staging, prod = f"dev-{tag}", f"staging-{tag}", f"prod-{tag}"
    specs = [
        (prod, {"requires": [staging], "autoPromote": False}),
        (staging, {"requires": [dev]}),
        (dev, {}),
    ]
    for name, spec in specs:
        api.create_cluster_custom_object(
            G,
            V,
            "environments",
            {
                "apiVersion": f"{G}/{V}",
                "kind": "Environment",
                "metadata": {"name": name},
                "spec": spec,
            },
        )
    yield [dev, staging, prod]
    for name, _ in specs:
        try:
            api.delete_cluster_custom_object(G, V, "environments", name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def actions(api: client.ApiClient) -> list[dict[str, Any]]:
    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + 30
    while True:  # the Action CRD may still be getting established on a fresh control plane
        try:
            listed = cast(dict[str, Any], custom.list_cluster_custom_object(G, V, "actions"))
            return list(listed["items"])
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_env_list_json_is_in_path_order(kube: ControlPlane, path_of_three: list[str]) -> None:
    res = stella(kube.kubeconfig_for("alice"), "env", "list", "-o", "json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["kind"] == "List"
    names = [e["metadata"]["name"] for e in doc["items"]]
    assert [n for n in names if n in path_of_three] == path_of_three
    table = stella(kube.kubeconfig_for("alice"), "env", "list")
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    ours = [r for r in rows if r[0] in path_of_three]
    assert [r[0] for r in ours] == path_of_three
    assert ours[2][2] == "manual" and ours[1][2] == "auto"


def test_promote_of_a_misspelled_environment_is_refused_and_creates_nothing(
    kube: ControlPlane, kube_admin: client.ApiClient, test_namespace: str, path_of_three: list[str]
) -> None:
    _, staging, prod = path_of_three
    client.CustomObjectsApi(kube_admin).create_namespaced_custom_object(
        G,
        V,
        test_namespace,
        "releases",
        {
            "apiVersion": f"{G}/{V}",
            "kind": "Release",
            "metadata": {"name": "shop-1-4-2"},
            "spec": {
                "version": "1.4.2",
                "components": [
                    {
                        "name": "web",
                        "image": f"127.0.0.1:5000/shop/web@{DIGEST}",
                        "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                    }
                ],
                "environments": path_of_three,
            },
        },
    )
    before = actions(kube_admin)
    typo = prod[:-1] + prod[-1] * 2  # prod-abc123 -> prod-abc1233
    res = stella(kube.kubeconfig_for("admin"), "promote", f"{test_namespace}/shop-1-4-2", typo)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert lines[0].startswith(f"error: no Environment '{typo}' (did you mean '{prod}'?)")
    assert all(name in lines[0] for name in path_of_three)
    assert actions(kube_admin) == before

    # an Environment that promotes on its own: nothing to promote, nothing created
    res = stella(kube.kubeconfig_for("admin"), "promote", f"{test_namespace}/shop-1-4-2", staging)
    assert res.returncode == 1
    assert res.stderr.startswith(f"error: {staging} promotes automatically; nothing to promote")
    assert actions(kube_admin) == before

    # the Release in a namespace it is not in: says where it looked
    res = stella(kube.kubeconfig_for("admin"), "status", "shop-1-4-2")
    assert res.returncode == 1
    assert res.stderr == (
        "error: Release shop-1-4-2 not found in namespace default (your kubeconfig context "
        "sets none); use NS/NAME or -n\n"
    )
    res = stella(
        kube.kubeconfig_for("admin"), "status", f"{test_namespace}/shop-1-4-2", "-o", "json"
    )
    assert res.returncode == 0 and json.loads(res.stdout)["spec"]["environments"] == path_of_three


def test_promote_into_a_manual_environment_creates_one_action_the_schema_accepts(
    kube: ControlPlane, kube_admin: client.ApiClient, test_namespace: str, path_of_three: list[str]
) -> None:
    """No operator runs in this tier: the Action stays Pending, so --wait times out (exit 1)."""
    prod = path_of_three[2]
    client.CustomObjectsApi(kube_admin).create_namespaced_custom_object(
        G,
        V,
        test_namespace,
        "releases",
        {
            "apiVersion": f"{G}/{V}",
            "kind": "Release",
            "metadata": {"name": "shop-2"},
            "spec": {
                "version": "2.0.0",
                "components": [
                    {
                        "name": "web",
                        "image": f"127.0.0.1:5000/shop/web@{DIGEST}",
                        "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                    }
                ],
                "environments": path_of_three,
            },
        },
    )
    before = {a["metadata"]["name"] for a in actions(kube_admin)}
    res = stella(
        kube.kubeconfig_for("admin"),
        "promote",
        f"{test_namespace}/shop-2",
        prod,
        "--reason",
        "CAB-7",
        "--wait",
        "--timeout",
        "1",
    )
    made = [a for a in actions(kube_admin) if a["metadata"]["name"] not in before]
    try:
        assert len(made) == 1, res.stdout + res.stderr
        action = made[0]
        assert action["metadata"]["name"].startswith(f"promote-{prod}-")
        assert action["spec"] == {
            "action": "Promote",
            "environment": prod,
            "release": f"{test_namespace}/shop-2",
            "reason": "CAB-7",
        }
        assert res.stdout.startswith(f"Action {action['metadata']['name']} created: promote")
        assert res.returncode == 1 and "still Pending after 1s" in res.stderr
    finally:
        for a in made:
            client.CustomObjectsApi(kube_admin).delete_cluster_custom_object(
                G, V, "actions", a["metadata"]["name"]
            )
