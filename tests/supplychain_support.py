"""Signed supply-chain artifacts made in the tests: keys generated per test, cosign-style
signatures, SLSA provenance in DSSE, and pushing them where cosign puts them.

Tests use cosign itself where what is checked is interoperability (tests/integration/
supplychain); this module makes the same bytes in-process where a test is about Stella's
logic (the unit tier and the bench).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stella.supplychain.cosign import (
    DSSE_LAYER,
    INTOTO_PAYLOAD_TYPE,
    PREDICATE_ANNOTATION,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
    Envelope,
    pae,
    simple_signing_payload,
    statement_bytes,
)
from stella.supplychain.discovery import Attestation, Found, SimpleSignature
from stella.supplychain.keys import TrustedKey, load_trusted_key
from stella.supplychain.provenance import SLSA_V1

BUILDER = "https://ci.example.com/builders/release@v1"
REPO = "https://git.example.com/acme/shop"
COMMIT = "4f2b7c1e9a0d3b5c6e7f8091a2b3c4d5e6f70812"


@dataclass
class KeyPair:
    name: str
    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, name: str = "ci") -> KeyPair:
        return cls(name, ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    @property
    def trusted(self) -> TrustedKey:
        return load_trusted_key(self.name, self.public_pem)

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data, ec.ECDSA(hashes.SHA256()))


def signature(
    key: KeyPair, digest: str, reference: str = "reg.example/shop/web"
) -> SimpleSignature:
    payload = simple_signing_payload(reference, digest)
    return SimpleSignature(payload, base64.b64encode(key.sign(payload)).decode())


def slsa_v1(builder: str = BUILDER, repo: str = REPO, commit: str = COMMIT) -> dict[str, Any]:
    return {
        "buildDefinition": {
            "buildType": "https://ci.example.com/buildtypes/container@v1",
            "externalParameters": {"source": f"git+{repo}@refs/heads/main"},
            "resolvedDependencies": [
                {"uri": f"git+{repo}@refs/heads/main", "digest": {"gitCommit": commit}}
            ],
        },
        "runDetails": {"builder": {"id": builder}, "metadata": {"invocationId": "run-1"}},
    }


def dsse(key: KeyPair, statement: bytes) -> Envelope:
    return Envelope(
        INTOTO_PAYLOAD_TYPE, statement, (key.sign(pae(INTOTO_PAYLOAD_TYPE, statement)),)
    )


def provenance(
    key: KeyPair,
    digest: str,
    *,
    builder: str = BUILDER,
    repo: str = REPO,
    commit: str = COMMIT,
    name: str = "reg.example/shop/web",
) -> Attestation:
    st = statement_bytes(name, digest, SLSA_V1, slsa_v1(builder, repo, commit))
    return Attestation(SLSA_V1, json.dumps(dsse(key, st).to_dict()).encode())


def found(*items: SimpleSignature | Attestation) -> Found:
    f = Found()
    for i in items:
        if isinstance(i, SimpleSignature):
            f.signatures.append(i)
        else:
            f.attestations.append(i)
    return f


def sig_layer(sig: SimpleSignature) -> tuple[bytes, str, dict[str, str]]:
    """A cosign .sig manifest layer (for stella.supplychain.cosign.layer_manifest)."""
    return sig.payload, SIMPLE_SIGNING, {SIGNATURE_ANNOTATION: sig.signature}


def att_layer(att: Attestation) -> tuple[bytes, str, dict[str, str]]:
    return att.envelope, DSSE_LAYER, {PREDICATE_ANNOTATION: att.predicate_type}
