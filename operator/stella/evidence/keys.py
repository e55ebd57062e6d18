"""Public keys that verify evidence: key id -> PEM, ECDSA P-256 only.

A key ring only ever grows: rotating a signing key adds the new public key and keeps the
old ones, so every packet ever signed stays verifiable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stella.evidence.errors import MalformedPacket


def load_public_key(pem: str) -> ec.EllipticCurvePublicKey:
    if "PRIVATE KEY-----" in pem:
        # Never parsed, never echoed: someone pinned the signing key itself.
        raise MalformedPacket(
            "a private key, not a public key: pin public keys only (stella evidence keys "
            "--out-dir DIR writes them), and keep the private key out of shared places"
        )
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError:
        raise MalformedPacket(
            "not a PEM public key: expected -----BEGIN PUBLIC KEY----- ... as "
            "stella evidence keys prints"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise MalformedPacket("evidence keys must be ECDSA P-256 public keys")
    return key


def spki_fingerprint(pem: str) -> str:
    """sha256 of the DER SubjectPublicKeyInfo: a key's identity independent of its name."""
    der = load_public_key(pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


class KeyRing(Mapping[str, str]):
    """key id -> PEM, with the parsed keys cached (verification is the hot path)."""

    def __init__(self, pems: Mapping[str, str] | None = None) -> None:
        self._pems: dict[str, str] = {}
        self._loaded: dict[str, ec.EllipticCurvePublicKey] = {}
        for key_id, pem in (pems or {}).items():
            self.add(key_id, pem)

    def add(self, key_id: str, pem: str) -> None:
        key = load_public_key(pem)
        existing = self._pems.get(key_id)
        if existing is not None and spki_fingerprint(existing) != spki_fingerprint(pem):
            raise MalformedPacket(f"key id {key_id!r} is already bound to a different key")
        self._pems[key_id] = pem
        self._loaded[key_id] = key

    def public_key(self, key_id: str) -> ec.EllipticCurvePublicKey | None:
        return self._loaded.get(key_id)

    def __getitem__(self, key_id: str) -> str:
        return self._pems[key_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pems)

    def __len__(self) -> int:
        return len(self._pems)
