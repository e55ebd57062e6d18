"""The Argo CD Application part of a promotion's evidence: each Application's override
entries before and after, and the revision Argo CD reported (issue 14)."""

from __future__ import annotations

from stella.engine.applications import revisions
from stella.evidence.application_changes import application_evidence
from stella.evidence.packet import Outcome
from stella.models.environment import ApplicationTarget
from stella.models.release import ApplicationRevision, Component, WorkloadImage
from stella.policy.application import AppState

WEB = "registry.example.com/shop/web@sha256:" + "a" * 64
API = "registry.example.com/shop/api@sha256:" + "b" * 64
OLD = "registry.example.com/shop/web@sha256:" + "c" * 64


def component(name: str, image: str) -> Component:
    return Component.model_validate(
        {
            "name": name,
            "image": image,
            "workload": {"kind": "Deployment", "name": name, "container": name},
        }
    )


def before(ns: str, app: str, comp: str, image: str, kind: str = "Application") -> WorkloadImage:
    return WorkloadImage(namespace=ns, kind=kind, name=app, container=comp, image=image)


def test_each_application_gets_its_components_before_and_after_and_its_revision() -> None:
    comps = [component("web", WEB), component("api", API)]
    previous = [
        before("argocd", "shop-prod", "web", OLD),
        before("argocd", "shop-prod", "api", ""),  # no entry before: Stella added one
        before("argocd", "shop-eu", "web", OLD),
    ]
    got = application_evidence(previous, comps, {"argocd/shop-prod": "f" * 40})
    assert got is not None
    assert [(a.namespace, a.name, a.revision) for a in got] == [
        ("argocd", "shop-eu", ""),  # not compared yet: no revision claimed
        ("argocd", "shop-prod", "f" * 40),
    ]
    assert [(c.component, c.before, c.after) for c in got[1].changes] == [
        ("web", OLD, WEB),
        ("api", "", API),
    ]
    dumped = Outcome(result="Deployed", applications=got).model_dump(
        by_alias=True, exclude_none=True, mode="json"
    )
    assert dumped["applications"][1]["changes"][0] == {
        "component": "web",
        "before": OLD,
        "after": WEB,
    }


def test_namespace_targets_leave_the_packet_as_it_was() -> None:
    comps = [component("web", WEB)]
    workloads = [before("shop-prod", "web", "web", OLD, kind="Deployment")]
    assert application_evidence(workloads, comps) is None
    assert application_evidence([], comps) is None
    assert "applications" not in Outcome(result="Deployed").model_dump(exclude_none=True)
    # A component the Release no longer has is not invented an "after" for.
    assert application_evidence([before("argocd", "a", "gone", OLD)], comps) is None


def test_revisions_are_recorded_once_argo_cd_compared_against_the_override() -> None:
    prod, eu = ApplicationTarget(name="shop-prod"), ApplicationTarget(name="shop-eu")
    waiting = AppState("Waiting", "", "old-revision")
    synced = AppState("Synced", "", "new-revision")
    degraded = AppState("Degraded", "", "bad-revision")
    assert revisions([(prod, waiting)], []) == []
    got = revisions([(prod, synced), (eu, waiting)], [])
    assert got == [
        ApplicationRevision(namespace="argocd", name="shop-prod", revision="new-revision")
    ]
    # A later poll keeps what was seen and adds the rest; Waiting never overwrites it.
    got = revisions([(prod, waiting), (eu, degraded)], got)
    assert [(r.name, r.revision) for r in got] == [
        ("shop-prod", "new-revision"),
        ("shop-eu", "bad-revision"),
    ]
