"""Trusted public keys: the PEM keys ``cosign generate-key-pair`` writes (ECDSA P-256 by
default; P-384, Ed25519 and RSA too), and checking a signature against a set of them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from stella.supplychain.errors import TrustConfigError

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class TrustedKey:
    """One public key and the name the platform team gave it (for messages and evidence)."""

    name: str
    key: PublicKey

    @property
    def fingerprint(self) -> str:
        der = self.key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "sha256:" + hashlib.sha256(der).hexdigest()

    def verifies(self, signature: bytes, message: bytes) -> bool:
        try:
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                algo = hashes.SHA384() if self.key.curve.key_size == 384 else hashes.SHA256()
                self.key.verify(signature, message, ec.ECDSA(algo))
            elif isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, message)
            else:
                self.key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return False
        return True


def load_trusted_key(name: str, pem: str) -> TrustedKey:
    """A PEM public key, or :class:`TrustConfigError` saying what is wrong (never echoing
    the text: a private key pasted by mistake must not reach a condition or a log)."""
    if "PRIVATE KEY" in pem:
        raise TrustConfigError(
            f"trusted key {name} is a private key; give the public half only "
            "(cosign.pub, as cosign generate-key-pair writes it)"
        )
    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except ValueError:
        raise TrustConfigError(
            f"trusted key {name} is not a PEM public key (-----BEGIN PUBLIC KEY-----)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise TrustConfigError(
            f"trusted key {name}: only ECDSA, Ed25519 and RSA keys are supported"
        )
    return TrustedKey(name=name, key=key)


def first_verifying(
    keys: Iterable[TrustedKey], signature: bytes, message: bytes
) -> TrustedKey | None:
    """The first trusted key under which ``signature`` verifies ``message``, else None."""
    for k in keys:
        if k.verifies(signature, message):
            return k
    return None
