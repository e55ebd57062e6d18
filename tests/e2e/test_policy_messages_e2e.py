"""Every refusal of the in-API-server policies release-create.stella.io and
workload-digests.stella.io says the rule that failed, on a real kube-apiserver.

Each policy judges with ONE validation (one CEL program a request instead of one per rule:
the cost, bench/bench_policy_variants.py) whose messageExpression names the first rule
failed, in the order the rules had as separate validations. Here every branch of those
messageExpressions is reached, and a request failing two rules gets the first one's
message. The parameter objects are written by hand (with the operator's identity, the
only writer the policies let through), so no operator runs: what is judged here is the
policies alone.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from tests.kube_support import eventually, refused_by_policy

from devenv.controlplane import OPERATOR_USER, ControlPlane
from devenv.webhooks import install_policies, uninstall_policies

G, V = "stella.io", "v1alpha1"
RELEASES, WORKLOADS = "release-create.stella.io", "workload-digests.stella.io"
GOOD_REGISTRY = "registry.example.com"
DIGEST = "ab" * 32  # approved below (bucket "a")
OTHER = "cd" * 32  # never approved


def image(registry: str = GOOD_REGISTRY, digest: str = DIGEST) -> str:
    return f"{registry}/shop/web@sha256:{digest}"


def release(envs: list[str], img: str = "", version: str = "1.0.0") -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Release",
        "metadata": {"generateName": "msg-"},
        "spec": {
            "version": version,
            "environments": envs,
            "components": [
                {
                    "name": "web",
                    "image": img or image(),
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
        },
    }


def pod(img: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "msg-"},
        "spec": {"containers": [{"name": "web", "image": img}]},
    }


class World:
    def __init__(self, kube: ControlPlane, admin: client.ApiClient, alice: client.ApiClient):
        self.kube, self.admin, self.alice = kube, admin, alice
        self.operator = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kube.kubeconfig_for(OPERATOR_USER))
        )
        self.tag = uuid.uuid4().hex[:6]
        self.namespaces: list[str] = []

    def namespace(self, name: str, labels: dict[str, str]) -> str:
        name = f"{name}-{self.tag}"
        core: Any = client.CoreV1Api(self.admin)  # a dict body, sent as it is
        core.create_namespace({"metadata": {"name": name, "labels": labels}})
        self.namespaces.append(name)
        return name

    def write(self, namespace: str, name: str, data: dict[str, str]) -> None:
        """A parameter object, written as the operator (the only writer admitted)."""
        core: Any = client.CoreV1Api(self.operator)  # a dict body, sent as it is
        body = {"metadata": {"name": name, "namespace": namespace}, "data": data}
        try:
            core.create_namespaced_config_map(namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            core.replace_namespaced_config_map(name, namespace, body)

    def create_release(self, ns: str, body: dict[str, Any]) -> Any:
        return client.CustomObjectsApi(self.alice).create_namespaced_custom_object(
            G, V, ns, "releases", body, dry_run="All"
        )

    def create_pod(self, ns: str, body: dict[str, Any]) -> Any:
        core: Any = client.CoreV1Api(self.admin)  # a dict body, sent as it is
        return core.create_namespaced_pod(ns, body, dry_run="All")


@pytest.fixture(scope="module")
def world(
    kube: ControlPlane, kube_admin: client.ApiClient, kube_as: dict[str, client.ApiClient]
) -> Iterator[World]:
    install_policies(kube)
    w = World(kube, kube_admin, kube_as["alice"])
    try:
        yield w
    finally:
        core = client.CoreV1Api(kube_admin)
        for ns in w.namespaces:
            core.delete_namespace(ns)
        uninstall_policies(kube)
        # Hand-written: an operator started later writes its own.
        with contextlib.suppress(ApiException):
            core.delete_namespaced_config_map("stella-release-params", "stella-system")


def release_params(w: World, shop: str, full: str, looping: str) -> dict[str, str]:
    t = w.tag
    return {
        f"registries.good-{t}": f"\n{GOOD_REGISTRY}\n",
        f"invalid.broken-{t}": "spec.targets[0].namespace: missing",
        f"registries.picky-{t}": "",
        f"namespaces.picky-{t}": "In team |other|\n",
        "full": f"\n{full}\n",
        "quota": "2",
        "loops": f"\n{looping} 9.9.9|good-{t}|web={image()}\n",
        "loopThreshold": "3",
        "loopWindow": "60",
    }


def test_each_release_rule_refuses_with_its_own_message_first_rule_first(world: World) -> None:
    w, t = world, world.tag
    shop = w.namespace("msg-shop", {"team": "shop"})
    full = w.namespace("msg-full", {"team": "shop"})
    looping = w.namespace("msg-loop", {"team": "shop"})
    if not _exists(w.admin, "stella-system"):
        core: Any = client.CoreV1Api(w.admin)  # a dict body, sent as it is
        core.create_namespace({"metadata": {"name": "stella-system"}})
    w.write("stella-system", "stella-release-params", release_params(w, shop, full, looping))
    good = f"good-{t}"

    def refused(ns: str, body: dict[str, Any], *says: str) -> Callable[[], str]:
        return lambda: refused_by_policy(lambda: w.create_release(ns, body), RELEASES, *says)

    # Each rule alone. The first is waited for: only a refusal that names this test's own
    # Environment proves the policy and this parameter both in force (an admission proves
    # neither: no policy in force yet admits everything, as seen once in CI).
    eventually(
        refused(
            shop,
            release([f"broken-{t}"]),
            f"release.environment-invalid: Environment broken-{t} is stored with an invalid spec "
            "(spec.targets[0].namespace: missing)",
        ),
        what="the policy and its parameter in force",
    )
    w.create_release(shop, release([good]))
    refused(
        shop,
        release([f"nope-{t}"]),
        f"release.unknown-environment: Environment nope-{t} does not exist",
        "retry in a few seconds",
    )()
    refused(
        shop,
        release([f"picky-{t}"]),
        f"release.namespace-not-allowed: namespace {shop} may not release into Environment "
        f"picky-{t}",
        "(In team |other|)",
    )()
    refused(
        shop,
        release([good], image("registry.evil.example")),
        "release.registry-not-allowed: spec.components[0].image comes from registry "
        f"registry.evil.example, which Environment {good} does not allow "
        f"(allowed: {GOOD_REGISTRY})",
    )()
    refused(
        full,
        release([good]),
        f"release.quota: namespace {full} already holds 2 unfinished Releases or more",
    )()
    refused(
        looping,
        release([good], version="9.9.9"),
        "release.loop: the same Release (this version, these components, these environments) "
        f"was created 3 times in namespace {looping} within 60s",
    )()
    # Several at once: the first rule's message, as the separate validations answered.
    refused(
        full,
        release([f"nope-{t}", f"broken-{t}"], image("registry.evil.example")),
        f"release.environment-invalid: Environment broken-{t}",
    )()
    refused(
        full,
        release([f"picky-{t}", f"nope-{t}"]),
        f"release.unknown-environment: Environment nope-{t} does not exist",
    )()
    refused(
        full,
        release([good], image("registry.evil.example")),
        "release.registry-not-allowed",
    )()

    # And what passes every rule is admitted, stamped by the policy (a MutatingAdmissionPolicy
    # comes into force through its own informer, a moment after install_policies' probe of
    # the validating ones: seen in CI as an unstamped answer).
    def stamped() -> Any:
        made = w.create_release(looping, release([good], version="9.9.8"))
        return "stella.io/requester" in (made["metadata"].get("annotations") or {}) and made

    eventually(stamped, what="a Release admitted and stamped by stamp-requester")


def _exists(admin: client.ApiClient, ns: str) -> bool:
    try:
        client.CoreV1Api(admin).read_namespace(ns)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def test_each_workload_rule_refuses_with_its_own_message_first_rule_first(world: World) -> None:
    w = world
    managed = w.namespace("msg-managed", {"stella.io/managed": "true"})
    broken = w.namespace("msg-broken", {"stella.io/managed": "true"})
    w.write(
        managed,
        "stella-approved-digests",
        {"environments": "prod", "digests.a": f"sha256:{DIGEST}\n"},
    )
    w.write(
        broken,
        "stella-approved-digests",
        {"environments": "prod", "invalid": "Environment prod is stored with an invalid spec"},
    )
    eventually(lambda: w.create_pod(managed, pod(image())), what="the parameter in force")

    def refused(ns: str, img: str, *says: str) -> str:
        return refused_by_policy(lambda: w.create_pod(ns, pod(img)), WORKLOADS, *says)

    # Both parameter objects in force (each comes through the API server's informer on its
    # own; an admission in `managed` says nothing of `broken`).
    eventually(
        lambda: refused(broken, image(), "workload.environment-invalid"),
        what="the parameter of the second namespace in force",
    )
    refused(managed, "nginx:1", 'workload.digest-pinned: image "nginx:1" is not pinned by digest')
    refused(
        managed,
        image(digest=OTHER),
        f'workload.digest-not-approved: image "{image(digest=OTHER)}": digest sha256:{OTHER} '
        "was never approved for environment prod",
    )
    refused(broken, image(), "workload.environment-invalid: Environment prod is stored with")
    # Unpinned and the Environment invalid: pinning is the first rule.
    refused(broken, "nginx:1", "workload.digest-pinned")
