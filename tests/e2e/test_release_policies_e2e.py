"""A plain Release create is stamped by the API server itself (MutatingAdmissionPolicy
stamp-requester.stella.io) and never calls the stamp-identity webhook (its
matchConditions); a forged stamp still goes to the webhook and is refused. Against the real
kube-apiserver, with the chart's policies and webhooks as shipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.e2e.shop import G, Shop, V, operated_shop
from tests.kube_support import eventually

from devenv.controlplane import ControlPlane
from devenv.services import Registry
from stella.policy.identity import Identity, format_identity

HOOK = "stamp-identity.stella.io"
METRIC = "apiserver_admission_webhook_admission_duration_seconds_count"


def webhook_calls(kube: ControlPlane, name: str) -> float:
    """kube-apiserver's own count of calls to one webhook (all operations, all outcomes)."""
    raw = kube.kubectl("admin", "get", "--raw", "/metrics").stdout
    return sum(
        float(line.rpartition(" ")[2])
        for line in raw.splitlines()
        if line.startswith(METRIC + "{") and f'name="{name}"' in line
    )


def who(api: client.ApiClient) -> Identity:
    review = client.AuthenticationV1Api(api).create_self_subject_review(
        client.V1SelfSubjectReview(metadata=client.V1ObjectMeta())
    )
    info = review.status.user_info
    return Identity(info.username, info.uid or "", frozenset(info.groups or []))


@pytest.fixture(scope="module")
def shop(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
    registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Shop]:
    with operated_shop(
        kube, kube_admin, kube_as, registry, tmp_path_factory.mktemp("release-policies"), "rp"
    ) as (s, _):
        s.environment("dev", replicas=0)
        yield s


def body(shop: Shop, name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    image = f"{shop.registry.host}/{shop.prefix}/web@sha256:{'5' * 64}"
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Release",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "version": "1.0.0",
            "environments": [shop.env_name("dev")],
            "components": [
                {
                    "name": "web",
                    "image": image,
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
        },
    }


def test_a_plain_release_is_stamped_by_the_policy_not_the_webhook(
    shop: Shop, kube: ControlPlane, kube_as: dict[str, client.ApiClient]
) -> None:
    alice = client.CustomObjectsApi(kube_as["alice"])

    def create(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        return alice.create_namespaced_custom_object(  # type: ignore[no-any-return]
            G, V, shop.release_ns, "releases", body(shop, name, annotations), dry_run="All"
        )

    eventually(lambda: create("settle"), what="the operator's view to know the shop")

    # The mutating policy is in force once a create no longer reaches the webhook (the API
    # server loads policies a moment after they are stored).
    def skips_the_webhook() -> bool:
        before = webhook_calls(kube, HOOK)
        create("probe")
        return webhook_calls(kube, HOOK) == before

    eventually(skips_the_webhook, what="the stamp-requester policy in force")
    before = webhook_calls(kube, HOOK)
    for i in range(5):
        made = create(f"plain-{i}")
        stamp = made["metadata"]["annotations"]["stella.io/requester"]
        # Byte for byte what the webhook writes (stella.policy.identity.format_identity).
        assert stamp == format_identity(who(kube_as["alice"])), stamp
    assert webhook_calls(kube, HOOK) == before

    # A client-written stamp that is not the sender's: the webhook is called and refuses it.
    forged = json.dumps({"groups": [], "uid": "x", "username": "bob"})
    with pytest.raises(ApiException) as exc:
        create("forged", {"stella.io/requester": forged})
    assert exc.value.status == 403
    assert HOOK in str(exc.value.body) and "remove it and apply again" in str(exc.value.body)
    assert webhook_calls(kube, HOOK) > before


def test_a_person_without_a_uid_is_stamped_too(shop: Shop, kube: ControlPlane) -> None:
    """An impersonated user has no uid (nor do token-file users without one): the policy's
    CEL must not fail on the missing key, which would refuse every Release they create."""
    from tests.e2e.test_actions_e2e import impersonating

    grace = impersonating(kube, "grace", "release-requesters")
    made = client.CustomObjectsApi(grace).create_namespaced_custom_object(
        G, V, shop.release_ns, "releases", body(shop, "no-uid"), dry_run="All"
    )
    stamp = json.loads(made["metadata"]["annotations"]["stella.io/requester"])
    assert stamp["username"] == "grace" and stamp["uid"] == ""
    assert stamp == json.loads(format_identity(who(grace)))
