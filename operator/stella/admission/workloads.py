"""Workload admission in Stella-managed namespaces: pinned digests, and approved digests.

In a namespace labelled `<managed_namespace_label>=true`, every container, init container
and ephemeral container image of a Pod (or of the pod template of a Deployment,
ReplicaSet, StatefulSet, DaemonSet, Job or CronJob) must be pinned by digest. When an
Environment that targets the namespace sets requireApprovedDigests, each digest must also
be *approved for that environment*, which means exactly: some Release in the snapshot
lists an image with that digest in spec.components, and its status.environments entry
for that environment has phase Deploying or Deployed. The operator deploys only after
every gate passed, so this admits the operator's own rollout and nothing that skipped
the gates. With several such Environments targeting one namespace, the digest must be
approved for each of them.

On UPDATE only images the update introduces are judged, so a running workload whose
Release has since moved on can still be scaled, relabelled or have finalizers removed.
Bare Pods are checked too: that closes the bypass of creating a Pod directly, and Pods
created by controllers are checked again cheaply.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from stella.admission._util import clip, environment_spec, mapping, metadata, namespace_labels
from stella.admission.base import (
    UNAPPROVED_DIGEST,
    WORKLOAD_DIGEST_NOT_APPROVED,
    WORKLOAD_DIGEST_PINNED,
    WORKLOAD_ENVIRONMENT_INVALID,
    AdmissionPolicy,
    Body,
    Request,
    Snapshot,
    Verdict,
    allow,
    deny,
)
from stella.admission.index import digest_index
from stella.models.common import PINNED_IMAGE
from stella.policy.digest_buckets import digest_buckets

PINNED = re.compile(PINNED_IMAGE)

POD_SPEC_PATH: Mapping[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def pod_images(kind: str, obj: Body | None) -> list[tuple[str, object]]:
    """(where, image) for every container of the object's pod spec, in manifest order."""
    path = POD_SPEC_PATH.get(kind)
    if path is None:
        return []
    node: object = obj
    for part in path:
        node = mapping(node).get(part)
    pod = mapping(node)
    where_spec = ".".join(path)
    out: list[tuple[str, object]] = []
    for field in CONTAINER_LISTS:
        containers = pod.get(field)
        if not isinstance(containers, list):
            continue
        for i, container in enumerate(containers):
            c = mapping(container)
            name = c.get("name")
            label = f"{where_spec}.{field}[{name if isinstance(name, str) else i}]"
            out.append((label[:300], c.get("image")))
    return out


def digest_of(image: str) -> str:
    return image.rpartition("@")[2]


def validate_workload(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    if req.operation not in ("CREATE", "UPDATE"):
        return allow()
    namespace = req.namespace or str(metadata(req.obj).get("namespace", ""))
    labels, known = namespace_labels(snap, namespace)
    # The webhook's namespaceSelector sends only managed namespaces; a namespace the
    # snapshot has not seen yet is judged as managed (fail closed).
    if known and labels.get(policy.managed_namespace_label) != "true":
        return allow()
    before: set[str] = set()
    if req.operation == "UPDATE":
        before = {i for _, i in pod_images(req.kind, req.old) if isinstance(i, str)}
    fresh = [
        (w, i) for w, i in pod_images(req.kind, req.obj) if not (isinstance(i, str) and i in before)
    ]
    if not fresh:
        return allow()
    for where, image in fresh:
        if not isinstance(image, str) or not PINNED.fullmatch(image):
            shown = repr(image[:200]) if isinstance(image, str) else "(missing)"
            return deny(
                WORKLOAD_DIGEST_PINNED,
                clip(
                    f"{where}: image {shown} is not pinned by digest; namespace {namespace} "
                    "is managed by Stella, so images run only as repo@sha256:<digest>: "
                    "deploy them through a Release"
                ),
            )
    strict = _strict_environments(snap, namespace)
    if isinstance(strict, Verdict):
        return strict
    if not strict:
        return allow()
    index = digest_index(snap)
    for where, image in fresh:
        assert isinstance(image, str)
        digest = digest_of(image)
        for env in strict:
            if not index.approved(digest, env):
                return deny(
                    WORKLOAD_DIGEST_NOT_APPROVED,
                    clip(
                        f"{where}: digest {digest} was never approved for environment {env}; "
                        f"promote a Release containing it through {env} (namespace "
                        f"{namespace} runs only digests of Releases Deploying or Deployed "
                        f"in {env})"
                    ),
                    UNAPPROVED_DIGEST,
                )
    return allow()


# The parameter object of the workload-digests ValidatingAdmissionPolicy
# (charts/stella/files/admission-policies.yaml), one per managed namespace.
PARAMS_NAME = "stella-approved-digests"


def approved_digests_params(snap: Snapshot, namespace: str) -> dict[str, str]:
    """The data of `namespace`'s stella-approved-digests ConfigMap: what the policy in the
    API server needs to decide exactly as validate_workload does (see the policy's comment
    for the keys; stella.policy.digest_buckets for how the digests are listed)."""
    strict = _strict_environments(snap, namespace)
    if isinstance(strict, Verdict):
        return {"environments": "", "invalid": strict.message}
    data = {"environments": ",".join(sorted(strict))}
    if strict:
        data.update(digest_buckets(digest_index(snap).approved_in_all(strict)))
    return data


def _strict_environments(snap: Snapshot, namespace: str) -> list[str] | Verdict:
    """Environments targeting `namespace` with requireApprovedDigests (fail closed on bad ones)."""
    strict: list[str] = []
    for name, body in list(snap.environments.items()):
        spec = environment_spec(snap, name)
        if spec is None:
            continue
        if isinstance(spec, str):
            if _mentions(body, namespace):
                return deny(
                    WORKLOAD_ENVIRONMENT_INVALID,
                    clip(
                        f"Environment {name} targets namespace {namespace} but is stored with "
                        f"an invalid spec ({spec}); fix Environment {name} first"
                    ),
                )
            continue
        if spec.require_approved_digests and any(t.namespace == namespace for t in spec.targets):
            strict.append(name)
    return strict


def _mentions(body: Body, namespace: str) -> bool:
    targets = mapping(mapping(body).get("spec")).get("targets")
    if not isinstance(targets, list):
        return False
    return any(mapping(t).get("namespace") == namespace for t in targets)
