"""Stella's release passport: after a promotion, attestations for the deployed digest that
any cluster (or none running Stella) can require.

Two in-toto Statements per image, each in a DSSE envelope signed with the evidence key,
attached to the image's repository as cosign attaches attestations (appended as layers of
the manifest at tag ``sha256-<hex>.att``, annotated with their ``predicateType``):

* a SLSA Verification Summary (``https://slsa.dev/verification_summary/v1``): Stella as the
  verifier, the Environment's policy (``policy.uri`` names the Environment) as passed;
* Stella's approval predicate (:data:`APPROVAL_TYPE`): the approvers and when, the spec
  digest they approved, the requester, the evidence packet that authorized the deploy.

``cosign verify-attestation --key <evidence key> --insecure-ignore-tlog --type <type>``
verifies either offline. Pushing the same passport again writes nothing new (the layers
are deterministic and already there), so a retried step never adds a second copy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from stella.registry.artifacts import (
    cosign_tag,
    fetch_blob,
    fetch_manifest,
    push_blob,
    push_manifest,
)
from stella.registry.client import RegistryClient, RegistryCredentials
from stella.registry.reference import ImageRef, parse_pinned
from stella.supplychain.cosign import (
    DSSE_LAYER,
    INTOTO_PAYLOAD_TYPE,
    PREDICATE_ANNOTATION,
    SIGNATURE_ANNOTATION,
    Envelope,
    layer_manifest,
    load_json,
    pae,
    parse_envelope,
    parse_statement,
    statement_bytes,
)
from stella.supplychain.discovery import MAX_LAYERS
from stella.supplychain.errors import MalformedArtifact
from stella.supplychain.keys import TrustedKey

VSA_TYPE = "https://slsa.dev/verification_summary/v1"
APPROVAL_TYPE = "https://stella.io/attestations/approval/v1"
VERIFIER_ID = "https://stella.io/verifier"
POLICY_URI = "https://stella.io/policy/environments/{environment}"


class PassportSigner(Protocol):
    @property
    def key_id(self) -> str: ...

    def sign(self, payload: bytes) -> bytes: ...


@dataclass(frozen=True)
class Approver:
    username: str
    decision: str
    at: datetime
    approval: str


@dataclass(frozen=True)
class PassportFacts:
    """What one promotion of one Release into one Environment establishes."""

    environment: str
    policy_digest: str  # sha256 hex of the Environment spec the promotion passed
    release: str  # namespace/name
    release_uid: str | None
    version: str
    spec_digest: str | None  # sha256:<hex> the approvers approved (policy.binding)
    requester: str | None
    approvers: tuple[Approver, ...]
    deployed_at: datetime
    operator_version: str
    checks: tuple[str, ...] = ()  # what was verified: digest, signatures, provenance
    evidence_packet: str | None = None  # the authorization packet's id


def _time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def vsa_predicate(facts: PassportFacts, resource_uri: str) -> dict[str, Any]:
    return {
        "verifier": {"id": VERIFIER_ID, "version": {"stella": facts.operator_version}},
        "timeVerified": _time(facts.deployed_at),
        "resourceUri": resource_uri,
        "policy": {
            "uri": POLICY_URI.format(environment=facts.environment),
            "digest": {"sha256": facts.policy_digest},
        },
        "verificationResult": "PASSED",
        "verifiedLevels": [f"STELLA_APPROVED_{facts.environment.upper().replace('-', '_')}"],
        "slsaVersion": "1.0",
        "checks": list(facts.checks),
    }


def approval_predicate(facts: PassportFacts) -> dict[str, Any]:
    return {
        "environment": facts.environment,
        "release": {
            "name": facts.release,
            "uid": facts.release_uid,
            "version": facts.version,
            "specDigest": facts.spec_digest,
        },
        "requester": facts.requester,
        "approvers": [
            {
                "approver": a.username,
                "decision": a.decision,
                "at": _time(a.at),
                "approval": a.approval,
            }
            for a in facts.approvers
        ],
        "deployedAt": _time(facts.deployed_at),
        "evidencePacket": facts.evidence_packet,
    }


def sign_statement(statement: bytes, signer: PassportSigner) -> Envelope:
    return Envelope(
        INTOTO_PAYLOAD_TYPE, statement, (signer.sign(pae(INTOTO_PAYLOAD_TYPE, statement)),)
    )


def passport_layers(
    ref: ImageRef, facts: PassportFacts, signer: PassportSigner
) -> list[tuple[bytes, str, dict[str, str]]]:
    """The two DSSE layers (bytes, media type, annotations) of one image's passport."""
    assert ref.digest is not None
    name = ref.name
    out = []
    for ptype, predicate in (
        (VSA_TYPE, vsa_predicate(facts, f"{name}@{ref.digest}")),
        (APPROVAL_TYPE, approval_predicate(facts)),
    ):
        envelope = sign_statement(statement_bytes(name, ref.digest, ptype, predicate), signer)
        data = json.dumps(envelope.to_dict(keyid=""), separators=(",", ":")).encode()
        # cosign reads an attestation layer only with the (empty) signature annotation:
        # the signature is inside the envelope.
        out.append((data, DSSE_LAYER, {SIGNATURE_ANNOTATION: "", PREDICATE_ANNOTATION: ptype}))
    return out


async def publish_passport(
    client: RegistryClient,
    image: str,
    facts: PassportFacts,
    signer: PassportSigner,
    credentials: RegistryCredentials | None = None,
) -> str:
    """Append the passport to the image's ``.att`` manifest (keeping every attestation
    already there, e.g. the build's provenance); returns the manifest digest."""
    ref = parse_pinned(image)
    assert ref.digest is not None
    tag = cosign_tag(ref.digest, "att")
    existing = await fetch_manifest(client, ref, tag, credentials)
    layers: list[tuple[bytes, str, dict[str, str]]] = []
    for layer in existing.layers if existing is not None else []:
        digest = layer.get("digest")
        if isinstance(digest, str):
            annotations = layer.get("annotations")
            layers.append(
                (
                    await fetch_blob(client, ref, digest, credentials),
                    str(layer.get("mediaType", DSSE_LAYER)),
                    dict(annotations) if isinstance(annotations, Mapping) else {},
                )
            )
    have = {data for data, _, _ in layers}
    new = [x for x in passport_layers(ref, facts, signer) if x[0] not in have]
    if not new and existing is not None:
        return existing.digest
    layers.extend(new)
    config, manifest = layer_manifest(layers)
    for data in [config, *(d for d, _, _ in layers)]:
        await push_blob(client, ref, data, credentials)
    return await push_manifest(client, ref, tag, manifest, credentials)


@dataclass(frozen=True)
class PassportStamp:
    environment: str
    time_verified: str
    signer: str


def find_passport(
    attestations: Sequence[tuple[str, bytes]],
    digest: str,
    environment: str,
    keys: Sequence[TrustedKey],
) -> PassportStamp | None:
    """A VSA for ``digest`` that passed ``environment``'s policy, signed by a trusted
    Stella evidence key. ``attestations``: (predicate type annotation, envelope bytes)."""
    want = POLICY_URI.format(environment=environment)
    for ptype, raw in attestations[:MAX_LAYERS]:
        if ptype and ptype != VSA_TYPE:
            continue
        try:
            envelope = parse_envelope(load_json(raw, "an attestation"))
            statement = parse_statement(envelope)
        except MalformedArtifact:
            continue
        if statement.predicate_type != VSA_TYPE or not statement.names_digest(digest):
            continue
        p = statement.predicate
        policy, verifier = p.get("policy"), p.get("verifier")
        policy = policy if isinstance(policy, dict) else {}
        verifier = verifier if isinstance(verifier, dict) else {}
        if (
            policy.get("uri") != want
            or p.get("verificationResult") != "PASSED"
            or verifier.get("id") != VERIFIER_ID
        ):
            continue
        key = envelope.verified_by(keys)
        if key is not None:
            return PassportStamp(environment, str(p.get("timeVerified", "")), key.name)
    return None
