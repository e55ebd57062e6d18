"""The Argo CD Application part of a promotion's evidence (issue 14), pure: for each
Application, every component's override entry before and after, and the revision Argo CD
reported once it compared against the new override."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from stella.evidence.packet import ApplicationEvidence, OverrideChange
from stella.models.release import Component, WorkloadImage

APPLICATION = "Application"


def application_evidence(
    previous: Sequence[WorkloadImage],
    components: Sequence[Component],
    revisions: Mapping[str, str] | None = None,
) -> list[ApplicationEvidence] | None:
    """`previous`: the entries a promotion replaced (the Release status' previousImages of
    kind Application: container = the component, image = the entry before, '' none);
    `revisions`: "namespace/name" -> the revision Argo CD synced. None when the promotion
    went through no Application, so other packets stay as they were."""
    after = {c.name: c.image for c in components}
    apps: dict[tuple[str, str], list[OverrideChange]] = {}
    for w in previous:
        if w.kind != APPLICATION or w.container not in after:
            continue
        apps.setdefault((w.namespace, w.name), []).append(
            OverrideChange(component=w.container, before=w.image, after=after[w.container])
        )
    if not apps:
        return None
    revisions = revisions or {}
    return [
        ApplicationEvidence(
            namespace=ns,
            name=name,
            changes=changes[:64],
            revision=revisions.get(f"{ns}/{name}", "")[:128],
        )
        for (ns, name), changes in sorted(apps.items())
    ][:32]
