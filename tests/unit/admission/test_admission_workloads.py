"""Workloads in Stella-managed namespaces: pinned digests, approved digests."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from admission_factories import (
    MALLORY,
    OPERATOR_ID,
    POLICY,
    digest,
    image,
    release_body,
    update,
    world,
)

from stella.admission import Request, Verdict, validate
from stella.engine.view import ClusterView

UNPINNED = "registry.example.com/shop/web:1.4.2"


def pod_spec(
    *images: str, init: tuple[str, ...] = (), ephemeral: tuple[str, ...] = ()
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)]
    }
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "image": im} for i, im in enumerate(init)]
    if ephemeral:
        spec["ephemeralContainers"] = [
            {"name": f"e{i}", "image": im} for i, im in enumerate(ephemeral)
        ]
    return spec


def workload(kind: str, spec: dict[str, Any], namespace: str = "shop-prod") -> dict[str, Any]:
    meta = {"name": "web", "namespace": namespace}
    if kind == "Pod":
        return {"kind": kind, "metadata": meta, "spec": spec}
    template = {"metadata": {"labels": {"app": "web"}}, "spec": spec}
    if kind == "CronJob":
        return {
            "kind": kind,
            "metadata": meta,
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}},
        }
    return {"kind": kind, "metadata": meta, "spec": {"template": template}}


def admit(kind: str, body: dict[str, Any], view: ClusterView | None = None) -> Verdict:
    ns = body["metadata"]["namespace"]
    req = Request("CREATE", kind, ns, "web", MALLORY, body, None)
    return validate(req, view if view is not None else approved_world(), POLICY)


def approved_world(phase: str = "Deployed") -> ClusterView:
    view = world()
    view.releases[("shop", "shop-1-4-2")] = release_body(
        images=(image(1), image(2, "registry.example.com/shop/sidecar")),
        phases={"dev": "Deployed", "staging": "Deployed", "prod": phase},
    )
    return view


KINDS = ["Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet"]


@pytest.mark.parametrize("kind", KINDS)
def test_approved_digests_are_admitted(kind: str) -> None:
    spec = pod_spec(image(1), init=(image(2, "registry.example.com/shop/sidecar"),))
    verdict = admit(kind, workload(kind, spec))
    assert verdict.allowed, verdict.message


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["containers", "init", "ephemeral"])
def test_unpinned_images_in_a_managed_namespace(kind: str, where: str) -> None:
    spec = {
        "containers": pod_spec(UNPINNED),
        "init": pod_spec(image(1), init=(UNPINNED,)),
        "ephemeral": pod_spec(image(1), ephemeral=(UNPINNED,)),
    }[where]
    verdict = admit(kind, workload(kind, spec))
    assert not verdict.allowed and verdict.rule == "workload.digest-pinned"
    assert UNPINNED in verdict.message and "deploy them through a Release" in verdict.message


def test_missing_image_is_refused() -> None:
    verdict = admit("Pod", workload("Pod", {"containers": [{"name": "x"}]}))
    assert verdict.rule == "workload.digest-pinned"


def test_unmanaged_namespaces_are_not_judged() -> None:
    assert admit("Deployment", workload("Deployment", pod_spec(UNPINNED), "plain")).allowed


def test_a_namespace_the_snapshot_has_not_seen_is_judged() -> None:
    verdict = admit("Deployment", workload("Deployment", pod_spec(UNPINNED), "brand-new"))
    assert verdict.rule == "workload.digest-pinned"


def test_a_digest_never_approved() -> None:
    other = image(99)
    verdict = admit("Deployment", workload("Deployment", pod_spec(other)))
    assert not verdict.allowed and verdict.rule == "workload.digest-not-approved"
    assert verdict.security_signal == "UnapprovedDigest"
    assert f"digest {digest(99)} was never approved for environment prod" in verdict.message
    assert "promote a Release containing it" in verdict.message


@pytest.mark.parametrize(
    ("phase", "allowed"),
    [
        ("Deploying", True),
        ("Deployed", True),
        ("WaitingForApproval", False),
        ("Pending", False),
        ("Failed", False),
        ("Rejected", False),
        ("Superseded", False),
    ],
)
def test_approved_means_deploying_or_deployed_in_that_environment(
    phase: str, allowed: bool
) -> None:
    verdict = admit("Pod", workload("Pod", pod_spec(image(1))), approved_world(phase))
    assert verdict.allowed is allowed


def test_deployed_elsewhere_is_not_approved_here() -> None:
    view = world()
    view.releases[("shop", "shop-1-4-2")] = release_body(phases={"staging": "Deployed"})
    assert (
        admit("Pod", workload("Pod", pod_spec(image(1))), view).rule
        == "workload.digest-not-approved"
    )


def test_without_require_approved_digests_any_pinned_digest_runs() -> None:
    view = world()
    view.environments["prod"]["spec"]["requireApprovedDigests"] = False
    assert admit("Pod", workload("Pod", pod_spec(image(99))), view).allowed


def test_controller_created_pods_are_checked_too() -> None:
    body = workload("Pod", pod_spec(image(99)))
    body["metadata"]["ownerReferences"] = [
        {"kind": "ReplicaSet", "name": "web-123", "controller": True}
    ]
    assert admit("Pod", body).rule == "workload.digest-not-approved"


def test_the_index_follows_the_snapshot() -> None:
    view = approved_world("WaitingForApproval")
    body = workload("Pod", pod_spec(image(1)))
    assert not admit("Pod", body, view).allowed
    view.apply("Release", "MODIFIED", release_body(phases={"prod": "Deploying"}))
    assert admit("Pod", body, view).allowed
    view.apply("Release", "DELETED", release_body())
    assert not admit("Pod", body, view).allowed


class RevisedView(ClusterView):
    """A snapshot that says when it changed: the indexes skip their sync in between."""

    revision = 0

    def apply(self, kind: str, event_type: str | None, body: Any) -> None:
        super().apply(kind, event_type, body)
        self.revision += 1


def test_a_snapshot_revision_skips_the_sync_until_it_changes() -> None:
    view = RevisedView()
    view.synced = True
    base = approved_world("WaitingForApproval")
    view.environments.update(base.environments)
    view.namespaces.update(base.namespaces)
    view.apply("Release", "ADDED", base.releases[("shop", "shop-1-4-2")])
    body = workload("Pod", pod_spec(image(1)))
    assert not admit("Pod", body, view).allowed
    # changed behind the snapshot's back: same revision, so the index does not look
    view.releases[("shop", "shop-1-4-2")] = release_body(phases={"prod": "Deployed"})
    assert not admit("Pod", body, view).allowed
    view.apply("Release", "MODIFIED", release_body(phases={"prod": "Deployed"}))
    assert admit("Pod", body, view).allowed


def test_update_judges_only_new_images() -> None:
    view = approved_world("Superseded")  # what runs was approved once; its Release moved on
    old = workload("Deployment", pod_spec(image(1)))
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 5
    assert validate(update("Deployment", old, scaled, MALLORY), view, POLICY).allowed
    changed = copy.deepcopy(old)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = image(99)
    verdict = validate(update("Deployment", old, changed, OPERATOR_ID), view, POLICY)
    assert verdict.rule == "workload.digest-not-approved"


def test_delete_is_not_judged() -> None:
    old = workload("Pod", pod_spec(UNPINNED))
    req = Request("DELETE", "Pod", "shop-prod", "web", MALLORY, None, old)
    assert validate(req, world(), POLICY).allowed


def test_an_invalid_environment_targeting_the_namespace_fails_closed() -> None:
    view = approved_world()
    view.environments["prod"] = {
        "metadata": {"name": "prod"},
        "spec": {"targets": [{"namespace": "shop-prod"}], "requireApprovedDigests": "perhaps"},
    }
    assert (
        admit("Pod", workload("Pod", pod_spec(image(1))), view).rule
        == "workload.environment-invalid"
    )
