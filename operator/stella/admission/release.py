"""Release admission: pinned digests, allowed registries, existing environments, allowed
namespace, immutability, the requester recorded at CREATE that nobody changes afterwards,
and rollbacks: a Release that names an earlier one (stella.io/rollback-of) is admitted
only for one Environment, from a person holding the `rollback` verb there, naming a
Release the Environment's history shows Deployed, with exactly its components."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from stella.admission._util import (
    annotations_of,
    clip,
    environment_spec,
    mapping,
    metadata,
    namespace_labels,
    parse_model,
    requires_graph,
    schema_message,
    spec_of,
)
from stella.admission.authz import verb_denied
from stella.admission.base import (
    IDENTITY_TAMPERING,
    IDENTITY_TAMPERING_SIGNAL,
    RELEASE_DIGEST_PINNED,
    RELEASE_ENVIRONMENT_INVALID,
    RELEASE_IMAGE_INVALID,
    RELEASE_IMMUTABLE,
    RELEASE_NAMESPACE_NOT_ALLOWED,
    RELEASE_REGISTRY_NOT_ALLOWED,
    RELEASE_ROLLBACK_INVALID,
    RELEASE_ROLLBACK_UNAUTHORIZED,
    RELEASE_UNKNOWN_ENVIRONMENT,
    SCHEMA,
    SECRET_LITERAL,
    UNAUTHORIZED_ACTION,
    AdmissionPolicy,
    Request,
    Snapshot,
    Verdict,
    allow,
    deny,
)
from stella.admission.identity import identity_changes, recorded_at_create
from stella.models.action import ROLLBACK_VERB
from stella.models.common import PINNED_IMAGE
from stella.models.environment import EnvironmentSpec, EnvironmentStatus
from stella.models.release import ReleaseSpec
from stella.policy.path import PathError, path_for
from stella.policy.rollback import ROLLBACK_OF, check_rollback_release
from stella.registry.errors import InvalidImageReference
from stella.registry.reference import ImageRef, parse_image_ref, registry_in
from stella.secrets.refs import looks_like_secret

PINNED = re.compile(PINNED_IMAGE)


@functools.lru_cache(maxsize=4096)
def _parse_image(image: str) -> ImageRef:
    return parse_image_ref(image)


def unpinned_image(spec: object) -> Verdict | None:
    """Before the schema: a precise refusal for the most common mistake, a tag not a digest."""
    components = mapping(spec).get("components")
    if not isinstance(components, list):
        return None
    for i, component in enumerate(components):
        image = mapping(component).get("image")
        if isinstance(image, str) and not PINNED.fullmatch(image):
            return deny(
                RELEASE_DIGEST_PINNED,
                clip(
                    f"spec.components[{i}].image {image[:200]!r} is not pinned by digest; "
                    "write it as repo@sha256:<64 lowercase hex> (resolve a tag once with "
                    "`stella release create --from-tags` or `crane digest <image>`)"
                ),
            )
    return None


def validate_release(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    if req.operation == "CREATE":
        return _create(req, snap, policy)
    if req.operation == "UPDATE":
        return _update(req)
    return allow()  # DELETE: RBAC decides who may withdraw a Release


def _update(req: Request) -> Verdict:
    changed = identity_changes(req.old, req.obj)
    if changed:
        return deny(
            IDENTITY_TAMPERING,
            f"{', '.join(changed)} changed: the requester of a Release and its rollback "
            f"request are recorded by Stella at creation and never change; "
            f"{req.user.username} may not change them: revert the change",
            IDENTITY_TAMPERING_SIGNAL,
        )
    if spec_of(req.old) != spec_of(req.obj):
        return deny(
            RELEASE_IMMUTABLE,
            "a Release is immutable: its spec cannot change after creation; create a new "
            "Release (a new name, e.g. with the new version in it) for a new version",
        )
    return allow()


def _create(req: Request, snap: Snapshot, policy: AdmissionPolicy) -> Verdict:
    raw_spec = spec_of(req.obj)
    unpinned = unpinned_image(raw_spec)
    if unpinned is not None:
        return unpinned
    identity = recorded_at_create(req, snap)
    if identity is not None:
        return identity
    parsed = parse_model(ReleaseSpec, raw_spec)
    if not isinstance(parsed, ReleaseSpec):
        return deny(SCHEMA, schema_message("Release", parsed))
    spec = parsed
    if spec.description and looks_like_secret(spec.description):
        return deny(
            SECRET_LITERAL,
            "spec.description looks like a credential; remove it: secrets never go into a "
            "Release (store them in Vault and reference them as vault:<mount>/<path>#<key>)",
        )
    images: list[tuple[int, ImageRef]] = []
    for i, component in enumerate(spec.components):
        try:
            images.append((i, _parse_image(component.image)))
        except InvalidImageReference as exc:
            return deny(
                RELEASE_IMAGE_INVALID,
                clip(f"spec.components[{i}].image: {exc.message}; fix the image reference"),
            )
    envs: dict[str, EnvironmentSpec] = {}
    missing: list[str] = []
    for name in spec.environments:
        found = environment_spec(snap, name)
        if found is None:
            missing.append(name)
        elif isinstance(found, str):
            return deny(
                RELEASE_ENVIRONMENT_INVALID,
                clip(
                    f"Environment {name} is stored with an invalid spec ({found}); "
                    f"fix Environment {name} first"
                ),
            )
        else:
            envs[name] = found
    if missing:
        names = ", ".join(missing)
        return deny(
            RELEASE_UNKNOWN_ENVIRONMENT,
            f"Environment {names} does not exist: create Environment {names} first or fix "
            "spec.environments",
        )
    namespace = req.namespace or str(mapping(mapping(req.obj).get("metadata")).get("namespace", ""))
    ns_denial = _namespace_allowed(snap, namespace, envs)
    if ns_denial is not None:
        return ns_denial
    warnings: list[str] = []
    for name, env in envs.items():
        if not env.allowed_registries:
            warnings.append(
                f"Environment {name} sets no allowedRegistries, so images from any registry "
                f"are accepted; set spec.allowedRegistries of {name} to restrict them"
            )
            continue
        allowed = registry_in(env.allowed_registries)
        for i, ref in images:
            if not allowed(ref.registry):
                return deny(
                    RELEASE_REGISTRY_NOT_ALLOWED,
                    clip(
                        f"spec.components[{i}].image comes from registry {ref.registry}, which "
                        f"Environment {name} does not allow (allowed: "
                        f"{', '.join(env.allowed_registries)}); push the image to an allowed "
                        f"registry, or ask the platform team to add {ref.registry} to "
                        f"spec.allowedRegistries of {name}"
                    ),
                )
    if ROLLBACK_OF in annotations_of(req.obj):
        refused = _rollback(req, snap, policy, namespace, spec)
        if refused is not None:
            return refused
    else:
        warnings.extend(_path_warning(snap, spec.environments))
    return allow(warnings)


def _rollback(
    req: Request, snap: Snapshot, policy: AdmissionPolicy, namespace: str, spec: ReleaseSpec
) -> Verdict | None:
    of = annotations_of(req.obj)[ROLLBACK_OF]
    if not isinstance(of, str) or not of:
        return deny(RELEASE_ROLLBACK_INVALID, f"{ROLLBACK_OF} must name NAMESPACE/RELEASE")
    ns, _, name = of.partition("/") if "/" in of else (namespace, "/", of)
    of = f"{ns}/{name}"
    if len(spec.environments) != 1:
        return deny(
            RELEASE_ROLLBACK_INVALID,
            f"a rollback Release targets exactly one Environment (it re-enters one); this one "
            f"targets {', '.join(spec.environments)}: use `stella rollback ENV --to {of}`",
        )
    env_name = spec.environments[0]
    denied = verb_denied(
        req,
        policy,
        ROLLBACK_VERB,
        env_name,
        RELEASE_ROLLBACK_UNAUTHORIZED,
        f"roll {env_name} back to {of}",
    )
    if denied is not None:
        return denied
    env_body = snap.environments.get(env_name) or {}
    try:
        history = EnvironmentStatus.model_validate(mapping(env_body).get("status") or {}).history
    except ValueError:
        history = []
    target = snap.releases.get((ns, name))
    uid = metadata(target).get("uid") if target is not None else None
    problem = check_rollback_release(
        env_name,
        history,
        uid if isinstance(uid, str) else None,
        mapping(spec_of(target)).get("components") if target is not None else None,
        mapping(spec_of(req.obj)).get("components"),
        of,
    )
    if problem is not None:
        # A rollback skips the path's prerequisites: one that names what never ran here is
        # an attempt around the gates, and counted as such.
        return deny(RELEASE_ROLLBACK_INVALID, clip(problem), UNAUTHORIZED_ACTION)
    return None


def _namespace_allowed(
    snap: Snapshot, namespace: str, envs: Mapping[str, EnvironmentSpec]
) -> Verdict | None:
    return namespace_denial(
        snap, namespace, envs, RELEASE_NAMESPACE_NOT_ALLOWED, "create the Release in an allowed"
    )


def namespace_denial(
    snap: Snapshot, namespace: str, envs: Mapping[str, EnvironmentSpec], rule: str, fix: str
) -> Verdict | None:
    """A refusal (`rule`) when `namespace` may not release into one of `envs` (their
    spec.releaseNamespaces), or when it is not known yet; `fix` starts the advice, e.g.
    "create the Release in an allowed"."""
    selected = {n: e.release_namespaces for n, e in envs.items() if e.release_namespaces}
    if not selected:
        return None
    labels, known = namespace_labels(snap, namespace)
    for name, selector in selected.items():
        if selector.matches(labels):
            continue
        if not known:
            return deny(
                rule,
                f"namespace {namespace} is not known to Stella yet, so it cannot be matched "
                f"against spec.releaseNamespaces of Environment {name}; retry in a few seconds",
            )
        return deny(
            rule,
            clip(
                f"namespace {namespace} may not release into Environment {name}: its labels do "
                f"not match spec.releaseNamespaces of {name} "
                f"({selector.wire()}); {fix} namespace, or ask the "
                f"platform team to label namespace {namespace} or change Environment {name}"
            ),
        )
    return None


def _path_warning(snap: Snapshot, targeted: list[str]) -> list[str]:
    graph = requires_graph(snap)
    try:
        path_for(targeted, graph)
    except PathError as exc:
        return [f"this Release cannot complete its path: {exc.message}"]
    return []
