"""The foundation against the real API server: CRDs, schema validation, printer
columns, real identities and RBAC, and a Deployment rolled out through kwok."""

from __future__ import annotations

import json
import re
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.kube_support import eventually

from devenv.controlplane import ControlPlane
from stella.engine import kubeio
from stella.engine.environments import desired_status
from stella.policy import requester_shown

DIGEST = "sha256:" + "ab" * 32
G, V = "stella.io", "v1alpha1"


def release_body(
    name: str, image: str = f"127.0.0.1:5000/shop/web@{DIGEST}", **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{G}/{V}",
        "kind": "Release",
        "metadata": {"name": name},
        "spec": {
            "version": "1.0.0",
            "components": [
                {
                    "name": "web",
                    "image": image,
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
            "environments": ["dev"],
        },
    }
    body["spec"].update(spec)
    return body


def create_release(api: client.ApiClient, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    made = client.CustomObjectsApi(api).create_namespaced_custom_object(G, V, ns, "releases", body)
    return cast(dict[str, Any], made)


def rejection(api: client.ApiClient, ns: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as err:
        create_release(api, ns, body)
    assert err.value.status == 422, err.value.body
    return str(json.loads(cast(str, err.value.body))["message"])


def test_crds_are_installed_and_established(kube_admin: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(kube_admin)
    for plural in ("environments", "releases", "approvals", "agents"):
        crd = ext.read_custom_resource_definition(f"{plural}.stella.io")
        assert crd.status is not None and crd.status.conditions is not None
        established = [c for c in crd.status.conditions if c.type == "Established"]
        assert established and established[0].status == "True"


def test_valid_release_is_stored(kube_admin: client.ApiClient, test_namespace: str) -> None:
    made = create_release(kube_admin, test_namespace, release_body("ok"))
    assert made["spec"]["components"][0]["image"].endswith(DIGEST)


def test_api_server_rejects_a_tag_only_image(
    kube_admin: client.ApiClient, test_namespace: str
) -> None:
    msg = rejection(
        kube_admin, test_namespace, release_body("tag", image="127.0.0.1:5000/shop/web:1.0")
    )
    assert "spec.components[0].image" in msg and "sha256" in msg


def test_api_server_rejects_a_malformed_digest(
    kube_admin: client.ApiClient, test_namespace: str
) -> None:
    msg = rejection(kube_admin, test_namespace, release_body("bad", image="r.io/web@sha256:XYZ"))
    assert "spec.components[0].image" in msg


def test_api_server_rejects_an_over_long_name(
    kube_admin: client.ApiClient, test_namespace: str
) -> None:
    body = release_body("long")
    body["spec"]["components"][0]["name"] = "w" * 64
    msg = rejection(kube_admin, test_namespace, body)
    assert "spec.components[0].name" in msg and "63" in msg


def test_api_server_rejects_an_unknown_enum_value(
    kube_admin: client.ApiClient, test_namespace: str
) -> None:
    body = release_body("enum")
    body["spec"]["components"][0]["workload"]["kind"] = "CronJob"
    msg = rejection(kube_admin, test_namespace, body)
    assert "spec.components[0].workload.kind" in msg and "Deployment" in msg


def test_release_spec_is_immutable(kube_admin: client.ApiClient, test_namespace: str) -> None:
    made = create_release(kube_admin, test_namespace, release_body("frozen"))
    made["spec"]["version"] = "2.0.0"
    with pytest.raises(ApiException) as err:
        client.CustomObjectsApi(kube_admin).replace_namespaced_custom_object(
            G, V, test_namespace, "releases", "frozen", made
        )
    assert err.value.status == 422
    assert "immutable" in json.loads(cast(str, err.value.body))["message"]


def test_environment_cel_rules(kube_admin: client.ApiClient) -> None:
    api = client.CustomObjectsApi(kube_admin)
    body = {
        "apiVersion": f"{G}/{V}",
        "kind": "Environment",
        "metadata": {"name": "cel-bad"},
        "spec": {"targets": [{"agentSelector": {"matchLabels": {"x": "y"}}}]},
    }
    with pytest.raises(ApiException) as err:
        api.create_cluster_custom_object(G, V, "environments", body)
    assert "a target names either a namespace" in json.loads(cast(str, err.value.body))["message"]


def column(out: str, name: str, row: str) -> str:
    """One cell of `kubectl get`'s table, by header and the row's NAME (kubectl aligns
    each column at its header's offset)."""
    lines = out.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
    i = lines[0].split().index(name)
    line = next(line for line in lines[1:] if line.split()[:1] == [row])
    end = starts[i + 1] if i + 1 < len(starts) else None
    return line[starts[i] : end].strip()


def test_kubectl_prints_the_printer_columns(
    kube: ControlPlane, kube_admin: client.ApiClient, test_namespace: str
) -> None:
    # The Release as admission stamps it (no admission runs here; the stamp is written as
    # it would be), and the status the operator writes from that stamp.
    body = release_body("cols")
    body["metadata"]["annotations"] = {
        "stella.io/requester": '{"groups":["release-requesters"],"uid":"u-a","username":"alice"}'
    }
    made = create_release(kube_admin, test_namespace, body)
    kubeio.patch_release_status(
        (test_namespace, "cols"), {"requester": requester_shown(made)}, kube_admin
    )
    out = kube.kubectl("admin", "get", "rel", "-n", test_namespace).stdout
    header = out.splitlines()[0].split()
    assert header == ["NAME", "VERSION", "REQUESTER", "PROGRESS", "READY", "AGE"]
    assert "cols" in out and "1.0.0" in out
    assert column(out, "REQUESTER", "cols") == "alice"  # not the stamp's JSON

    api = client.CustomObjectsApi(kube_admin)
    names = [f"{stage}-{test_namespace}" for stage in ("cols", "dev", "qa")]
    graph: dict[str, list[str]] = {names[0]: names[1:], names[1]: [], names[2]: []}
    for name, requires in graph.items():
        env: dict[str, Any] = {
            "apiVersion": f"{G}/{V}",
            "kind": "Environment",
            "metadata": {"name": name},
            "spec": {"requires": requires, "targets": [{"namespace": test_namespace}]},
        }
        api.create_cluster_custom_object(G, V, "environments", env)
    try:
        stored = cast(dict[str, Any], api.get_cluster_custom_object(G, V, "environments", names[0]))
        api.patch_cluster_custom_object_status(
            G, V, "environments", names[0], {"status": desired_status(stored, graph)}
        )
        out = kube.kubectl("admin", "get", "env", *names).stdout
        header = ["NAME", "REQUIRES", "CURRENT", "HALTED", "READY", "REASON", "AGE"]
        assert out.splitlines()[0].split() == header
        # kube-apiserver printed spec.requires as ["dev-...","qa-..."]; .spec.requires[*]
        # would print only the first of them.
        assert column(out, "REQUIRES", names[0]) == f"{names[1]},{names[2]}"
        assert column(out, "REQUIRES", names[1]) == "", out  # requires nothing
    finally:
        for name in names:
            api.delete_cluster_custom_object(G, V, "environments", name)
    cat = kube.kubectl("admin", "get", "stella", "-A").returncode
    assert cat == 0


def test_identities_and_rbac_are_real(
    kube: ControlPlane, kube_as: dict[str, client.ApiClient], test_namespace: str
) -> None:
    # erin (auditors) can list Releases but cannot create one.
    items: Any = client.CustomObjectsApi(kube_as["erin"]).list_namespaced_custom_object(
        G, V, test_namespace, "releases"
    )
    assert items["items"] == []
    with pytest.raises(ApiException) as err:
        create_release(kube_as["erin"], test_namespace, release_body("erin"))
    assert err.value.status == 403
    assert "erin" in json.loads(cast(str, err.value.body))["message"]
    # alice (release-requesters) can; bob (approvers) cannot.
    create_release(kube_as["alice"], test_namespace, release_body("alice"))
    with pytest.raises(ApiException) as err:
        create_release(kube_as["bob"], test_namespace, release_body("bob"))
    assert err.value.status == 403
    who = kube.kubectl("alice", "auth", "whoami", "-o", "json").stdout
    assert json.loads(who)["status"]["userInfo"]["groups"][0] == "release-requesters"


def test_a_deployment_becomes_available_through_kwok(
    kube_admin: client.ApiClient, test_namespace: str
) -> None:
    apps = client.AppsV1Api(kube_admin)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        test_namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=2,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name="web", image=f"r.io/web@{DIGEST}")]
                    ),
                ),
            ),
        ),
    )

    def available() -> bool:
        d = apps.read_namespaced_deployment("web", test_namespace)
        assert d.status is not None and d.metadata is not None
        return bool(
            d.status.available_replicas == 2
            and d.status.observed_generation == d.metadata.generation
        )

    eventually(available, timeout=90, what="Deployment web with 2 available replicas")


def test_a_literal_secret_is_refused_without_being_echoed(kube_admin: client.ApiClient) -> None:
    secret = "hunter2-" + "9f" * 8
    body = {
        "apiVersion": f"{G}/{V}",
        "kind": "Environment",
        "metadata": {"name": "literal-secret"},
        "spec": {"registryCredentials": secret},
    }
    with pytest.raises(ApiException) as err:
        client.CustomObjectsApi(kube_admin).create_cluster_custom_object(G, V, "environments", body)
    assert err.value.status == 422
    message = json.loads(cast(str, err.value.body))["message"]
    assert "vault:<mount>/<path>#<key>" in message
    assert secret not in cast(str, err.value.body)
