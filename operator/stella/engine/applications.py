"""Argo CD Applications as an Environment's targets (issue 14): the reads and writes of a
promotion through them. Stella sets each Application's image override — the kustomize
images, or for a Helm source the parameters the target names (as Argo CD Image Updater
writes back) — instead of patching a Deployment Argo CD owns, so Argo CD's self-heal never
undoes it; whether it took is what the Application's status says
(policy.application.judge)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stella.engine import kubeio
from stella.models import EnvironmentSpec, ReleaseSpec
from stella.models.environment import ApplicationTarget
from stella.models.release import ApplicationRevision, WorkloadImage
from stella.policy.application import (
    AppState,
    app_parameters,
    images_of,
    judge,
    override,
    parameter,
    previous,
    restore,
    restore_parameter,
    set_parameter,
)

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


def helm_parameters(a: ApplicationTarget) -> dict[str, str]:
    """component -> the Helm parameter holding its image ({} for a kustomize override)."""
    return {h.component: h.parameter for h in a.helm_parameters}


def unmapped(apps: Sequence[ApplicationTarget], spec: ReleaseSpec) -> list[str]:
    """Components a Helm target names no parameter for: nothing can be set for them."""
    return [
        f"component {c.name} has no Helm parameter in the target for Argo CD Application "
        f"{a.namespace}/{a.name} (add it to helmParameters)"
        for a in apps
        if a.helm_parameters
        for c in spec.components
        if c.name not in helm_parameters(a)
    ]


def before(
    apps: Sequence[ApplicationTarget], current: Mapping[AppKey, Any], spec: ReleaseSpec
) -> list[WorkloadImage]:
    """The override entries (or Helm parameter values) the Release replaces: what a
    rollback puts back."""
    out = []
    for a in apps:
        app, params = current[(a.namespace, a.name)], helm_parameters(a)
        for c in spec.components:
            was = (
                parameter(app_parameters(app), params[c.name])
                if params
                else previous(images_of(app), c.image)
            )
            out.append(
                WorkloadImage(
                    namespace=a.namespace, kind=KIND, name=a.name, container=c.name, image=was
                )
            )
    return out


def write(apps: Sequence[ApplicationTarget], spec: ReleaseSpec) -> None:
    """Set every component's pinned image in every Application's override (a no-op when
    it is already there)."""
    for a in apps:
        app = kubeio.get_application(a.namespace, a.name)
        if app is None:
            continue
        params = helm_parameters(a)
        if params:
            have = app_parameters(app)
            want = have
            for c in spec.components:
                want = set_parameter(want, params[c.name], c.image)
            if want != have:
                kubeio.patch_application_source(a.namespace, a.name, {"helm": {"parameters": want}})
            continue
        images = images_of(app)
        wanted = images
        for c in spec.components:
            wanted = override(wanted, c.image)
        if wanted != images:
            kubeio.patch_application_source(a.namespace, a.name, {"kustomize": {"images": wanted}})


def put_back(
    apps: Sequence[ApplicationTarget], previous_images: Sequence[WorkloadImage], spec: ReleaseSpec
) -> None:
    """Rollback: each Application's override as it was before (Stella's entries or
    parameters removed where there were none)."""
    images_by_component = {c.name: c.image for c in spec.components}
    params_of = {(a.namespace, a.name): helm_parameters(a) for a in apps}
    by_app: dict[AppKey, list[WorkloadImage]] = {}
    for w in previous_images:
        if w.kind == KIND:
            by_app.setdefault((w.namespace, w.name), []).append(w)
    for (ns, name), entries in by_app.items():
        app = kubeio.get_application(ns, name)
        if app is None:
            continue
        params = params_of.get((ns, name)) or {}
        if params:
            values = app_parameters(app)
            for w in entries:
                if w.container in params:
                    values = restore_parameter(values, params[w.container], w.image)
            kubeio.patch_application_source(ns, name, {"helm": {"parameters": values}})
            continue
        images = images_of(app)
        for w in entries:
            image = images_by_component.get(w.container)
            if image is not None:
                images = restore(images, image, w.image)
        kubeio.patch_application_source(ns, name, {"kustomize": {"images": images}})


def states(
    apps: Sequence[ApplicationTarget], current: Mapping[AppKey, Any], spec: ReleaseSpec
) -> list[tuple[ApplicationTarget, AppState]]:
    out = []
    for a in apps:
        if (a.namespace, a.name) not in current:
            continue
        params = helm_parameters(a)
        wanted = [] if params else [c.image for c in spec.components]
        values = {params[c.name]: c.image for c in spec.components if c.name in params}
        out.append((a, judge(current[(a.namespace, a.name)], wanted, values)))
    return out


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
