"""A plain Release create is decided by the API server itself, against the real
kube-apiserver with the chart's policies and webhooks as shipped:

* stamped by the MutatingAdmissionPolicy stamp-requester.stella.io, never calling the
  stamp-identity webhook (its matchConditions); a forged stamp still goes to the webhook
  and is refused;
* judged by the ValidatingAdmissionPolicy release-create.stella.io from the parameter the
  operator publishes (unknown Environment, releaseNamespaces, allowedRegistries, T10's
  quota and loop detection), never calling validate-release; what CEL cannot decide (a
  description, an UPDATE) still goes to the webhook;
* with the operator stopped: such a Release is still decided, Approvals and whatever
  needs the webhook fail closed, workloads in managed namespaces are still governed.

The module's operator runs with a small quota and loop threshold so T10 can be reached."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.e2e.shop import G, Shop, V, operated_shop
from tests.kube_support import custom_objects, eventually, refused_by_policy

from devenv.controlplane import ControlPlane
from devenv.services import Registry
from stella.policy.identity import Identity, format_identity

HOOK = "stamp-identity.stella.io"
VALIDATE = "validate-release.stella.io"
POLICY = "release-create.stella.io"
METRIC = "apiserver_admission_webhook_admission_duration_seconds_count"
# A newer Release supersedes an older one waiting in the same Environment (final, so no
# longer counted): a namespace fills with Releases waiting in different Environments.
QUOTA, LOOPS = 2, 3
GATED = ("prod", "qa")
FOREIGN = "registry.evil.example/shop/web@sha256:" + "ab" * 32


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
    assert review.status is not None and review.status.user_info is not None
    info = review.status.user_info
    assert info.username is not None
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
        kube,
        kube_admin,
        kube_as,
        registry,
        tmp_path_factory.mktemp("release-policies"),
        "rp",
        {
            "STELLA_PENDING_RELEASES_PER_NAMESPACE": str(QUOTA),
            "STELLA_RELEASE_LOOP_THRESHOLD": str(LOOPS),
        },
    ) as (s, op):
        s.environment("dev", replicas=0)
        s.environment(
            "prod",
            replicas=0,
            releaseNamespaces={
                "matchLabels": {"team": "shop"},
                "matchExpressions": [{"key": "frozen", "operator": "DoesNotExist"}],
            },
            approvals={"required": 1, "approverGroups": ["release-approvers"]},
        )
        s.environment(
            "qa", replicas=0, approvals={"required": 1, "approverGroups": ["release-approvers"]}
        )
        s.op = op  # type: ignore[attr-defined]
        yield s


def body(
    shop: Shop,
    name: str,
    annotations: dict[str, str] | None = None,
    *,
    image: str = "",
    env: str = "dev",
    version: str = "1.0.0",
) -> dict[str, Any]:
    image = image or f"{shop.registry.host}/{shop.prefix}/web@sha256:{'5' * 64}"
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Release",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "version": version,
            "environments": [shop.env_name(env)],
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
    alice = custom_objects(kube_as["alice"])

    def create(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        made = alice.create_namespaced_custom_object(
            G, V, shop.release_ns, "releases", body(shop, name, annotations), dry_run="All"
        )
        return cast(dict[str, Any], made)

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
    made = custom_objects(grace).create_namespaced_custom_object(
        G, V, shop.release_ns, "releases", body(shop, "no-uid"), dry_run="All"
    )
    stamp = json.loads(made["metadata"]["annotations"]["stella.io/requester"])
    assert stamp["username"] == "grace" and stamp["uid"] == ""
    assert stamp == json.loads(format_identity(who(grace)))


def test_a_long_username_is_recorded_whole_and_a_longer_one_refused(
    shop: Shop, kube: ControlPlane
) -> None:
    """Kubernetes sets no limit on a username; a service account's reaches 339 characters
    and an OIDC one can be an issuer URL and a subject. A requester and an approver past
    the 253 characters status and evidence once held get their Release through qa, each
    recorded whole (the Approval's evidence failed to build, and with it every reconcile). A
    username past the 1,024 Stella records is not stamped by the policy and is refused
    by the webhook, with what to do."""
    from tests.e2e.test_actions_e2e import impersonating

    requester = "https://issuer.example.com/realms/shop#" + "r" * 260
    approver = "https://issuer.example.com/realms/shop#" + "a" * 260
    shop.users["long-requester"] = impersonating(kube, requester, "release-requesters")
    shop.users["long-approver"] = impersonating(kube, approver, "release-approvers")
    made = shop.release("long-1", shop.image("long"), ["qa"], as_user="long-requester")
    stamp = json.loads(made["metadata"]["annotations"]["stella.io/requester"])
    assert stamp["username"] == requester
    shop.wait_phase("long-1", "qa", "WaitingForApproval")
    approval = shop.approve("long-1", "qa", as_user="long-approver")
    done = shop.wait_phase("long-1", "qa", "Deployed")
    assert [a["approver"] for a in done["approvals"]] == [approver]
    assert shop.get_release("long-1")["status"]["requester"] == requester
    appr = client.CustomObjectsApi(shop.admin).get_namespaced_custom_object(
        G, V, shop.release_ns, "approvals", approval["metadata"]["name"]
    )
    assert cast(dict[str, Any], appr)["status"]["approver"] == approver

    too_long = impersonating(kube, "u" * 1025, "release-requesters")
    with pytest.raises(ApiException) as exc:
        custom_objects(too_long).create_namespaced_custom_object(
            G, V, shop.release_ns, "releases", body(shop, "too-long"), dry_run="All"
        )
    assert exc.value.status == 403, exc.value.body
    assert HOOK in str(exc.value.body)
    assert "your username is 1025 characters long" in str(exc.value.body)
    assert "shorter name" in str(exc.value.body)


# ---- release-create.stella.io: the rules that needed Environments, in the API server --------
def namespace(kube_admin: client.ApiClient, prefix: str, labels: dict[str, str]) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(kube_admin).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
    )
    return name


def test_release_rules_needing_environments_are_decided_without_a_webhook(
    shop: Shop,
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
) -> None:
    alice = custom_objects(kube_as["alice"])
    prod = shop.env_name("prod")
    frozen = namespace(kube_admin, "rp-frozen", {"team": "shop", "frozen": "yes"})
    other = namespace(kube_admin, "rp-other", {"team": "other"})
    shop.created_ns += [frozen, other]

    def create(b: dict[str, Any], ns: str = shop.release_ns) -> dict[str, Any]:
        made = alice.create_namespaced_custom_object(G, V, ns, "releases", b, dry_run="All")
        return cast(dict[str, Any], made)

    eventually(lambda: create(body(shop, "settle", env="prod")), what="the parameter to know prod")
    before = webhook_calls(kube, VALIDATE)
    made = create(body(shop, "plain", env="prod"))
    assert json.loads(made["metadata"]["annotations"]["stella.io/requester"])["username"] == "alice"
    refused_by_policy(
        lambda: create(body(shop, "evil", image=FOREIGN, env="prod")),
        POLICY,
        "release.registry-not-allowed: spec.components[0].image comes from registry "
        "registry.evil.example",
        f"which Environment {prod} does not allow (allowed: {shop.registry.host})",
        "push the image to an allowed registry",
    )
    for ns in (frozen, other):  # matchExpressions and matchLabels, read from the namespace

        def create_in(ns: str = ns) -> dict[str, Any]:
            return create(body(shop, "ns", env="prod"), ns)

        refused_by_policy(
            create_in,
            POLICY,
            f"release.namespace-not-allowed: namespace {ns} may not release into "
            f"Environment {prod}",
            "create the Release in an allowed namespace",
        )
    create(body(shop, "ns", env="dev"), other)  # dev selects no namespaces
    refused_by_policy(
        lambda: create(body(shop, "nowhere", env="nope")),
        POLICY,
        f"release.unknown-environment: Environment {shop.env_name('nope')} does not exist",
        "retry in a few seconds",
    )
    # What the models' validators refused in the webhook, the CRD schema refuses now.
    dup = body(shop, "dup", env="prod")
    dup["spec"]["components"] *= 2
    dup["spec"]["environments"] *= 2
    with pytest.raises(ApiException) as exc:
        create(dup)
    assert exc.value.status == 422, exc.value.body
    for says in ("component names must be unique", "environments must not repeat"):
        assert says in str(exc.value.body), exc.value.body
    assert webhook_calls(kube, VALIDATE) == before, "a plain Release create reached the webhook"

    # What CEL cannot decide still reaches the webhook: a description (the credential check).
    described = body(shop, "described", env="prod")
    described["spec"]["description"] = "the spring sale"
    create(described)
    assert webhook_calls(kube, VALIDATE) > before

    # An Environment created a moment ago: refused until the operator has published it,
    # then admitted (the message said to retry).
    late = shop.environment("late", replicas=0)
    eventually(lambda: create(body(shop, "late", env="late")), what=f"{late} published")


def test_t10_a_full_namespace_and_a_loop_are_refused_by_the_policy(
    shop: Shop, kube_admin: client.ApiClient, kube_as: dict[str, client.ApiClient]
) -> None:
    alice = custom_objects(kube_as["alice"])
    op = shop.op  # type: ignore[attr-defined]
    busy = namespace(kube_admin, "rp-busy", {"team": "shop"})
    loop_ns = namespace(kube_admin, "rp-loop", {"team": "shop"})
    shop.created_ns += [busy, loop_ns]
    image = shop.image("t10")

    def create(b: dict[str, Any], ns: str, dry: bool = False) -> dict[str, Any]:
        made = alice.create_namespaced_custom_object(
            G, V, ns, "releases", b, dry_run="All" if dry else None
        )
        return cast(dict[str, Any], made)

    # The quota: QUOTA unfinished Releases, each waiting for an approval of its own.
    for i, env in enumerate(GATED[:QUOTA]):
        create(body(shop, f"q-{i}", image=image, env=env, version=f"1.0.{i}"), busy)

    def full() -> str:
        return refused_by_policy(
            lambda: create(body(shop, "q-x", image=image, env="prod", version="2.0.0"), busy, True),
            POLICY,
            f"release.quota: namespace {busy} already holds {QUOTA} unfinished Releases or more",
            "wait for some to finish or delete ones",
        )

    eventually(full, what="the quota published")
    client.CustomObjectsApi(kube_admin).delete_namespaced_custom_object(
        G, V, busy, "releases", "q-0"
    )
    eventually(
        lambda: create(body(shop, "q-x", image=image, env="prod", version="2.0.0"), busy, True),
        what="room again once one is deleted",
    )

    # A loop: the same spec again and again (generateName, as a CI step would); refused
    # once LOOPS of them were made, as soon as the operator has published it. (Each
    # supersedes the one before; the namespace may be full for a moment meanwhile.)
    same = body(shop, "", image=image, env="prod", version="3.0.0")
    same["metadata"] = {"generateName": "ci-"}
    made = 0
    while made < LOOPS:
        with contextlib.suppress(ApiException):
            create(same, loop_ns)
            made += 1

    def looping() -> str:
        nonlocal made
        try:
            create(same, loop_ns)
        except ApiException:
            pass
        else:
            made += 1
        return refused_by_policy(
            lambda: create(same, loop_ns, True),
            POLICY,
            f"release.loop: the same Release (this version, these components, these "
            f"environments) was created {LOOPS} times in namespace {loop_ns}",
            "a step or webhook in a loop?",
        )

    eventually(looping, what="the loop refused")
    assert made <= LOOPS + 3, f"{made} copies were admitted before the loop was stopped"
    # Another spec in the same namespace is not part of the loop.
    create(
        body(shop, "", image=image, env="prod", version="3.0.1")
        | {"metadata": {"generateName": "ci-"}},
        loop_ns,
        True,
    )
    assert op.metric("stella_security_events_total", signal="ReleaseLoop") >= 1


def test_with_the_operator_stopped_releases_are_still_decided_approvals_fail_closed(
    shop: Shop, kube_admin: client.ApiClient, kube_as: dict[str, client.ApiClient]
) -> None:
    """The failure modes (last in this module: it stops the module's operator). A Release
    the policy decides alone is still decided (admitted, or refused with its reason); an
    Approval, and a Release needing the webhook, fail closed; Pods in a managed namespace
    are still judged (pinned admitted, unpinned refused; approved digests with the operator
    stopped: tests/e2e/test_workload_policies_e2e.py)."""
    alice = custom_objects(kube_as["alice"])
    made = alice.create_namespaced_custom_object(
        G, V, shop.release_ns, "releases", body(shop, "before-stop", env="prod")
    )
    shop.op.proc.stop()  # type: ignore[attr-defined]

    alice.create_namespaced_custom_object(
        G, V, shop.release_ns, "releases", body(shop, "while-down", env="prod"), dry_run="All"
    )
    refused_by_policy(
        lambda: alice.create_namespaced_custom_object(
            G,
            V,
            shop.release_ns,
            "releases",
            body(shop, "evil", image=FOREIGN, env="prod"),
            dry_run="All",
        ),
        POLICY,
        "release.registry-not-allowed",
    )
    with pytest.raises(ApiException) as exc:
        shop.approve(made["metadata"]["name"], "prod", "bob")
    assert exc.value.status >= 500 and "failed calling webhook" in str(exc.value.body)
    described = body(shop, "described-down", env="prod")
    described["spec"]["description"] = "needs the webhook"
    with pytest.raises(ApiException) as exc:
        alice.create_namespaced_custom_object(G, V, shop.release_ns, "releases", described)
    assert "failed calling webhook" in str(exc.value.body)

    core = client.CoreV1Api(kube_admin)
    target = shop.target_ns("prod")

    def pod(name: str, image: str) -> client.V1Pod:
        return client.V1Pod(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PodSpec(containers=[client.V1Container(name="web", image=image)]),
        )

    core.create_namespaced_pod(target, pod("pinned", shop.image("down")), dry_run="All")
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod(target, pod("tagged", "nginx:1"), dry_run="All")
    assert "workload.digest-pinned" in str(exc.value.body)
