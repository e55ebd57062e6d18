"""Re-enabling a quarantined plugin: a person's act, never a field anyone can write.

The person writes the annotation `stella.io/reenable` on the Plugin (stella plugin
reenable NAME --reason ... does it), naming the quarantine it lifts (its `since`), their
own identity as the API server authenticates them, and why. Admission refuses the write
unless the identity is exactly the sender's (userInfo) and the sender holds the verb
`reenable` on plugins/NAME (a SubjectAccessReview); the engine lifts a quarantine only
when the annotation names that very quarantine. A later quarantine is never pre-lifted.
Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stella.policy.identity import Identity, format_identity, parse_identity

REENABLE_ANNOTATION = "stella.io/reenable"
REENABLE_VERB = "reenable"


@dataclass(frozen=True)
class Reenable:
    by: Identity
    quarantine: str  # the quarantine's since, as status wrote it
    reason: str

    def wire(self) -> str:
        return json.dumps(
            {"by": format_identity(self.by), "quarantine": self.quarantine, "reason": self.reason},
            sort_keys=True,
        )


def parse_reenable(raw: object) -> Reenable | None:
    if not isinstance(raw, str):
        return None
    try:
        doc = json.loads(raw)
        by = parse_identity(str(doc["by"]))
        quarantine, reason = str(doc["quarantine"]), str(doc.get("reason") or "")
    except (ValueError, KeyError, TypeError):
        return None
    return Reenable(by, quarantine, reason) if by is not None else None


def reenable_of(body: Mapping[str, Any]) -> Reenable | None:
    ann = (body.get("metadata") or {}).get("annotations") or {}
    return parse_reenable(ann.get(REENABLE_ANNOTATION))


def quarantine_since(body: Mapping[str, Any]) -> str | None:
    q = (body.get("status") or {}).get("quarantine")
    since = q.get("since") if isinstance(q, Mapping) else None
    return str(since) if since else None


def quarantined_modules(plugins: Sequence[Mapping[str, Any]], except_name: str) -> dict[str, str]:
    """module digest -> the quarantined Plugin (other than `except_name`) that ran it: a
    quarantine holds for the module under any name."""
    out: dict[str, str] = {}
    for body in plugins:
        name = str((body.get("metadata") or {}).get("name") or "")
        q = (body.get("status") or {}).get("quarantine")
        if name != except_name and isinstance(q, Mapping) and quarantined(body):
            digest = q.get("moduleDigest")
            if isinstance(digest, str) and digest:
                out[digest] = name
    return out


def quarantined(body: Mapping[str, Any]) -> bool:
    """True while the Plugin's quarantine stands: set, and not lifted by a re-enable that
    names it (admission checked who wrote that)."""
    since = quarantine_since(body)
    if since is None:
        return False
    r = reenable_of(body)
    return r is None or r.quarantine != since
