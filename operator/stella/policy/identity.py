"""Who a person is, as the API server authenticated them: the only identity type in Stella.

Kubernetes objects do not say who created them; only the admission request does
(`userInfo`). Admission records the requester of a Release and the approver of an
Approval at CREATE; everything downstream reads identity through `recorded_identity`,
the one function that knows where that record lives. The admission issue changes that
one function (and nothing else) when it starts stamping identities.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from stella.models.common import USERNAME_MAX
from stella.policy.stamps import annotation, json_object

Role = Literal["requester", "approver", "actor"]

# Where admission records identities: one annotation per role holding
# {"username": ..., "uid": ..., "groups": [...]} as JSON. The requester of a Release, the
# approver of an Approval, the actor of an Action.
IDENTITY_ANNOTATIONS: Mapping[Role, str] = {
    "requester": "stella.io/requester",
    "approver": "stella.io/approver",
    "actor": "stella.io/actor",
}


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user: `userInfo.username`, `userInfo.uid`, `userInfo.groups`."""

    username: str
    uid: str = ""
    groups: frozenset[str] = field(default_factory=frozenset)

    def person_keys(self) -> tuple[tuple[str, str], ...]:
        """What makes two identities one person: the username, and the uid when there is
        one (a renamed account is still one person). policy/approvals.tally follows these
        keys across every identity on a Release's decisions."""
        name = ("name", self.username)
        return (name, ("uid", self.uid)) if self.uid else (name,)

    def same_person(self, other: Identity) -> bool:
        """Same username, or the same non-empty uid."""
        return not set(self.person_keys()).isdisjoint(other.person_keys())

    def in_any(self, groups: frozenset[str] | set[str] | tuple[str, ...] | list[str]) -> bool:
        return not self.groups.isdisjoint(groups)


def recorded_identity(obj: Mapping[str, Any], role: Role) -> Identity | None:
    """The identity recorded on a Release (`requester`), an Approval (`approver`) or an
    Action (`actor`).

    THE single place identity is read from a Kubernetes object. It returns None when no
    usable record exists; a None approver never counts, a None actor never acts, and a None
    requester makes every approval refuse (we cannot prove the approver is someone else).

    The record is the JSON annotation named in IDENTITY_ANNOTATIONS. Admission writes it
    from `userInfo` at CREATE and refuses every other writer, the operator included
    (stella.admission.identity).
    """
    raw = annotation(obj, IDENTITY_ANNOTATIONS[role])
    return parse_identity(raw) if raw is not None else None


def parse_identity(raw: str) -> Identity | None:
    """Parse the recorded JSON form; anything malformed is None (never a partial identity).

    A username longer than USERNAME_MAX is None too (admission refuses to stamp one, so
    only a stamp written before that rule has one): status and evidence hold at most that
    many characters, and a name cut short would be someone else's. A group longer than
    that is left out: approverGroups cannot name it (253 characters at most), and evidence
    records the rest."""
    data = json_object(raw)
    if data is None:
        return None
    username = data.get("username")
    uid = data.get("uid", "")
    groups = data.get("groups", [])
    if not isinstance(username, str) or not username.strip():
        return None
    if not isinstance(uid, str) or not isinstance(groups, list):
        return None
    if not all(isinstance(g, str) for g in groups):
        return None
    if len(username) > USERNAME_MAX:
        return None
    return Identity(
        username=username, uid=uid, groups=frozenset(g for g in groups if len(g) <= USERNAME_MAX)
    )


def format_identity(identity: Identity) -> str:
    """The JSON form `recorded_identity` reads (what admission writes)."""
    return json.dumps(
        {"username": identity.username, "uid": identity.uid, "groups": sorted(identity.groups)},
        separators=(",", ":"),
        sort_keys=True,
    )
