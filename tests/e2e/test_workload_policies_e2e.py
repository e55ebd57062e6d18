"""Workloads in managed namespaces, judged by the API server's own admission policies
(charts/stella/files/admission-policies.yaml, installed as the chart ships it), against the
real kube-apiserver: digest pinning, requireApprovedDigests from the operator's
stella-approved-digests ConfigMap, that ConfigMap locked to the operator, and the failure
mode the policies exist for: with the operator stopped, Pods are still governed, not
stopped."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.e2e.conftest import OperatorProcess, running_operator
from tests.e2e.shop import Shop
from tests.kube_support import eventually, grant_configmap_writes, refused_by_policy

from devenv.controlplane import ControlPlane
from devenv.services import Registry
from stella.policy.digest_buckets import approved_digests, bucket_key
from stella.supplychain.trust import TRUST_LABEL

NEVER_RELEASED = "sha256:" + "0e" * 32
PINNED = APPROVED = "workload-digests.stella.io"
WRITER = "approved-digests-writer.stella.io"
TRUST_WRITER = "supply-chain-trust-writer.stella.io"
OPERATOR_NS = "stella-system"


def deployment(name: str, image: str, replicas: int = 0) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name=name, image=image)]),
            ),
        ),
    )


def pod(name: str, image: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            automount_service_account_token=False,
            containers=[client.V1Container(name="c", image=image)],
        ),
    )


@pytest.fixture(scope="module")
def world(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
    registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Shop, OperatorProcess, str]]:
    """A shop whose dev namespace requires approved digests, a Release Deployed there
    through the operator, and an unmanaged namespace."""
    core = client.CoreV1Api(kube_admin)
    release_ns = f"wp-{uuid.uuid4().hex[:6]}"
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=release_ns, labels={"team": "shop"}))
    )
    with running_operator(
        kube,
        tmp_path_factory.mktemp("workload-policies"),
        {"STELLA_INSECURE_REGISTRIES": registry.host},
    ) as op:
        shop = Shop(kube_admin, kube_as, registry, release_ns)
        try:
            shop.environment("dev", replicas=1, requireApprovedDigests=True)
            shop.environment("plain", replicas=1)  # managed, pinning only
            approved = shop.image("approved")
            eventually(
                lambda: shop.release("r-ok1", approved, ["dev"]),
                what="the operator's view to know the shop",
            )
            shop.wait_phase("r-ok1", "dev", "Deployed", timeout=90)
            yield shop, op, approved
        finally:
            shop.cleanup()
            core.delete_namespace(release_ns)


def test_workloads_are_judged_by_the_policies(
    world: tuple[Shop, OperatorProcess, str], kube_admin: client.ApiClient
) -> None:
    shop, _, approved = world
    apps = client.AppsV1Api(kube_admin)
    dev, plain = shop.target_ns("dev"), shop.target_ns("plain")

    # A tag in a managed namespace: refused, saying how to fix it; in pinning-only too.
    for ns in (dev, plain):

        def create_tagged(ns: str = ns) -> object:
            return apps.create_namespaced_deployment(ns, deployment("tagged", "nginx:1"))

        refused_by_policy(
            create_tagged,
            PINNED,
            'image "nginx:1" is not pinned by digest',
            f"namespace {ns} is managed by Stella",
            "deploy them through a Release",
        )
    # The digest the operator deployed may run again; another one may not.
    apps.create_namespaced_deployment(dev, deployment("copy", approved))
    unapproved = approved.rpartition("@")[0] + "@" + NEVER_RELEASED
    refused_by_policy(
        lambda: apps.create_namespaced_deployment(dev, deployment("other", unapproved)),
        APPROVED,
        f"digest {NEVER_RELEASED} was never approved for environment {shop.env_name('dev')}",
        "promote a Release containing it",
    )
    # Pinning only: any pinned digest.
    apps.create_namespaced_deployment(plain, deployment("other", unapproved))
    # An UPDATE is judged on the images it introduces: scaling works, a new digest does not.
    apps.patch_namespaced_deployment_scale("copy", dev, {"spec": {"replicas": 0}})
    refused_by_policy(
        lambda: apps.patch_namespaced_deployment(
            "copy",
            dev,
            {
                "spec": {
                    "template": {"spec": {"containers": [{"name": "copy", "image": unapproved}]}}
                }
            },
        ),
        APPROVED,
        "was never approved",
    )
    # The operator keeps the parameter current: its data lists the deployed digest.
    cm = client.CoreV1Api(kube_admin).read_namespaced_config_map("stella-approved-digests", dev)
    assert cm.data is not None
    assert cm.data["environments"] == shop.env_name("dev")
    assert approved.rpartition("@")[2] in approved_digests(cm.data)
    assert NEVER_RELEASED not in approved_digests(cm.data)


def test_a_team_member_cannot_approve_a_digest_by_editing_the_configmap(
    world: tuple[Shop, OperatorProcess, str],
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
) -> None:
    """alice may edit everything in dev's namespace (the built-in `edit` role): RBAC would
    let her write the ConfigMap; the writer policy does not."""
    shop, _, _ = world
    dev = shop.target_ns("dev")
    rbac = client.RbacAuthorizationV1Api(kube_admin)
    rbac.create_namespaced_role_binding(
        dev,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="alice-edits"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="edit"
            ),
            subjects=[
                client.RbacV1Subject(
                    kind="User", name="alice", api_group="rbac.authorization.k8s.io"
                )
            ],
        ),
    )
    core = client.CoreV1Api(kube_as["alice"])
    forged = {"data": {bucket_key(NEVER_RELEASED): NEVER_RELEASED}}
    says = ("written only by the Stella operator", "alice may not change it")
    eventually(  # the RoleBinding takes effect: alice can read it now
        lambda: core.read_namespaced_config_map("stella-approved-digests", dev),
        what="alice's edit role",
    )
    refused_by_policy(
        lambda: core.patch_namespaced_config_map("stella-approved-digests", dev, forged),
        WRITER,
        *says,
    )
    refused_by_policy(
        lambda: core.delete_namespaced_config_map("stella-approved-digests", dev), WRITER, *says
    )
    # Other ConfigMaps are hers to write.
    core.create_namespaced_config_map(
        dev, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="app-settings"), data={"a": "b"})
    )
    cm = client.CoreV1Api(kube_admin).read_namespaced_config_map("stella-approved-digests", dev)
    assert NEVER_RELEASED not in approved_digests(cm.data or {})


def test_only_the_operator_and_platform_engineers_write_supply_chain_trust(
    world: tuple[Shop, OperatorProcess, str],
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
) -> None:
    """Issue 17: a trust ConfigMap (label stella.io/supply-chain-trust) in stella-system is
    written only by platform engineers and the operator. alice holds the same RBAC on
    ConfigMaps there as frank and still cannot plant, edit, unlabel or delete one; neither
    can a cluster admin without the platform group. Her other ConfigMaps are untouched."""
    grant_configmap_writes(kube_admin, OPERATOR_NS, "alice", "frank")
    alice, frank = client.CoreV1Api(kube_as["alice"]), client.CoreV1Api(kube_as["frank"])
    admin = client.CoreV1Api(kube_admin)
    name = f"trust-{uuid.uuid4().hex[:6]}"

    def trust_cm(pem: str) -> client.V1ConfigMap:
        labels = {TRUST_LABEL: "true"}
        return client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, labels=labels), data={"ci.pem": pem}
        )

    says = ("holds supply-chain trust", "only the Stella operator and the platform groups")
    refused_by_policy(
        lambda: alice.create_namespaced_config_map(OPERATOR_NS, trust_cm("mallory")),
        TRUST_WRITER,
        *says,
        "alice may not",
    )
    frank.create_namespaced_config_map(OPERATOR_NS, trust_cm("ci"))
    forged = {"data": {"ci.pem": "mallory"}}
    unlabel = {"metadata": {"labels": {TRUST_LABEL: None}}}
    for who, api in (("alice", alice), ("admin", admin)):
        refused_by_policy(
            lambda: api.patch_namespaced_config_map(name, OPERATOR_NS, forged), TRUST_WRITER
        )
        refused_by_policy(
            lambda: api.patch_namespaced_config_map(name, OPERATOR_NS, unlabel), TRUST_WRITER
        )
        refused_by_policy(
            lambda: api.delete_namespaced_config_map(name, OPERATOR_NS),
            TRUST_WRITER,
            f"{who} may not",
        )
    # The operator's own identity may (it is the other writer the policy names).
    out = kube.kubectl(
        "admin",
        f"--as=system:serviceaccount:{OPERATOR_NS}:stella-operator",
        "-n",
        OPERATOR_NS,
        "annotate",
        f"configmap/{name}",
        "stella.io/checked=yes",
        check=False,
    )
    assert TRUST_WRITER not in out.stderr, out.stderr
    assert admin.read_namespaced_config_map(name, OPERATOR_NS).data == {"ci.pem": "ci"}
    frank.patch_namespaced_config_map(name, OPERATOR_NS, {"data": {"ci.pem": "ci-2"}})
    frank.delete_namespaced_config_map(name, OPERATOR_NS)
    # ConfigMaps without the label are RBAC's business alone (and never trusted).
    plain = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"{name}-plain"), data={"a": "b"})
    alice.create_namespaced_config_map(OPERATOR_NS, plain)
    alice.delete_namespaced_config_map(f"{name}-plain", OPERATOR_NS)


def test_with_the_operator_stopped_pods_are_governed_not_stopped(
    world: tuple[Shop, OperatorProcess, str], kube_admin: client.ApiClient
) -> None:
    """The failure mode issue 12 asks for: no webhook answers, and the API server still
    admits the approved digest and refuses the unpinned and the unapproved ones."""
    shop, op, approved = world
    core = client.CoreV1Api(kube_admin)
    dev = shop.target_ns("dev")
    op.proc.stop()
    try:
        core.create_namespaced_pod(dev, pod("approved", approved))
        refused_by_policy(
            lambda: core.create_namespaced_pod(dev, pod("tagged", "nginx:1")),
            PINNED,
            "is not pinned by digest",
        )
        unapproved = approved.rpartition("@")[0] + "@" + NEVER_RELEASED
        refused_by_policy(
            lambda: core.create_namespaced_pod(dev, pod("unapproved", unapproved)),
            APPROVED,
            "was never approved",
        )
        # What needs Stella's webhooks still fails closed (an Approval; a plain Release is
        # judged by the API server's policy alone: tests/e2e/test_release_policies_e2e.py).
        with pytest.raises(ApiException) as exc:
            shop.approve("r-ok1", "dev", "bob")
        assert exc.value.status == 500, exc.value.body
        assert "failed calling webhook" in str(exc.value.body), exc.value.body
    finally:
        with contextlib.suppress(ApiException):
            core.delete_namespaced_pod("approved", dev)
        op.restart()
