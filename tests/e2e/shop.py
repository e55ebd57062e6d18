"""A small shop to promote: images in a real registry, Environments, target namespaces
with Deployments, and helpers to drive it as alice, bob and carol would."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from kubernetes import client
from tests.kube_support import eventually, wait_for_digest_params, wait_for_release_params

from devenv.services import Registry, push_image

G, V = "stella.io", "v1alpha1"


@dataclass
class Shop:
    admin: client.ApiClient
    users: dict[str, client.ApiClient]
    registry: Registry
    release_ns: str
    prefix: str = field(default_factory=lambda: f"s{uuid.uuid4().hex[:6]}")
    created_envs: list[str] = field(default_factory=list)
    created_ns: list[str] = field(default_factory=list)

    def env_name(self, stage: str) -> str:
        return f"{self.prefix}-{stage}"

    def target_ns(self, stage: str) -> str:
        return f"{self.prefix}-{stage}"

    def image(self, tag: str) -> str:
        digest = push_image(
            self.registry.url, f"{self.prefix}/web", tag, f"{self.prefix}-{tag}".encode()
        )
        return f"{self.registry.host}/{self.prefix}/web@{digest}"

    def environment(
        self,
        stage: str,
        requires: list[str] | None = None,
        replicas: int = 2,
        node_selector: dict[str, str] | None = None,
        **spec: Any,
    ) -> str:
        name, ns = self.env_name(stage), self.target_ns(stage)
        core, apps = client.CoreV1Api(self.admin), client.AppsV1Api(self.admin)
        core.create_namespace(
            client.V1Namespace(
                metadata=client.V1ObjectMeta(name=ns, labels={"stella.io/managed": "true"})
            )
        )
        self.created_ns.append(ns)
        wait_for_digest_params(self.admin, ns)
        labels = {"app": "web"}
        apps.create_namespaced_deployment(
            ns,
            client.V1Deployment(
                metadata=client.V1ObjectMeta(name="web"),
                spec=client.V1DeploymentSpec(
                    replicas=replicas,
                    selector=client.V1LabelSelector(match_labels=labels),
                    progress_deadline_seconds=600,
                    template=client.V1PodTemplateSpec(
                        metadata=client.V1ObjectMeta(labels=labels),
                        spec=client.V1PodSpec(
                            node_selector=node_selector,
                            containers=[
                                client.V1Container(name="web", image=self.image("initial"))
                            ],
                        ),
                    ),
                ),
            ),
        )
        body = {
            "apiVersion": f"{G}/{V}",
            "kind": "Environment",
            "metadata": {"name": name},
            "spec": {
                "requires": [self.env_name(r) for r in (requires or [])],
                "targets": [{"namespace": ns}],
                "allowedRegistries": [self.registry.host],
                "rollout": {"timeout": "60s", "rollbackOnFailure": True},
                **spec,
            },
        }
        client.CustomObjectsApi(self.admin).create_cluster_custom_object(G, V, "environments", body)
        self.created_envs.append(name)
        wait_for_release_params(self.admin, name)
        return name

    def release(
        self, name: str, image: str, stages: list[str], as_user: str = "alice"
    ) -> dict[str, Any]:
        body = {
            "apiVersion": f"{G}/{V}",
            "kind": "Release",
            "metadata": {"name": name},
            "spec": {
                "version": "1.0." + name[-1],
                "environments": [self.env_name(s) for s in stages],
                "components": [
                    {
                        "name": "web",
                        "image": image,
                        "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                    }
                ],
            },
        }
        # The API server judges a Release CREATE by the Environments the operator published
        # (release-create policy): wait for those this shop made (some tests make them by hand).
        envs = [e for e in body["spec"]["environments"] if e in self.created_envs]  # type: ignore[index]
        wait_for_release_params(self.admin, *envs)
        made = client.CustomObjectsApi(self.users[as_user]).create_namespaced_custom_object(
            G, V, self.release_ns, "releases", body
        )
        return cast(dict[str, Any], made)

    def approve(
        self, release: str, stage: str, as_user: str, decision: str = "Approve"
    ) -> dict[str, Any]:
        body = {
            "apiVersion": f"{G}/{V}",
            "kind": "Approval",
            "metadata": {"generateName": f"{release}-{stage}-"},
            "spec": {
                "release": release,
                "environment": self.env_name(stage),
                "decision": decision,
                "comment": "e2e",
            },
        }
        made = client.CustomObjectsApi(self.users[as_user]).create_namespaced_custom_object(
            G, V, self.release_ns, "approvals", body
        )
        return cast(dict[str, Any], made)

    def get_release(self, name: str) -> dict[str, Any]:
        got = client.CustomObjectsApi(self.admin).get_namespaced_custom_object(
            G, V, self.release_ns, "releases", name
        )
        return cast(dict[str, Any], got)

    def phase(self, name: str, stage: str) -> str | None:
        envs = (self.get_release(name).get("status") or {}).get("environments", [])
        return next((e["phase"] for e in envs if e["name"] == self.env_name(stage)), None)

    def progress(self, name: str, stage: str) -> dict[str, Any]:
        envs = (self.get_release(name).get("status") or {}).get("environments", [])
        return next((e for e in envs if e["name"] == self.env_name(stage)), {})

    def wait_phase(self, name: str, stage: str, phase: str, timeout: float = 60) -> dict[str, Any]:
        return self._wait_for(name, stage, "phase", phase, timeout)

    def wait_reason(
        self, name: str, stage: str, reason: str | tuple[str, ...], timeout: float = 60
    ) -> dict[str, Any]:
        """The Release's progress in ``stage`` once its reason is ``reason`` (or one of
        them; a phase such as Pending has several)."""
        return self._wait_for(name, stage, "reason", reason, timeout)

    def _wait_for(
        self, name: str, stage: str, field: str, value: str | tuple[str, ...], timeout: float
    ) -> dict[str, Any]:
        wanted = (value,) if isinstance(value, str) else value

        def reached() -> dict[str, Any] | None:
            p = self.progress(name, stage)
            return p if p and p.get(field) in wanted else None

        return eventually(
            reached,
            timeout=timeout,
            what=f"{name} {' or '.join(wanted)} in {stage}",
        )

    def deployed_image(self, stage: str) -> str:
        d = client.AppsV1Api(self.admin).read_namespaced_deployment("web", self.target_ns(stage))
        assert d.spec is not None and d.spec.template.spec is not None, d
        return str(d.spec.template.spec.containers[0].image)

    def deployment(self, stage: str) -> Any:
        return client.AppsV1Api(self.admin).read_namespaced_deployment("web", self.target_ns(stage))

    def environment_status(self, stage: str) -> dict[str, Any]:
        env = client.CustomObjectsApi(self.admin).get_cluster_custom_object(
            G, V, "environments", self.env_name(stage)
        )
        return cast(dict[str, Any], cast(dict[str, Any], env).get("status") or {})

    def cleanup(self) -> None:
        api = client.CustomObjectsApi(self.admin)
        for name in self.created_envs:
            with contextlib.suppress(client.exceptions.ApiException):
                api.delete_cluster_custom_object(G, V, "environments", name)
        for ns in self.created_ns:
            with contextlib.suppress(client.exceptions.ApiException):
                client.CoreV1Api(self.admin).delete_namespace(ns)


@contextlib.contextmanager
def operated_shop(
    kube: Any,
    admin: client.ApiClient,
    users: dict[str, client.ApiClient],
    registry: Registry,
    workdir: Any,
    prefix: str,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[Shop, Any]]:
    """A module's own shop: a release namespace (team=shop) named PREFIX-xxxxxx and the
    operator as its own process trusting the test registry (and `extra_env`); everything
    removed after."""
    from tests.e2e.conftest import running_operator

    core = client.CoreV1Api(admin)
    release_ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=release_ns, labels={"team": "shop"}))
    )
    try:
        env = {"STELLA_INSECURE_REGISTRIES": registry.host, **(extra_env or {})}
        with running_operator(kube, workdir, env) as op:
            shop = Shop(admin, users, registry, release_ns)
            try:
                yield shop, op
            finally:
                shop.cleanup()
    finally:
        core.delete_namespace(release_ns)
