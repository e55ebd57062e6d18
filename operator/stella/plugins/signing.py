"""Signed manifests: DSSE envelopes over the manifest, verified against the publishers the
cluster trusts (PluginPublisher objects), and the module bound to the manifest by digest.

Signing reuses the evidence DSSE code (ECDSA P-256, DER, PAE) and its signers, so a
publisher signs with `stella plugin sign --key KEY.pem` (a local key) exactly as Stella
signs evidence, and anyone verifies with the publisher's public key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from stella.evidence.canonical import canonical_json
from stella.evidence.dsse import (
    Envelope,
    SignerLike,
    parse_envelope,
    sign_envelope,
    verify_envelope,
)
from stella.evidence.errors import EvidenceError
from stella.evidence.keys import KeyRing
from stella.models.errors import human_errors
from stella.plugins import errors as e
from stella.plugins.manifest import PAYLOAD_TYPE, PluginManifest

# publisher name -> key id -> PEM public key: what the cluster's PluginPublishers say.
Trust = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class VerifiedManifest:
    """A manifest whose signature verified with a key of the publisher it names."""

    manifest: PluginManifest
    publisher: str
    key_id: str
    # sha256 of the signed payload: this exact manifest's identity (evidence, quarantine).
    manifest_digest: str

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "name": m.name,
            "version": m.version,
            "publisher": self.publisher,
            "keyId": self.key_id,
            "manifestDigest": self.manifest_digest,
            "moduleDigest": m.module.digest,
        }


def module_digest(module: bytes) -> str:
    return "sha256:" + hashlib.sha256(module).hexdigest()


def sign_manifest(manifest: PluginManifest, signer: SignerLike) -> Envelope:
    return sign_envelope(canonical_json(manifest.wire()), signer, PAYLOAD_TYPE)


def verify_manifest(envelope: Mapping[str, Any] | None, trust: Trust) -> VerifiedManifest:
    """The verified manifest, or PluginRefused saying why (unsigned, altered, untrusted)."""
    if not envelope or not envelope.get("signatures"):
        raise e.PluginRefused(
            e.UNSIGNED,
            "the plugin manifest is not signed: sign it with stella plugin sign --key KEY "
            "and put the envelope it prints into spec.manifest",
        )
    try:
        env = parse_envelope(dict(envelope))
    except EvidenceError as exc:
        raise e.PluginRefused(e.MALFORMED, f"spec.manifest is not a DSSE envelope: {exc}") from None
    if env.payload_type != PAYLOAD_TYPE:
        raise e.PluginRefused(
            e.MALFORMED,
            f"spec.manifest.payloadType must be {PAYLOAD_TYPE}, not {env.payload_type!r}",
        )
    publisher, key_id = _trusted_signer(env, trust)
    payload = env.payload_bytes()
    try:
        manifest = PluginManifest.model_validate(json.loads(payload))
    except (ValueError, ValidationError) as exc:
        detail = human_errors(exc) if isinstance(exc, ValidationError) else str(exc)
        raise e.PluginRefused(e.MALFORMED, f"the signed manifest is invalid: {detail}") from None
    if manifest.publisher != publisher:
        raise e.PluginRefused(
            e.UNTRUSTED,
            f"the manifest names publisher {manifest.publisher!r} but is signed by a key of "
            f"{publisher!r}; a publisher signs only its own plugins",
        )
    return VerifiedManifest(
        manifest, publisher, key_id, "sha256:" + hashlib.sha256(payload).hexdigest()
    )


def _trusted_signer(env: Envelope, trust: Trust) -> tuple[str, str]:
    """(publisher, key id) of the first signature a trusted publisher's key verifies."""
    altered = False
    for publisher, keys in sorted(trust.items()):
        ring = KeyRing()
        for key_id, pem in keys.items():
            try:
                ring.add(key_id, pem)
            except EvidenceError:
                continue  # a bad key in a PluginPublisher trusts nothing; admission says so
        if not any(k in ring for k in env.key_ids):
            continue
        try:
            return publisher, verify_envelope(env, ring)
        except EvidenceError:
            altered = True
    if altered:
        raise e.PluginRefused(
            e.TAMPERED,
            "the manifest's signature does not verify with its publisher's key: the manifest "
            "was altered after signing (or signed by another key); sign it again",
        )
    raise e.PluginRefused(
        e.UNTRUSTED,
        f"no trusted publisher holds the signing key ({', '.join(env.key_ids)}): ask a "
        "platform engineer to add it to a PluginPublisher (kubectl get pluginpublishers)",
    )


def verify_module(verified: VerifiedManifest, module: bytes) -> None:
    """The module's bytes are the ones the signed manifest pins, or PluginRefused."""
    actual = module_digest(module)
    if actual != verified.manifest.module.digest:
        raise e.PluginRefused(
            e.MODULE_MISMATCH,
            f"the module's sha256 is {actual}, the signed manifest pins "
            f"{verified.manifest.module.digest}: the module was replaced; nothing ran",
        )
