"""What a decision is about: one Release, by UID and by the digest of its exact spec.

An Approval or a Promote Action names a Release by name, and names are reused: delete a
Release and create another of the same name with other images, and a decision bound by
name alone would count for content nobody looked at. Admission therefore stamps, at the
decision's CREATE, the Release's UID and the sha256 of its canonical spec
(`stella.io/bound-to`); the engine counts a decision only while both still match, and
the evidence of an approval names that digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stella.policy.stamps import annotation, json_object

BINDING_ANNOTATION = "stella.io/bound-to"


@dataclass(frozen=True, slots=True)
class Binding:
    uid: str
    spec_digest: str  # "sha256:<64 hex>"

    def matches(self, release: Mapping[str, Any]) -> bool:
        return self == binding_of(release)


def spec_digest(spec: Any) -> str:
    """sha256 over the canonical JSON of a Release spec (sorted keys, no spaces)."""
    raw = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()


def binding_of(release: Mapping[str, Any]) -> Binding | None:
    """The binding a decision on this Release gets; None without a UID (not stored yet)."""
    meta = release.get("metadata")
    uid = meta.get("uid") if isinstance(meta, Mapping) else None
    if not isinstance(uid, str) or not uid:
        return None
    return Binding(uid=uid, spec_digest=spec_digest(release.get("spec")))


def format_binding(binding: Binding) -> str:
    return json.dumps(
        {"uid": binding.uid, "specDigest": binding.spec_digest},
        separators=(",", ":"),
        sort_keys=True,
    )


def recorded_binding(obj: Mapping[str, Any]) -> Binding | None:
    """The binding admission stamped on an Approval or Action; None when absent/malformed."""
    return parse_binding(annotation(obj, BINDING_ANNOTATION))


def parse_binding(raw: object) -> Binding | None:
    data = json_object(raw)
    if data is None:
        return None
    uid, digest = data.get("uid"), data.get("specDigest")
    if not isinstance(uid, str) or not uid or not isinstance(digest, str):
        return None
    if not digest.startswith("sha256:") or len(digest) != 71:
        return None
    return Binding(uid=uid, spec_digest=digest)
