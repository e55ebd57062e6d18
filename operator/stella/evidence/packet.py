"""The evidence packet: an in-toto Statement v1 with a Stella predicate.

Subjects are the images (name + sha256 digest) or, for events about an object rather than
images (an agent registered, an environment halted), the object itself. The predicate
carries who/what/why: the Release, the Environment, the approvals (identity, groups, time),
the policy inputs and outcome, the operator version, and the chain link (sequence number
and the digest of the previous packet of the same chain).

Chains: each environment is one chain; cluster-scoped events (agents) form the chain
``_cluster``, a name no Environment can have.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import AfterValidator, Field, JsonValue, PrivateAttr, ValidationError

from stella.evidence.canonical import canonical_json, sha256_digest
from stella.evidence.errors import MalformedPacket
from stella.models.common import StrictModel, Username

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE: Final = "https://stella.io/evidence/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
CLUSTER_CHAIN = "_cluster"

EvidenceKind = Literal[
    "PromotionAuthorized",  # the decision to deploy, with every input; stored before deploying
    "PromotionDeployed",
    "PromotionFailed",
    "PromotionRolledBack",
    "DigestMismatch",
    "ApprovalCounted",
    "ApprovalRefused",
    "EnvironmentHalted",
    "EnvironmentCleared",
    "EnvironmentSuspended",
    "EnvironmentResumed",
    "PromotionRequested",  # a person's Promote action, authorized by the `promote` verb
    "ActionRefused",  # an admitted Action the operator could not carry out (and why)
    "AgentRegistered",
    "AgentRevoked",
    "SupplyChainRefused",  # an image failed requireSignatures/requireProvenance before deploy
    "PluginRun",  # one workflow plugin run: inputs, outcome, duration, resource use
    "PluginQuarantined",  # a run tried an undeclared capability
    "PluginReenabled",  # a person lifted a quarantine (the reenable verb)
]
EVIDENCE_KINDS: tuple[str, ...] = EvidenceKind.__args__  # type: ignore[attr-defined]

Hex64 = Annotated[str, Field(pattern=r"^[a-f0-9]{64}$")]
Digest = Annotated[str, Field(pattern=r"^sha256:[a-f0-9]{64}$")]
ShortText = Annotated[str, Field(max_length=253)]


def utc_seconds(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a time zone")
    return value.astimezone(UTC).replace(microsecond=0)


# Timestamps are UTC with second precision, so they serialize one way only.
UtcSeconds = Annotated[datetime, AfterValidator(utc_seconds)]


class Subject(StrictModel):
    """in-toto ResourceDescriptor, restricted to what Stella writes: name + sha256."""

    name: Annotated[str, Field(min_length=1, max_length=512)]
    digest: dict[Literal["sha256"], Hex64]


class ReleaseRef(StrictModel):
    namespace: ShortText
    name: ShortText
    uid: ShortText | None = None
    version: Annotated[str, Field(max_length=64)] | None = None
    # sha256 of the canonical spec (policy.binding): what exactly was decided on.
    spec_digest: Digest | None = None
    # The Release's metadata.creationTimestamp (set by the API server): where DORA's lead
    # time starts (evidence/dora.py). Absent in packets written before it was recorded.
    created_at: UtcSeconds | None = None


class AgentRef(StrictModel):
    name: ShortText
    fingerprint: Hex64 | None = None
    capabilities: list[ShortText] = Field(default_factory=list, max_length=64)


class ApprovalEvidence(StrictModel):
    approval: ShortText
    approver: Username
    groups: list[Username] = Field(default_factory=list, max_length=64)
    decision: Literal["Approve", "Reject"]
    at: UtcSeconds
    counted: bool
    reason: Annotated[str, Field(max_length=1024)] = ""


class PolicyEvidence(StrictModel):
    """The inputs the rules saw and what they decided (no secrets: checked on build)."""

    inputs: dict[str, JsonValue] = Field(default_factory=dict)
    outcome: Literal["Allowed", "Denied", "NotEvaluated"]
    reasons: list[Annotated[str, Field(max_length=1024)]] = Field(default_factory=list)


class CheckEvidence(StrictModel):
    """One verification check of a deployment as it ended (issue 14): what was asked is in
    the Environment's spec; this is what was seen."""

    name: Annotated[str, Field(max_length=63)]
    state: Annotated[str, Field(max_length=16)]
    samples: Annotated[int, Field(ge=0)] = 0
    message: Annotated[str, Field(max_length=1024)] = ""


class OverrideChange(StrictModel):
    """One component's entry in an Argo CD Application's image override: what Stella found
    there and what it wrote ('' before: there was none)."""

    component: Annotated[str, Field(max_length=63)]
    before: Annotated[str, Field(max_length=512)] = ""
    after: Annotated[str, Field(max_length=512)]


class ApplicationEvidence(StrictModel):
    """An Argo CD Application a promotion went through (issue 14): the override changes
    and, once Argo CD compared against the new override, the git revision it reported."""

    namespace: ShortText
    name: ShortText
    changes: list[OverrideChange] = Field(default_factory=list, max_length=64)
    revision: Annotated[str, Field(max_length=128)] = ""


class Outcome(StrictModel):
    result: Annotated[str, Field(max_length=64)]
    reason: Annotated[str, Field(max_length=128)] = ""
    message: Annotated[str, Field(max_length=4096)] = ""
    # Set only for Environments whose targets are Argo CD Applications (absent otherwise,
    # so other packets are byte for byte what they were).
    applications: list[ApplicationEvidence] | None = Field(default=None, max_length=32)
    # Set only when the Environment verifies deployments (absent otherwise, so packets
    # without verification are byte for byte what they were).
    verification_started_at: datetime | None = None
    checks: list[CheckEvidence] | None = Field(default=None, max_length=16)


class OperatorInfo(StrictModel):
    version: Annotated[str, Field(max_length=64)]
    instance: ShortText | None = None


class StellaPredicate(StrictModel):
    packet_id: Hex64
    event_id: Annotated[str, Field(min_length=1, max_length=512)]
    kind: EvidenceKind
    chain: ShortText
    environment: ShortText | None = None
    release: ReleaseRef | None = None
    agent: AgentRef | None = None
    actor: Username | None = None
    approvals: list[ApprovalEvidence] = Field(default_factory=list, max_length=64)
    policy: PolicyEvidence | None = None
    outcome: Outcome | None = None
    operator: OperatorInfo
    recorded_at: UtcSeconds
    sequence: Annotated[int, Field(ge=1)]
    previous_digest: Digest | None = None


class Statement(StrictModel):
    type_: Literal["https://in-toto.io/Statement/v1"] = Field(STATEMENT_TYPE, alias="_type")
    subject: list[Subject] = Field(min_length=1, max_length=64)
    predicate_type: Literal["https://stella.io/evidence/v1"] = PREDICATE_TYPE
    predicate: StellaPredicate
    _payload: bytes | None = PrivateAttr(default=None)

    def payload(self) -> bytes:
        """The canonical bytes that are signed and hashed (computed once: treat a Statement
        as immutable once built)."""
        if self._payload is None:
            self._payload = canonical_json(self.wire_dict())
        return self._payload

    def wire_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    def digest(self) -> str:
        return sha256_digest(self.payload())


def parse_statement(payload: bytes) -> Statement:
    try:
        statement = Statement.model_validate_json(payload)
    except (ValueError, ValidationError) as exc:
        raise MalformedPacket(f"payload is not a Stella in-toto statement: {exc}") from exc
    return statement


# --- building blocks the recorder uses ------------------------------------------------


def chain_of(environment: str | None) -> str:
    return environment if environment else CLUSTER_CHAIN


def packet_id(chain: str, kind: str, event_id: str) -> str:
    """Deterministic id of one event: a retry of the same event gets the same id."""
    try:  # for strings orjson writes what canonical_json writes, faster (verify: per packet)
        raw = orjson.dumps([chain, kind, event_id])
    except TypeError:  # a lone surrogate: canonical_json says how
        raw = canonical_json([chain, kind, event_id])
    return hashlib.sha256(raw).hexdigest()


def image_subject(image: str) -> Subject:
    """``repo[:tag]@sha256:<hex>`` -> Subject(name=repo[:tag], digest={sha256: hex})."""
    name, sep, digest = image.rpartition("@")
    if not sep or not digest.startswith("sha256:"):
        raise MalformedPacket(f"image {image!r} is not pinned by a sha256 digest")
    return Subject(name=name, digest={"sha256": digest.removeprefix("sha256:")})


def object_subject(kind: str, name: str, namespace: str | None = None) -> Subject:
    """A subject for an event about a Kubernetes object: digest of its identity."""
    ident = f"stella.io/{kind}/{namespace}/{name}" if namespace else f"stella.io/{kind}/{name}"
    return Subject(name=ident, digest={"sha256": hashlib.sha256(ident.encode()).hexdigest()})


_SECRET_KEY = re.compile(r"(passw|token|secret|private.?key|credential|api.?key)", re.I)
_PEM_PRIVATE = "PRIVATE KEY-----"


def assert_no_secrets(value: Any, path: str = "predicate") -> None:
    """Refuse anything that looks like a secret value (a vault: reference is fine)."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}"
            if (
                isinstance(item, str)
                and item
                and _SECRET_KEY.search(str(key))
                and not item.startswith("vault:")
            ):
                raise MalformedPacket(
                    f"{here} looks like a secret; evidence records vault: references only"
                )
            assert_no_secrets(item, here)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            assert_no_secrets(item, f"{path}[{i}]")
    elif isinstance(value, str) and _PEM_PRIVATE in value:
        raise MalformedPacket(f"{path} contains a private key; evidence never holds one")
