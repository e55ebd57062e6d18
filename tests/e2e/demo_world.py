"""What `make demo` leaves behind (docs/guides/README.md), built on the test control plane
for the tests that follow the docs as people would: Environments dev -> staging -> prod
(0, 1 and 2 approvals from release-approvers), the namespace `shop`, a Deployment `web` in
shop-dev, shop-staging and shop-prod, Release shop-1-1 deployed everywhere, and dave's
shop-1-1-hotfix waiting for an approval in staging.

The names are the docs' own (cluster-scoped Environments dev, staging and prod), so one
world at a time: it is torn down, and waited for, before the next one starts. The operator
gets a namespace of its own (with stella-system's Roles, as tests/e2e/test_evidence_e2e.py
does), so `stella evidence verify` checks exactly what this operator wrote.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from tests.e2e.conftest import OperatorProcess, running_operator
from tests.kube_support import eventually, wait_for_digest_params, wait_for_release_params

from devenv.controlplane import ControlPlane
from devenv.services import Registry, push_image

G, V = "stella.io", "v1alpha1"
STAGES = ("dev", "staging", "prod")
HOME_NS = "stella-system"


@dataclass
class DemoWorld:
    kube: ControlPlane
    admin: client.ApiClient
    users: dict[str, client.ApiClient]
    registry: Registry
    operator: OperatorProcess
    namespace: str  # the operator's (where its evidence ConfigMaps are)
    v1: str  # shop/web 1.0, pinned
    v2: str  # shop/web 1.1, pinned

    @property
    def custom(self) -> Any:  # kubernetes 37 types its reads as object; tests index them
        return client.CustomObjectsApi(self.admin)

    def release(self, name: str) -> dict[str, Any]:
        return cast(
            dict[str, Any], self.custom.get_namespaced_custom_object(G, V, "shop", "releases", name)
        )

    def phase(self, release: str, env: str) -> str | None:
        with contextlib.suppress(client.exceptions.ApiException):
            for e in (self.release(release).get("status") or {}).get("environments") or []:
                if e.get("name") == env:
                    return str(e.get("phase"))
        return None

    def progress(self, release: str, env: str) -> dict[str, Any]:
        for e in (self.release(release).get("status") or {}).get("environments") or []:
            if e.get("name") == env:
                return dict(e)
        return {}

    def wait_phase(self, release: str, env: str, phase: str, timeout: float = 120) -> None:
        eventually(
            lambda: self.phase(release, env) == phase,
            timeout=timeout,
            what=f"{release} {phase} in {env} (operator log: {self.operator.proc.log})",
        )

    def environment(self, name: str) -> dict[str, Any]:
        return cast(
            dict[str, Any], self.custom.get_cluster_custom_object(G, V, "environments", name)
        )

    def env_status(self, name: str) -> dict[str, Any]:
        return self.environment(name).get("status") or {}

    def wait_quiet(self, timeout: float = 120) -> None:
        """Nothing deploying anywhere (evidence is written and settled)."""
        eventually(
            lambda: not any(self.env_status(s).get("inFlight") for s in STAGES),
            timeout=timeout,
            what="no Environment deploying",
        )

    def halt(self, env: str) -> None:
        """What the engine writes on a digest mismatch (tests/e2e/test_digests_e2e.py drives
        the real one); here the point is the person who lifts it."""
        self.custom.patch_cluster_custom_object_status(
            G,
            V,
            "environments",
            env,
            {
                "status": {
                    "halted": {
                        "reason": "DigestMismatch",
                        "message": "the registry served other bytes for a pinned digest",
                        # a second ago: a person's clear-halt Action is created after it
                        # (both have one-second resolution; a clear in the very second of
                        # the halt is refused as older than the halt, HaltIsNewer)
                        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1)),
                    }
                }
            },
        )

    def deployed_image(self, env: str) -> str:
        d = client.AppsV1Api(self.admin).read_namespaced_deployment("web", f"shop-{env}")
        assert d.spec is not None and d.spec.template.spec is not None
        return str(d.spec.template.spec.containers[0].image)


def operator_namespace(admin: client.ApiClient, prefix: str = "stella-docs") -> str:
    """A fresh operator namespace with stella-system's RBAC (what the chart installs)."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    for role in rbac.list_namespaced_role(HOME_NS).items:
        assert role.metadata is not None
        rbac.create_namespaced_role(
            name,
            client.V1Role(metadata=client.V1ObjectMeta(name=role.metadata.name), rules=role.rules),
        )
    for rb in rbac.list_namespaced_role_binding(HOME_NS).items:
        assert rb.metadata is not None
        rbac.create_namespaced_role_binding(
            name,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name=rb.metadata.name),
                role_ref=rb.role_ref,
                subjects=rb.subjects,
            ),
        )
    return name


def _release_body(name: str, image: str, envs: list[str], version: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Release",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "version": version,
            "environments": envs,
            "components": [
                {
                    "name": "web",
                    "image": image,
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
        },
    }


def _approve(users: dict[str, client.ApiClient], who: str, release: str, env: str) -> None:
    client.CustomObjectsApi(users[who]).create_namespaced_custom_object(
        G,
        V,
        "shop",
        "approvals",
        {
            "apiVersion": f"{G}/{V}",
            "kind": "Approval",
            "metadata": {"generateName": f"{release}-{env}-"},
            "spec": {"release": release, "environment": env, "decision": "Approve",
                     "comment": "CAB-1"},
        },
    )  # fmt: skip


def _gone(fn: Any) -> bool:
    try:
        fn()
    except client.exceptions.ApiException as exc:
        return bool(exc.status == 404)
    return False


def _teardown(admin: client.ApiClient) -> None:
    core, custom = client.CoreV1Api(admin), cast(Any, client.CustomObjectsApi(admin))
    for act in custom.list_cluster_custom_object(G, V, "actions").get("items") or []:
        if (act.get("spec") or {}).get("environment") in STAGES:
            with contextlib.suppress(client.exceptions.ApiException):
                custom.delete_cluster_custom_object(G, V, "actions", act["metadata"]["name"])
    for name in ("shop", *(f"shop-{s}" for s in STAGES)):
        with contextlib.suppress(client.exceptions.ApiException):
            core.delete_namespace(name)
    for stage in STAGES:
        with contextlib.suppress(client.exceptions.ApiException):
            custom.delete_cluster_custom_object(G, V, "environments", stage)
    for name in ("shop", *(f"shop-{s}" for s in STAGES)):
        eventually(
            lambda n=name: _gone(lambda: core.read_namespace(n)),  # type: ignore[misc]
            timeout=180,
            interval=1,
            what=f"namespace {name} deleted",
        )
    for stage in STAGES:
        eventually(
            lambda s=stage: _gone(  # type: ignore[misc]
                lambda: custom.get_cluster_custom_object(G, V, "environments", s)
            ),
            timeout=60,
            interval=1,
            what=f"Environment {stage} deleted",
        )


@contextmanager
def demo_world(
    kube: ControlPlane,
    admin: client.ApiClient,
    users: dict[str, client.ApiClient],
    registry: Registry,
    workdir: Path,
) -> Iterator[DemoWorld]:
    """`make demo`'s world, with its operator running; torn down afterwards."""
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    custom = client.CustomObjectsApi(admin)
    ns = operator_namespace(admin)
    v1 = f"{registry.host}/shop/web@{push_image(registry.url, 'shop/web', '1.0', b'shop web 1.0')}"
    v2 = f"{registry.host}/shop/web@{push_image(registry.url, 'shop/web', '1.1', b'shop web 1.1')}"
    env = {"STELLA_NAMESPACE": ns, "STELLA_INSECURE_REGISTRIES": registry.host}
    try:
        with running_operator(kube, workdir, env) as op:
            world = DemoWorld(kube, admin, users, registry, op, ns, v1, v2)
            try:
                core.create_namespace(
                    client.V1Namespace(
                        metadata=client.V1ObjectMeta(name="shop", labels={"team": "shop"})
                    )
                )
                labels = {"app": "web"}
                for stage in STAGES:
                    core.create_namespace(
                        client.V1Namespace(
                            metadata=client.V1ObjectMeta(
                                name=f"shop-{stage}", labels={"stella.io/managed": "true"}
                            )
                        )
                    )
                    wait_for_digest_params(admin, f"shop-{stage}")
                    apps.create_namespaced_deployment(
                        f"shop-{stage}",
                        client.V1Deployment(
                            metadata=client.V1ObjectMeta(name="web"),
                            spec=client.V1DeploymentSpec(
                                replicas=2,
                                selector=client.V1LabelSelector(match_labels=labels),
                                template=client.V1PodTemplateSpec(
                                    metadata=client.V1ObjectMeta(labels=labels),
                                    spec=client.V1PodSpec(
                                        containers=[client.V1Container(name="web", image=v1)]
                                    ),
                                ),
                            ),
                        ),
                    )
                for name, requires, required in (
                    ("dev", [], 0),
                    ("staging", ["dev"], 1),
                    ("prod", ["staging"], 2),
                ):
                    custom.create_cluster_custom_object(
                        G,
                        V,
                        "environments",
                        {
                            "apiVersion": f"{G}/{V}",
                            "kind": "Environment",
                            "metadata": {"name": name},
                            "spec": {
                                "requires": requires,
                                "targets": [{"namespace": f"shop-{name}"}],
                                "allowedRegistries": [registry.host],
                                "approvals": {
                                    "required": required,
                                    "approverGroups": ["release-approvers"],
                                },
                                "rollout": {"timeout": "2m"},
                            },
                        },
                    )
                wait_for_release_params(admin, *STAGES)
                client.CustomObjectsApi(users["alice"]).create_namespaced_custom_object(
                    G, V, "shop", "releases", _release_body("shop-1-1", v2, list(STAGES), "1.1")
                )
                world.wait_phase("shop-1-1", "dev", "Deployed")
                _approve(users, "bob", "shop-1-1", "staging")
                world.wait_phase("shop-1-1", "staging", "Deployed")
                _approve(users, "bob", "shop-1-1", "prod")
                _approve(users, "carol", "shop-1-1", "prod")
                world.wait_phase("shop-1-1", "prod", "Deployed")
                client.CustomObjectsApi(users["dave"]).create_namespaced_custom_object(
                    G,
                    V,
                    "shop",
                    "releases",
                    _release_body("shop-1-1-hotfix", v2, ["dev", "staging"], "1.1"),
                )
                world.wait_phase("shop-1-1-hotfix", "staging", "WaitingForApproval")
                yield world
            finally:
                _teardown(admin)
    finally:
        with contextlib.suppress(client.exceptions.ApiException):
            core.delete_namespace(ns)


@pytest.fixture(scope="module", name="world")
def world_fixture(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
    registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DemoWorld]:
    """`world`, one per test module: import this into a module to use it there."""
    with demo_world(kube, kube_admin, kube_as, registry, tmp_path_factory.mktemp("world")) as w:
        yield w
