"""Cosign's wire formats, read and written exactly as cosign does.

Signatures (``cosign sign --key``): a manifest tagged ``sha256-<hex>.sig`` whose layers
are simple-signing payloads (media type :data:`SIMPLE_SIGNING`), each with its base64
signature in the layer annotation :data:`SIGNATURE_ANNOTATION`::

    {"critical": {"identity": {"docker-reference": "host/repo"},
                  "image": {"docker-manifest-digest": "sha256:..."},
                  "type": "cosign container image signature"}, "optional": {...}}

Attestations (``cosign attest --key``): a manifest tagged ``sha256-<hex>.att`` whose
layers are DSSE envelopes (:data:`DSSE_LAYER`) of in-toto Statements, each layer
annotated with its ``predicateType``. The DSSE signature covers PAE(type, payload).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stella.registry.artifacts import json_object, sha256_digest
from stella.supplychain.errors import MalformedArtifact
from stella.supplychain.keys import TrustedKey, first_verifying

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
PREDICATE_ANNOTATION = "predicateType"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
SIGNATURE_TYPE = "cosign container image signature"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"


def b64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise MalformedArtifact(f"{what} is not base64 text")
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedArtifact(f"{what} is not valid base64") from None


def load_json(raw: bytes, what: str) -> dict[str, Any]:
    doc = json_object(raw)
    if doc is None:
        raise MalformedArtifact(f"{what} is not a JSON object")
    return doc


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding (the bytes a DSSE signature covers)."""
    t = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


# ---- signatures --------------------------------------------------------------------------
def simple_signing_payload(docker_reference: str, digest: str) -> bytes:
    """The payload ``cosign sign`` signs for ``digest`` (used by tests and the bench)."""
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": docker_reference},
                "image": {"docker-manifest-digest": digest},
                "type": SIGNATURE_TYPE,
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()


def signed_digest(payload: bytes) -> str:
    """``critical.image.docker-manifest-digest`` of a simple-signing payload."""
    doc = load_json(payload, "the signature payload")
    critical = doc.get("critical")
    if not isinstance(critical, dict) or critical.get("type") != SIGNATURE_TYPE:
        raise MalformedArtifact("the signature payload is not a cosign image signature")
    image = critical.get("image")
    digest = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(digest, str):
        raise MalformedArtifact("the signature payload names no docker-manifest-digest")
    return digest


def verify_simple_signing(
    payload: bytes, signature: bytes, digest: str, keys: Sequence[TrustedKey]
) -> TrustedKey | None:
    """The trusted key that signed ``payload`` when it claims ``digest``; None when no
    trusted key signed it. A payload for another digest raises (a replayed signature)."""
    claimed = signed_digest(payload)
    if claimed != digest:
        raise MalformedArtifact(
            f"a signature names {claimed}, not {digest}: it was made for another image"
        )
    return first_verifying(keys, signature, payload)


# ---- DSSE and in-toto ----------------------------------------------------------------------
@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]

    def verified_by(self, keys: Iterable[TrustedKey]) -> TrustedKey | None:
        message = pae(self.payload_type, self.payload)
        for sig in self.signatures:
            key = first_verifying(keys, sig, message)
            if key is not None:
                return key
        return None

    def to_dict(self, keyid: str = "") -> dict[str, Any]:
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode(),
            "signatures": [
                {"keyid": keyid, "sig": base64.b64encode(s).decode()} for s in self.signatures
            ],
        }


def parse_envelope(doc: Mapping[str, Any], what: str = "a DSSE envelope") -> Envelope:
    ptype, payload, sigs = doc.get("payloadType"), doc.get("payload"), doc.get("signatures")
    if not isinstance(ptype, str) or not isinstance(sigs, list) or not sigs:
        raise MalformedArtifact(f"{what} lacks payloadType or signatures")
    return Envelope(
        payload_type=ptype,
        payload=b64(payload, f"{what}'s payload"),
        signatures=tuple(
            b64(s.get("sig") if isinstance(s, dict) else None, f"{what}'s signature")
            for s in sigs[:8]
        ),
    )


@dataclass(frozen=True)
class Statement:
    predicate_type: str
    subjects: tuple[tuple[str, str], ...]  # (name, sha256 hex)
    predicate: dict[str, Any]

    def names_digest(self, digest: str) -> bool:
        hex_ = digest.removeprefix("sha256:")
        return any(h == hex_ for _, h in self.subjects)


def parse_statement(envelope: Envelope) -> Statement:
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        raise MalformedArtifact(f"an attestation carries {envelope.payload_type!r}, not in-toto")
    doc = load_json(envelope.payload, "an in-toto statement")
    if doc.get("_type") not in STATEMENT_TYPES:
        raise MalformedArtifact("an attestation's payload is not an in-toto Statement")
    subjects: list[tuple[str, str]] = []
    for s in doc.get("subject") or []:
        if isinstance(s, dict) and isinstance(s.get("digest"), dict):
            hex_ = s["digest"].get("sha256")
            if isinstance(hex_, str):
                subjects.append((str(s.get("name", "")), hex_))
    predicate = doc.get("predicate")
    return Statement(
        predicate_type=str(doc.get("predicateType", "")),
        subjects=tuple(subjects),
        predicate=predicate if isinstance(predicate, dict) else {},
    )


def statement_bytes(
    subject_name: str, digest: str, predicate_type: str, predicate: Mapping[str, Any]
) -> bytes:
    return json.dumps(
        {
            "_type": STATEMENT_TYPES[0],
            "subject": [
                {"name": subject_name, "digest": {"sha256": digest.removeprefix("sha256:")}}
            ],
            "predicateType": predicate_type,
            "predicate": dict(predicate),
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


# ---- manifests as cosign writes them ---------------------------------------------------
def layer_manifest(
    layers: Sequence[tuple[bytes, str, Mapping[str, str]]],
) -> tuple[bytes, bytes]:
    """(config, manifest) for blobs (data, media type, annotations), as cosign's
    ``.sig``/``.att`` manifests: an OCI image manifest whose config lists the layers'
    digests as diff_ids. Returns the config bytes and the manifest bytes."""
    digests = [sha256_digest(data) for data, _, _ in layers]
    config = json.dumps(
        {
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": digests},
            "config": {},
        },
        separators=(",", ":"),
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": CONFIG_MEDIA_TYPE,
                "size": len(config),
                "digest": sha256_digest(config),
            },
            "layers": [
                {
                    "mediaType": media_type,
                    "size": len(data),
                    "digest": d,
                    "annotations": dict(annotations),
                }
                for (data, media_type, annotations), d in zip(layers, digests, strict=True)
            ],
        },
        separators=(",", ":"),
    ).encode()
    return config, manifest
