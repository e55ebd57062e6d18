"""DSSE (Dead Simple Signing Envelope) v1: PAE, building and verifying envelopes.

Spec: https://github.com/secure-systems-lab/dsse/blob/master/protocol.md

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

The signature is ECDSA P-256 over SHA-256 of PAE(payloadType, payload), DER-encoded, and
stored base64 in ``signatures[].sig`` with the signer's ``keyid``. Anyone can check it with
``openssl dgst -sha256 -verify key.pem -signature sig.der pae.bin``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Annotated, Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import Field, ValidationError

from stella.evidence.canonical import canonical_json
from stella.evidence.errors import MalformedPacket, SignatureInvalid
from stella.evidence.keys import KeyRing
from stella.evidence.packet import PAYLOAD_TYPE
from stella.models.common import StrictModel

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())  # immutable: one for every verify


class SignerLike(Protocol):
    @property
    def key_id(self) -> str: ...

    def sign(self, payload: bytes) -> bytes: ...


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


def b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not (DSSE allows either)."""
    padded = text + "=" * (-len(text) % 4)
    if "-" not in text and "_" not in text:
        try:  # what b64decode(validate=True) does, without its copy to bytes
            return binascii.a2b_base64(padded, strict_mode=True)
        except ValueError:
            pass  # b64decode below words the error
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedPacket(f"invalid base64: {exc}") from exc


class DsseSignature(StrictModel):
    keyid: Annotated[str, Field(min_length=1, max_length=256)]
    sig: Annotated[str, Field(min_length=1)]


class Envelope(StrictModel):
    payload: str
    payload_type: str
    signatures: list[DsseSignature] = Field(min_length=1, max_length=8)

    def payload_bytes(self) -> bytes:
        return b64decode(self.payload)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")

    def canonical(self) -> bytes:
        return canonical_json(self.to_dict())

    @property
    def key_ids(self) -> list[str]:
        return [s.keyid for s in self.signatures]


def parse_envelope(data: bytes | str | dict[str, Any]) -> Envelope:
    try:
        obj = json.loads(data) if isinstance(data, bytes | str) else data
        return Envelope.model_validate(obj)
    except (ValueError, ValidationError) as exc:
        raise MalformedPacket(f"not a DSSE envelope: {exc}") from exc


def sign_envelope(payload: bytes, signer: SignerLike, payload_type: str = PAYLOAD_TYPE) -> Envelope:
    key_id = signer.key_id
    der = signer.sign(pae(payload_type, payload))
    return Envelope(
        payload=base64.b64encode(payload).decode(),
        payload_type=payload_type,
        signatures=[DsseSignature(keyid=key_id, sig=base64.b64encode(der).decode())],
    )


def verify_envelope(envelope: Envelope, keys: KeyRing) -> str:
    """Return the key id whose signature verifies; raise SignatureInvalid otherwise.

    One valid signature by a published key suffices; a signature naming an unknown key id
    or failing verification is reported when no signature verifies.
    """
    message = pae(envelope.payload_type, envelope.payload_bytes())
    return verify_pae(message, [(s.keyid, s.sig) for s in envelope.signatures], keys)


def verify_pae(message: bytes, signatures: Iterable[tuple[str, str]], keys: KeyRing) -> str:
    """verify_envelope for a caller that already holds PAE(type, payload) and the
    (keyid, sig) pairs: the verifier decodes each payload once, not once per check."""
    problems: list[str] = []
    for keyid, sig in signatures:
        key = keys.public_key(keyid)
        if key is None:
            problems.append(f"key {keyid!r} is not a published evidence key")
            continue
        try:
            key.verify(b64decode(sig), message, _ECDSA_SHA256)
        except (InvalidSignature, MalformedPacket):
            problems.append(f"signature by key {keyid!r} does not verify")
            continue
        return keyid
    raise SignatureInvalid("; ".join(problems) or "envelope has no signatures")
