"""SLSA provenance: who built an image, from which repository and revision.

Reads SLSA v1 (``https://slsa.dev/provenance/v1``: ``runDetails.builder.id``,
``buildDefinition.resolvedDependencies``/``externalParameters``) and v0.2
(``https://slsa.dev/provenance/v0.2``: ``builder.id``, ``invocation.configSource``,
``materials``). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SLSA_V1 = "https://slsa.dev/provenance/v1"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
PROVENANCE_TYPES = (SLSA_V1, SLSA_V02)
_REVISION_KEYS = ("gitCommit", "sha1", "sha256")


@dataclass(frozen=True)
class Provenance:
    builder_id: str
    source_repository: str | None  # normalized: no git+ prefix, no @ref, no .git
    source_revision: str | None  # the commit, when the provenance names one


def normalize_repository(uri: str) -> str:
    """``git+https://github.com/acme/shop.git@refs/heads/main`` -> ``https://github.com/acme/shop``."""
    out = uri.strip().removeprefix("git+")
    scheme, sep, rest = out.partition("://")
    if sep and "@" in rest:
        rest = rest.split("@", 1)[0]
    out = f"{scheme}{sep}{rest}" if sep else out.split("@", 1)[0]
    return out.removesuffix("/").removesuffix(".git")


def _revision(digest: Any) -> str | None:
    if isinstance(digest, Mapping):
        for k in _REVISION_KEYS:
            v = digest.get(k)
            if isinstance(v, str) and v:
                return v
    return None


def _source_v1(predicate: Mapping[str, Any]) -> tuple[str | None, str | None]:
    definition = predicate.get("buildDefinition") or {}
    deps = definition.get("resolvedDependencies") or []
    for d in deps if isinstance(deps, list) else []:
        uri = d.get("uri") if isinstance(d, Mapping) else None
        if isinstance(uri, str) and uri.startswith("git+"):
            return normalize_repository(uri), _revision(d.get("digest"))
    params = definition.get("externalParameters") or {}
    for key in ("source", "workflow"):
        src = params.get(key) if isinstance(params, Mapping) else None
        uri = src.get("repository") if isinstance(src, Mapping) else src
        if isinstance(uri, str) and uri:
            return normalize_repository(uri), None
    return None, None


def _source_v02(predicate: Mapping[str, Any]) -> tuple[str | None, str | None]:
    invocation = predicate.get("invocation") or {}
    config = invocation.get("configSource") if isinstance(invocation, Mapping) else None
    if isinstance(config, Mapping) and isinstance(config.get("uri"), str):
        return normalize_repository(config["uri"]), _revision(config.get("digest"))
    for m in predicate.get("materials") or []:
        if isinstance(m, Mapping) and isinstance(m.get("uri"), str) and m["uri"].startswith("git+"):
            return normalize_repository(m["uri"]), _revision(m.get("digest"))
    return None, None


def read_provenance(predicate_type: str, predicate: Mapping[str, Any]) -> Provenance | None:
    """The builder and source of a provenance predicate; None when it names no builder."""
    if predicate_type == SLSA_V1:
        run = predicate.get("runDetails") or {}
        builder = (run.get("builder") or {}) if isinstance(run, Mapping) else {}
        repo, rev = _source_v1(predicate)
    elif predicate_type == SLSA_V02:
        builder = predicate.get("builder") or {}
        repo, rev = _source_v02(predicate)
    else:
        return None
    builder_id = builder.get("id") if isinstance(builder, Mapping) else None
    if not isinstance(builder_id, str) or not builder_id:
        return None
    return Provenance(builder_id=builder_id, source_repository=repo, source_revision=rev)


def builder_allowed(builder_id: str, allowed: Sequence[str]) -> bool:
    """Exact match, or a prefix match for an entry ending in ``*``
    (``https://github.com/acme/builders/.github/workflows/build.yml@*``)."""
    for a in allowed:
        if a.endswith("*") and builder_id.startswith(a[:-1]):
            return True
        if builder_id == a:
            return True
    return False


def source_allowed(repository: str | None, allowed: Sequence[str]) -> bool:
    if repository is None:
        return False
    mine = repository.lower()
    return any(normalize_repository(a).lower() == mine for a in allowed)
