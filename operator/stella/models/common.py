"""Building blocks shared by every Stella custom resource.

Field names are camelCase on the wire (Kubernetes API conventions) and snake_case in
Python; every model forbids unknown fields so that a typo is an error, not a no-op.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

# RFC 1123 label: what Kubernetes accepts for namespace and most object names.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# RFC 1123 subdomain: object names of Releases and Environments.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# An image pinned by digest. The tag, if any, is allowed before the digest
# (repo:tag@sha256:...) because the digest alone decides what runs.
PINNED_IMAGE = r"^[^@\s]+@sha256:[a-f0-9]{64}$"
SHA256_HEX = r"^[a-f0-9]{64}$"
# A typed Vault reference: vault:<mount>/<path>#<key>. Never a literal secret.
VAULT_REF = r"^vault:[A-Za-z0-9_-]+(/[A-Za-z0-9._-]+)+#[A-Za-z0-9._-]+$"
# Registry host with an optional port, as in an image reference.
REGISTRY_HOST = r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$"
# Go-style durations as Kubernetes users write them: 90s, 10m, 1h30m, 62h.
DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
# IPv4 or IPv6 CIDR; the hub parses it (ipaddress) and treats a bad one as matching nothing.
CIDR = r"^[0-9a-fA-F:.]+/[0-9]{1,3}$"
CONDITION_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
QUALIFIED_NAME = r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"

Name = Annotated[str, Field(pattern=DNS_SUBDOMAIN, min_length=1, max_length=63)]
# The longest username or group name Stella records (status, evidence). Kubernetes sets no
# limit, and real ones pass 253: a service account's is system:serviceaccount:NS:NAME, up to
# 339 characters, and an OIDC one can be an issuer URL and a 255-character subject.
# Admission refuses a longer username at CREATE (stella.admission.identity); a longer group
# could not be named by approverGroups anyway and is not read (stella.policy.identity).
USERNAME_MAX = 1024
Username = Annotated[str, Field(max_length=USERNAME_MAX)]
NamespaceName = Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)]
_VAULT_REF = re.compile(VAULT_REF)


def _vault_ref(value: str) -> str:
    # Never echo the value: where a reference belongs, a mistake is often the secret itself.
    if not _VAULT_REF.fullmatch(value):
        raise ValueError(
            "must be a Vault reference vault:<mount>/<path>#<key>; store the value in Vault "
            "(bao kv put secret/<path> <key>=...) and write the reference here"
        )
    return value


# No schema `pattern` here: the API server's error would quote the rejected value —
# possibly a pasted secret — back to the client and into its audit log, and so would a
# CEL rule on the string itself. The object holding the reference carries the CEL rule
# (vault_ref_rule), whose failure shows only "object".
VaultRef = Annotated[str, Field(max_length=512), AfterValidator(_vault_ref)]


def vault_ref_rule(field: str) -> dict[str, JsonValue]:
    """The CEL rule an object with an optional VaultRef field puts on itself."""
    return {
        "rule": f"!has(self.{field}) || self.{field}.matches('{VAULT_REF}')",
        "message": f"{field} must be a Vault reference vault:<mount>/<path>#<key>; store the "
        "value in Vault (bao kv put secret/<path> <key>=...) and write the reference here",
    }


Duration = Annotated[str, Field(pattern=DURATION, max_length=32)]
LabelKey = Annotated[str, Field(max_length=317)]
LabelValue = Annotated[str, Field(max_length=63)]


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def rfc3339(ts: datetime) -> str:
    """UTC, to the second, with Z (a naive time is taken as UTC, as Kubernetes writes
    times, not as this machine's local time)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StrictModel(BaseModel):
    """Base of every wire model: camelCase aliases, unknown fields refused."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_assignment=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as it goes to the API server: camelCase, no unset optionals."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class LabelSelectorRequirement(StrictModel):
    """One label requirement: a key, an operator and (for In/NotIn) values."""

    key: LabelKey = Field(description="The label key the requirement applies to, e.g. team.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="In or NotIn (the label's value is / is not one of values), Exists or "
        "DoesNotExist (the label is / is not set; leave values empty)."
    )
    values: list[LabelValue] = Field(
        default_factory=list,
        max_length=64,
        description="The values for In and NotIn; empty for Exists and DoesNotExist.",
    )


class LabelSelector(StrictModel):
    """The standard Kubernetes label selector (an empty selector matches everything)."""

    match_labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        max_length=32,
        description="Labels that must all be present with exactly these values, e.g. "
        "{team: shop}. Combined with matchExpressions by AND.",
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list,
        max_length=16,
        description="Requirements that must all hold, e.g. {key: tier, operator: In, "
        "values: [web, api]}. Combined with matchLabels by AND.",
    )

    def matches(self, labels: dict[str, str]) -> bool:
        for key, value in self.match_labels.items():
            if labels.get(key) != value:
                return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "In" and (not present or labels[req.key] not in req.values):
                return False
            if req.operator == "NotIn" and present and labels[req.key] in req.values:
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StrictModel):
    """metav1.Condition, field for field."""

    type: Annotated[str, Field(max_length=316, pattern=QUALIFIED_NAME)] = Field(
        description="What the condition is about. Ready is the summary that `kubectl wait "
        "--for=condition=Ready` and Argo CD health checks read."
    )
    status: ConditionStatus = Field(
        description="True, False or Unknown: whether the condition holds right now."
    )
    reason: Annotated[str, Field(max_length=1024, pattern=CONDITION_REASON)] = Field(
        description="A CamelCase word saying why (e.g. ApprovalsMissing, FreezeWindowActive); "
        "docs/concepts.md lists each reason and what to do about it."
    )
    message: Annotated[str, Field(max_length=32768)] = Field(
        default="",
        description="For people: what is happening and what to do next.",
    )
    last_transition_time: datetime = Field(
        description="When status last changed (not when the condition was last checked)."
    )
    observed_generation: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="The metadata.generation this condition was computed from; older than "
        "the object's generation means the operator has not caught up with an edit yet.",
    )


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str = "",
    observed_generation: int | None = None,
) -> list[Condition]:
    """Return conditions with one upserted; lastTransitionTime moves only on a status change."""
    out: list[Condition] = []
    found = False
    for cond in conditions:
        if cond.type != type_:
            out.append(cond)
            continue
        found = True
        moved = cond.status != status
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now() if moved else cond.last_transition_time,
                observed_generation=observed_generation,
            )
        )
    if not found:
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now(),
                observed_generation=observed_generation,
            )
        )
    return out


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time as the API server writes it (a datetime passes through), always
    timezone-aware (UTC when none is given); None when it is not one."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
