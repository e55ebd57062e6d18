"""Argo CD Applications as an Environment's targets (issue 14): the reads and writes of a
promotion through them. Stella sets each Application's kustomize image override (as Argo
CD Image Updater writes back) instead of patching a Deployment Argo CD owns, so Argo CD's
self-heal never undoes it; whether it took is what the Application's status says
(policy.application.judge)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stella.engine import kubeio
from stella.models import EnvironmentSpec, ReleaseSpec
from stella.models.environment import ApplicationTarget
from stella.models.release import ApplicationRevision, WorkloadImage
from stella.policy.application import AppState, images_of, judge, override, previous, restore

KIND = "Application"
AppKey = tuple[str, str]


def targets(env: EnvironmentSpec) -> list[ApplicationTarget]:
    return [t.application for t in env.targets if t.application is not None]


def read(apps: Sequence[ApplicationTarget]) -> dict[AppKey, dict[str, Any]]:
    out = {}
    for a in apps:
        body = kubeio.get_application(a.namespace, a.name)
        if body is not None:
            out[(a.namespace, a.name)] = body
    return out


def missing(apps: Sequence[ApplicationTarget], current: Mapping[AppKey, Any]) -> list[str]:
    return [
        f"Argo CD Application {a.namespace}/{a.name} does not exist"
        for a in apps
        if (a.namespace, a.name) not in current
    ]


def before(
    apps: Sequence[ApplicationTarget], current: Mapping[AppKey, Any], spec: ReleaseSpec
) -> list[WorkloadImage]:
    """The override entries the Release replaces: what a rollback puts back."""
    return [
        WorkloadImage(
            namespace=a.namespace,
            kind=KIND,
            name=a.name,
            container=c.name,
            image=previous(images_of(current[(a.namespace, a.name)]), c.image),
        )
        for a in apps
        for c in spec.components
    ]


def write(apps: Sequence[ApplicationTarget], spec: ReleaseSpec) -> None:
    """Set every component's pinned image in every Application's override (a no-op when
    it is already there)."""
    for a in apps:
        app = kubeio.get_application(a.namespace, a.name)
        if app is None:
            continue
        images = images_of(app)
        wanted = images
        for c in spec.components:
            wanted = override(wanted, c.image)
        if wanted != images:
            kubeio.set_application_images(a.namespace, a.name, wanted)


def put_back(previous_images: Sequence[WorkloadImage], spec: ReleaseSpec) -> None:
    """Rollback: each Application's override as it was before (Stella's entries removed
    where there was none)."""
    images_by_component = {c.name: c.image for c in spec.components}
    by_app: dict[AppKey, list[WorkloadImage]] = {}
    for w in previous_images:
        if w.kind == KIND:
            by_app.setdefault((w.namespace, w.name), []).append(w)
    for (ns, name), entries in by_app.items():
        app = kubeio.get_application(ns, name)
        if app is None:
            continue
        images = images_of(app)
        for w in entries:
            image = images_by_component.get(w.container)
            if image is not None:
                images = restore(images, image, w.image)
        kubeio.set_application_images(ns, name, images)


def states(
    apps: Sequence[ApplicationTarget], current: Mapping[AppKey, Any], spec: ReleaseSpec
) -> list[tuple[ApplicationTarget, AppState]]:
    wanted = [c.image for c in spec.components]
    return [
        (a, judge(current[(a.namespace, a.name)], wanted))
        for a in apps
        if (a.namespace, a.name) in current
    ]


def revisions(
    states: Sequence[tuple[ApplicationTarget, AppState]], known: Sequence[ApplicationRevision]
) -> list[ApplicationRevision]:
    """`known`, updated with the revision of each Application that has compared against
    this override (Synced or Degraded; not while Waiting)."""
    out = {(r.namespace, r.name): r for r in known}
    for a, s in states:
        if s.state != "Waiting":
            out[(a.namespace, a.name)] = ApplicationRevision(
                namespace=a.namespace, name=a.name, revision=s.revision[:128]
            )
    return list(out.values())


def describe(apps: Sequence[ApplicationTarget]) -> str:
    return ", ".join(f"Argo CD Application {a.namespace}/{a.name}" for a in apps)
