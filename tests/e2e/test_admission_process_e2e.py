"""Admission in a process of its own (`stella admission run`, the chart's Deployment
stella-admission) beside the engine (`stella operator run` without a serving certificate),
against the real kube-apiserver, as the chart deploys them (issue 12):

* admission judges from its own view, under an identity that can read and cannot write
  Stella's objects: separation of duties and duplicates are refused with the engine
  stopped, and a decision admitted then is acted on when the engine is back;
* with admission stopped and the engine running: Approvals fail closed (the webhook
  configurations' failurePolicy), a plain Release is still decided by the API server's
  policy and promoted by the engine, and Pods in a managed namespace are still governed by
  the approved digests the engine published (approved admitted, unpinned and unapproved
  refused).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from tests.e2e.conftest import OperatorProcess, start_admission, start_operator
from tests.e2e.shop import Shop
from tests.kube_support import eventually, refused_by_policy

from devenv.controlplane import ADMISSION_USER, ControlPlane
from devenv.services import Registry
from devenv.webhooks import unregister

PINNED = "workload-digests.stella.io"
NEVER_RELEASED = "sha256:" + "0" * 64


class Split:
    def __init__(self, shop: Shop, engine: OperatorProcess, admission: OperatorProcess) -> None:
        self.shop, self.engine, self.admission = shop, engine, admission


@pytest.fixture(scope="module")
def split(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
    registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Split]:
    workdir = tmp_path_factory.mktemp("admission-process")
    core = client.CoreV1Api(kube_admin)
    release_ns = "split-" + workdir.name[-6:].lower().replace("_", "")
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=release_ns, labels={"team": "shop"}))
    )
    env = {"STELLA_INSECURE_REGISTRIES": registry.host}
    admission = start_admission(kube, workdir)
    engine = start_operator(kube, workdir, env, webhooks=False)
    shop = Shop(kube_admin, kube_as, registry, release_ns)
    try:
        shop.environment("dev", replicas=1, requireApprovedDigests=True)
        shop.environment(
            "prod",
            requires=["dev"],
            replicas=1,
            approvals={"required": 1, "approverGroups": ["release-approvers"]},
        )
        yield Split(shop, engine, admission)
    finally:
        engine.proc.stop()
        admission.proc.stop()
        unregister(kube)
        shop.cleanup()
        core.delete_namespace(release_ns)


def message(exc: ApiException) -> str:
    return str(json.loads(exc.body).get("message", exc.body)) if exc.body else str(exc)


def pod(name: str, image: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(containers=[client.V1Container(name="web", image=image)]),
    )


def test_admission_runs_apart_and_cannot_write(split: Split, kube: ControlPlane) -> None:
    """The admission process serves the webhooks and is ready; the engine's process serves
    none; admission's identity reads Stella's objects and can change none of them."""
    assert split.admission.hook_port and not split.engine.hook_port
    assert "serving webhooks" in split.admission.logs()
    api = config.new_client_from_config(  # type: ignore[no-untyped-call]
        str(kube.kubeconfig_for(ADMISSION_USER))
    )
    authz = client.AuthorizationV1Api(api)

    def may(verb: str, resource: str, group: str = "stella.io", sub: str = "") -> bool:
        review = authz.create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(
                        verb=verb, group=group, resource=resource, subresource=sub or None
                    )
                )
            )
        )
        assert review.status is not None
        return bool(review.status.allowed)

    assert may("watch", "approvals") and may("list", "releases") and may("get", "environments")
    for verb, resource, group, sub in (
        ("patch", "releases", "stella.io", ""),
        ("patch", "releases", "stella.io", "status"),
        ("create", "approvals", "stella.io", ""),
        ("delete", "approvals", "stella.io", ""),
        ("update", "environments", "stella.io", "status"),
        ("create", "configmaps", "", ""),
        ("patch", "deployments", "apps", ""),
        ("get", "secrets", "", ""),
    ):
        assert not may(verb, resource, group, sub), (verb, resource, sub)


def test_admission_judges_decisions_with_the_engine_stopped(split: Split) -> None:
    """Separation of duties and duplicates need admission's view, not the engine: refused
    while the engine is down; the decision admitted meanwhile is acted on when it is back."""
    shop, engine = split.shop, split.engine
    image = shop.image("1.0")
    # dave's first; r-1, the newer, then supersedes it where both wait (prod). Newer means a
    # later creationTimestamp, which has whole seconds (a tie goes by name, to r-dave): so
    # r-1 is created in a later second than r-dave, however fast r-dave got to prod.
    made = shop.release("r-dave", image, ["dev", "prod"], as_user="dave")
    shop.wait_phase("r-dave", "prod", "WaitingForApproval", timeout=90)
    created = datetime.fromisoformat(made["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
    while datetime.now(UTC) < created + timedelta(seconds=1.1):
        time.sleep(0.05)
    shop.release("r-1", image, ["dev", "prod"])
    shop.wait_phase("r-1", "dev", "Deployed", timeout=90)
    shop.wait_phase("r-1", "prod", "WaitingForApproval")

    engine.proc.stop()
    try:
        with pytest.raises(ApiException) as exc:
            shop.approve("r-dave", "prod", "dave")
        assert exc.value.status == 403, exc.value.body
        assert "dave requested Release r-dave" in message(exc.value), message(exc.value)
        shop.approve("r-1", "prod", "bob")
        # The second decision is judged from admission's view, which the watch has just fed.
        with pytest.raises(ApiException) as exc:
            for _ in range(50):  # the watch delivers bob's first Approval within moments
                shop.approve("r-1", "prod", "bob")
        assert exc.value.status == 403, exc.value.body
        assert "bob already decided on Release r-1" in message(exc.value), message(exc.value)
    finally:
        engine.restart()
    shop.wait_phase("r-1", "prod", "Deployed", timeout=90)
    assert shop.deployed_image("prod") == image


def test_with_admission_stopped_approvals_fail_closed_and_the_engine_goes_on(
    split: Split, kube_admin: client.ApiClient
) -> None:
    """The failure mode of the split: no webhook answers. What needs it fails closed; what
    the API server's own policies decide goes on, and the engine with it."""
    shop, admission = split.shop, split.admission
    approved = shop.image("1.0")  # r-1's image: deployed in dev, so approved there
    dev = shop.target_ns("dev")
    core = client.CoreV1Api(kube_admin)
    admission.proc.stop()
    try:
        # A plain Release: stamped and judged by the API server's policies, promoted by the
        # engine to dev (no decision needed) with no webhook up.
        newer = shop.image("2.0")
        shop.release("r-2", newer, ["dev", "prod"])
        shop.wait_phase("r-2", "dev", "Deployed", timeout=90)
        assert shop.deployed_image("dev") == newer
        shop.wait_phase("r-2", "prod", "WaitingForApproval")
        # An Approval fails closed: nothing stored, the person told the webhook failed.
        with pytest.raises(ApiException) as exc:
            shop.approve("r-2", "prod", "bob")
        assert exc.value.status == 500, exc.value.body
        assert "failed calling webhook" in str(exc.value.body), exc.value.body
        assert shop.phase("r-2", "prod") == "WaitingForApproval"
        # Pods in the managed namespace: governed by the parameter the engine published.
        core.create_namespaced_pod(dev, pod("approved", approved), dry_run="All")
        refused_by_policy(
            lambda: core.create_namespaced_pod(dev, pod("tagged", "nginx:1"), dry_run="All"),
            PINNED,
            "is not pinned by digest",
        )
        unapproved = approved.rpartition("@")[0] + "@" + NEVER_RELEASED
        refused_by_policy(
            lambda: core.create_namespaced_pod(dev, pod("unapproved", unapproved), dry_run="All"),
            PINNED,
            "was never approved",
        )
    finally:
        admission.restart()
    # Back: the same Approval is admitted, and acted on.
    shop.approve("r-2", "prod", "bob")
    shop.wait_phase("r-2", "prod", "Deployed", timeout=90)
    assert shop.deployed_image("prod") == newer


FLIP: dict[str, Any] = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "MutatingAdmissionPolicy",
    "metadata": {"name": "e2e-flip-after-stella.example.com"},
    "spec": {
        "failurePolicy": "Fail",
        # Run again after admit-approval's stamp, as a later mutation would.
        "reinvocationPolicy": "IfNeeded",
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": ["stella.io"],
                    "apiVersions": ["v1alpha1"],
                    "resources": ["approvals"],
                    "operations": ["CREATE"],
                }
            ]
        },
        # Invoked (a no-op) before Stella's webhook too: the API server reinvokes only the
        # policies it invoked in the first pass.
        "matchConditions": [
            {
                "name": "marked",
                "expression": "has(object.spec.comment) && "
                "object.spec.comment == 'flip-after-stella'",
            }
        ],
        "mutations": [
            {
                "patchType": "JSONPatch",
                "jsonPatch": {
                    "expression": "has(object.metadata.annotations) && "
                    "'stella.io/judged' in object.metadata.annotations ? "
                    '[JSONPatch{op: "replace", path: "/spec/environment", value: "nowhere"}] : []'
                },
            }
        ],
    },
}


def test_an_approval_is_stamped_and_judged_in_one_webhook_call(
    split: Split, kube: ControlPlane
) -> None:
    """Issue 12: an Approval CREATE costs one webhook round trip. admit-approval stamps and
    judges it; the API server skips validate-approval while the final object is what was
    judged for this user, and calls it whenever it is not: here a later mutation (another
    MutatingAdmissionPolicy) points Stella's judged Approval at another Environment, and
    validate-approval judges the changed Approval again and refuses it."""
    shop, adm = split.shop, split.admission
    prod = shop.env_name("prod")

    def calls(hook: str) -> float:
        return adm.metric("stella_admission_review_seconds_count", hook=hook)

    shop.release("r-3", shop.image("3.0"), ["dev", "prod"], as_user="dave")
    shop.wait_phase("r-3", "prod", "WaitingForApproval", timeout=90)
    admitted, validated = calls("admit-approval"), calls("validate-approval")
    made = shop.approve("r-3", "prod", "carol")
    annotations = made["metadata"]["annotations"]
    assert annotations["stella.io/judged"] == f"v2:r-3/{prod}/Approve", annotations
    assert json.loads(annotations["stella.io/approver"])["username"] == "carol", annotations
    assert calls("admit-approval") == admitted + 1
    assert calls("validate-approval") == validated, "a judged Approval was judged twice"
    # Refused where it is judged, with the rule's message: dave decides on his own Release.
    with pytest.raises(ApiException) as exc:
        shop.approve("r-3", "prod", "dave", decision="Reject")
    assert exc.value.status == 403, exc.value.body
    assert 'admission webhook "admit-approval.stella.io" denied' in message(exc.value)
    assert "dave requested Release r-3" in message(exc.value), message(exc.value)
    assert calls("validate-approval") == validated

    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": FLIP["metadata"]["name"]},
        "spec": {"policyName": FLIP["metadata"]["name"]},
    }
    flip = {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Approval",
        "metadata": {"generateName": "r-3-flip-"},
        "spec": {
            "release": "r-3",
            "environment": prod,
            "decision": "Approve",
            "comment": "flip-after-stella",
        },
    }
    bob = client.CustomObjectsApi(shop.users["bob"])
    policies = yaml.safe_dump_all([FLIP, binding])
    kube.kubectl("admin", "apply", "-f", "-", stdin=policies)
    try:

        def refused_by_validate() -> str | None:
            validated_before = calls("validate-approval")
            try:
                bob.create_namespaced_custom_object(
                    "stella.io", "v1alpha1", shop.release_ns, "approvals", flip, dry_run="All"
                )
            except ApiException as refused:
                if "validate-approval.stella.io" in str(refused.body):
                    assert calls("validate-approval") > validated_before
                    return message(refused)
            return None  # the flip policy is not in force yet (admitted unchanged)

        refusal = eventually(refused_by_validate, what="the flip policy in force", timeout=30)
        assert "Environment nowhere does not exist" in refusal, refusal
    finally:
        kube.kubectl("admin", "delete", "-f", "-", stdin=policies, check=False)
