"""Argo CD Applications in a managed namespace take only pinned image overrides: the
chart's application-images.stella.io policy (kustomize images) and
application-helm-images.stella.io (the Helm parameters an Environment names), in the real
kube-apiserver, with Argo CD's
own Application CRD (downloaded from its Go module by hack/build-binaries.sh). No Argo CD
runs here: the API server judges the objects alone."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.kube_support import install_argocd_crd

from devenv.controlplane import ControlPlane
from devenv.webhooks import POLICIES

NAME = "application-images.stella.io"
HELM = "application-helm-images.stella.io"
PINNED = "registry.example.com/shop/web@sha256:" + "ab" * 32


def _policy_docs() -> list[dict[str, Any]]:
    return [
        d
        for d in yaml.safe_load_all(POLICIES.read_text())
        if d and d["metadata"]["name"] in (NAME, HELM)
    ]


def app(name: str, images: list[str], sources: bool = False) -> dict[str, Any]:
    source = {
        "repoURL": "http://127.0.0.1:9418/shop.git",
        "path": "overlays/dev",
        "targetRevision": "main",
        "kustomize": {"images": images},
    }
    spec: dict[str, Any] = {
        "project": "default",
        "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop-dev"},
    }
    spec.update({"sources": [source]} if sources else {"source": source})
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture(scope="module")
def namespaces(kube: ControlPlane, kube_admin: client.ApiClient) -> Iterator[tuple[str, str]]:
    install_argocd_crd(kube)
    kube.kubectl("admin", "apply", "-f", "-", stdin=yaml.safe_dump_all(_policy_docs()))
    core = client.CoreV1Api(kube_admin)
    managed, plain = f"argo-m-{uuid.uuid4().hex[:6]}", f"argo-p-{uuid.uuid4().hex[:6]}"
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=managed, labels={"stella.io/managed": "true"})
        )
    )
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=plain)))
    try:
        yield managed, plain
    finally:
        core.delete_namespace(managed)
        core.delete_namespace(plain)
        kube.kubectl(
            "admin", "delete", "-f", "-", "--ignore-not-found",
            stdin=yaml.safe_dump_all(_policy_docs()), check=False,
        )  # fmt: skip


def create(admin: client.ApiClient, ns: str, body: dict[str, Any]) -> Any:
    return client.CustomObjectsApi(admin).create_namespaced_custom_object(
        "argoproj.io", "v1alpha1", ns, "applications", body
    )


def refused(fn: Any) -> str:
    try:
        fn()
    except ApiException as exc:
        assert exc.status in (403, 422), exc.body
        return str(json.loads(cast(str, exc.body))["message"])
    raise AssertionError("admitted")


def test_unpinned_overrides_are_refused_in_managed_namespaces(
    kube_admin: client.ApiClient, namespaces: tuple[str, str]
) -> None:
    managed, plain = namespaces
    # The API server loads a new policy a moment after it is stored: wait until it bites.
    deadline = time.monotonic() + 30
    while True:
        try:
            create(kube_admin, managed, app(f"probe-{uuid.uuid4().hex[:4]}", ["web:latest"]))
        except ApiException as exc:
            if NAME in str(exc.body):
                break
        if time.monotonic() > deadline:
            raise AssertionError("the application-images policy is not in force")
        time.sleep(0.2)

    msg = refused(lambda: create(kube_admin, managed, app("shop-dev", [PINNED, "api:1.2"])))
    assert "entry api:1.2 is not pinned by digest" in msg
    assert "repo@sha256:<64 hex>" in msg
    refused(lambda: create(kube_admin, managed, app("multi", ["api:1.2"], sources=True)))

    made = create(kube_admin, managed, app("shop-dev", [PINNED, f"api={PINNED}"]))
    assert made["spec"]["source"]["kustomize"]["images"] == [PINNED, f"api={PINNED}"]
    api = client.CustomObjectsApi(kube_admin)
    msg = refused(
        lambda: api.patch_namespaced_custom_object(
            "argoproj.io",
            "v1alpha1",
            managed,
            "applications",
            "shop-dev",
            {"spec": {"source": {"kustomize": {"images": ["registry.example.com/shop/web:2.0"]}}}},
        )
    )
    assert "registry.example.com/shop/web:2.0 is not pinned" in msg

    # Outside managed namespaces the policy does not apply.
    assert create(kube_admin, plain, app("anything", ["web:latest"]))["metadata"]["name"]


def helm_app(name: str, params: dict[str, str]) -> dict[str, Any]:
    body = app(name, [])
    source = body["spec"]["source"]
    del source["kustomize"]
    source.update(
        path="chart", helm={"parameters": [{"name": k, "value": v} for k, v in params.items()]}
    )
    return body


def test_helm_parameters_an_environment_names_must_be_pinned(
    kube_admin: client.ApiClient, namespaces: tuple[str, str]
) -> None:
    managed, _ = namespaces
    api = client.CustomObjectsApi(kube_admin)
    env = f"helm-{uuid.uuid4().hex[:6]}"
    target = {"name": "shop-helm", "namespace": managed, "helmParameters": [
        {"component": "web", "parameter": "web.image"}
    ]}  # fmt: skip
    api.create_cluster_custom_object(
        "stella.io", "v1alpha1", "environments",
        {"apiVersion": "stella.io/v1alpha1", "kind": "Environment", "metadata": {"name": env},
         "spec": {"targets": [{"application": target}]}},
    )  # fmt: skip
    try:
        # The API server sees a new parameter object a moment after it is stored.
        deadline = time.monotonic() + 30
        while True:
            try:
                create(kube_admin, managed, helm_app("shop-helm", {"web.image": "web:latest"}))
            except ApiException as exc:
                if HELM in str(exc.body):
                    msg = str(json.loads(cast(str, exc.body))["message"])
                    break
                raise
            api.delete_namespaced_custom_object(
                "argoproj.io", "v1alpha1", managed, "applications", "shop-helm"
            )
            if time.monotonic() > deadline:
                raise AssertionError("the application-helm-images policy is not in force")
            time.sleep(0.2)
        assert "Helm parameter web.image holds an image for Environment " + env in msg
        assert "repo@sha256:<64 hex>" in msg
        # A parameter no Environment names is the chart's business; the named one pinned.
        made = create(
            kube_admin, managed, helm_app("shop-helm", {"web.image": PINNED, "replicas": "2"})
        )
        assert made["spec"]["source"]["helm"]["parameters"][0]["value"] == PINNED
        unpinned = {"parameters": [{"name": "web.image", "value": "web:2"}]}
        msg = refused(
            lambda: api.patch_namespaced_custom_object(
                "argoproj.io", "v1alpha1", managed, "applications", "shop-helm",
                {"spec": {"source": {"helm": unpinned}}},
            )
        )  # fmt: skip
        assert "Helm parameter web.image" in msg
        # Another Application of the namespace is not this Environment's to check.
        assert create(kube_admin, managed, helm_app("other", {"web.image": "web:latest"}))
    finally:
        api.delete_cluster_custom_object("stella.io", "v1alpha1", "environments", env)
