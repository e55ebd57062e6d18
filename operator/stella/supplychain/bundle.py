"""Sigstore bundles (``application/vnd.dev.sigstore.bundle.v0.3+json``), offline.

Two kinds of bundle reach Stella:

* keyed — ``verificationMaterial.publicKey`` (what ``cosign sign --key`` or
  ``attest --key`` with ``--new-bundle-format`` writes, and what ``stella evidence export
  --format sigstore-bundle`` writes): verified here against the Environment's trusted keys.
  sigstore-python does not serve this: its ``Bundle`` insists on a signing certificate and
  a transparency-log entry (sigstore/models.py, ``Bundle._verify``);
* certificate — a Fulcio-style signing certificate with a log entry: verified with
  sigstore-python's ``Verifier`` against the trusted root the platform team put in a
  ConfigMap (no public-good network), and an identity policy (subject + issuer).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from stella.supplychain.cosign import Envelope, b64, parse_envelope
from stella.supplychain.errors import MalformedArtifact, SignatureUntrusted, TrustConfigError
from stella.supplychain.keys import TrustedKey

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_TYPES = (
    BUNDLE_V03,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
)


@dataclass(frozen=True)
class Identity:
    """A certificate identity the policy trusts: the SAN and the OIDC issuer."""

    subject: str
    issuer: str


@dataclass(frozen=True)
class BundleResult:
    signer: str  # the trusted key's name, or the certificate identity
    envelope: Envelope | None  # the DSSE envelope, when the bundle carries one
    message_digest: str | None  # sha256:<hex> a messageSignature signed


def keyed_bundle(envelope: Envelope, key_hint: str) -> dict[str, Any]:
    """A keyed bundle of one DSSE envelope (``stella evidence export --format
    sigstore-bundle``): no certificate, no log entry; ``cosign verify-blob-attestation
    --bundle B --key K`` checks it offline."""
    return {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": key_hint}},
        "dsseEnvelope": envelope.to_dict(),
    }


def evidence_bundle(envelope: Mapping[str, Any], key_id: str) -> dict[str, Any]:
    """A Stella evidence packet's DSSE envelope as a keyed Sigstore bundle. The key id moves
    to the bundle's ``publicKey.hint``; the signatures' ``keyid`` is emptied (it is not
    signed: DSSE signs PAE(type, payload) only), because cosign matches a non-empty keyid
    against the key it is given and would refuse a Stella key id."""
    return {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": key_id}},
        "dsseEnvelope": {
            "payload": envelope["payload"],
            "payloadType": envelope["payloadType"],
            "signatures": [{"keyid": "", "sig": s["sig"]} for s in envelope["signatures"]],
        },
    }


def _message_digest(doc: Mapping[str, Any]) -> tuple[bytes, bytes]:
    md = doc.get("messageDigest")
    if not isinstance(md, Mapping) or md.get("algorithm") != "SHA2_256":
        raise MalformedArtifact("a bundle's messageSignature is not over a SHA2_256 digest")
    return b64(md.get("digest"), "messageDigest"), b64(doc.get("signature"), "the signature")


def _verifies_prehashed(key: TrustedKey, signature: bytes, digest: bytes) -> bool:
    """ECDSA P-256 over a SHA-256 digest given as bytes (a messageSignature)."""
    if not isinstance(key.key, ec.EllipticCurvePublicKey) or key.key.curve.key_size != 256:
        return False
    try:
        key.key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except (InvalidSignature, ValueError):
        return False
    return True


def _verify_keyed(bundle: Mapping[str, Any], keys: Sequence[TrustedKey]) -> BundleResult:
    dsse = bundle.get("dsseEnvelope")
    if isinstance(dsse, Mapping):
        envelope = parse_envelope(dsse, "the bundle's DSSE envelope")
        key = envelope.verified_by(keys)
        if key is None:
            raise SignatureUntrusted(
                "a Sigstore bundle's DSSE envelope is signed by no trusted key"
            )
        return BundleResult(signer=key.name, envelope=envelope, message_digest=None)
    sig = bundle.get("messageSignature")
    if not isinstance(sig, Mapping):
        raise MalformedArtifact(
            "a Sigstore bundle carries neither dsseEnvelope nor messageSignature"
        )
    digest, signature = _message_digest(sig)
    for k in keys:
        if _verifies_prehashed(k, signature, digest):
            return BundleResult(
                signer=k.name, envelope=None, message_digest="sha256:" + digest.hex()
            )
    raise SignatureUntrusted("a Sigstore bundle's signature verifies under no trusted key")


class _IssuerPolicy:
    """A sigstore-python verification policy for the certificate's OIDC issuer: Fulcio's
    extension 1.3.6.1.4.1.57264.1.8 (a DER UTF8String) and the deprecated .1.1 (raw text).
    Each one the certificate carries must name ``issuer``, and it must carry one.
    sigstore-python's own ``Identity`` reads .1.1 only, so a certificate with just .1.8 (as
    Fulcio may issue once .1.1 is gone) would fail there."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def verify(self, cert: Any) -> None:
        from cryptography.x509 import ExtensionNotFound
        from sigstore.errors import VerificationError
        from sigstore.verify.policy import OIDCIssuer, OIDCIssuerV2

        present = 0
        for policy in (OIDCIssuerV2, OIDCIssuer):
            try:
                cert.extensions.get_extension_for_oid(policy.oid)
            except ExtensionNotFound:
                continue
            present += 1
            policy(self.issuer).verify(cert)
        if not present:
            raise VerificationError("the certificate names no OIDC issuer")


def _identity_policy(identity: Identity) -> Any:
    from sigstore.verify.policy import AllOf
    from sigstore.verify.policy import Identity as SubjectPolicy

    return AllOf([SubjectPolicy(identity=identity.subject), _IssuerPolicy(identity.issuer)])


def _verify_certificate(
    raw: bytes, trusted_root_json: str | None, identities: Sequence[Identity]
) -> BundleResult:
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier
    from sigstore.verify.policy import AnyOf
    from sigstore_models.trustroot import v1 as trustroot_v1

    if not trusted_root_json:
        raise TrustConfigError(
            "a certificate-signed Sigstore bundle needs the Environment's trusted root "
            "(requireSignatures.trustedRoot: a ConfigMap with trusted_root.json)"
        )
    if not identities:
        raise TrustConfigError(
            "a certificate-signed Sigstore bundle needs requireSignatures.identities "
            "(subject and issuer) to say whose certificates count"
        )
    try:
        root = TrustedRoot(trustroot_v1.TrustedRoot.from_json(trusted_root_json))
        verifier = Verifier(trusted_root=root)
    except (SigstoreError, ValueError) as exc:
        raise TrustConfigError(f"the trusted root is not usable: {exc}") from None
    policies = [(i, _identity_policy(i)) for i in identities]
    bundle = None
    try:
        bundle = Bundle.from_json(raw)
        if bundle._dsse_envelope is not None:
            ptype, payload = verifier.verify_dsse(bundle, AnyOf([p for _, p in policies]))
            envelope = Envelope(ptype, payload, (bundle.signature,))
            return BundleResult(
                signer=_matched(bundle.signing_certificate, policies),
                envelope=envelope,
                message_digest=None,
            )
    except (SigstoreError, ValueError) as exc:
        if bundle is not None and "policies succeeded" in str(exc):
            trusted = ", ".join(f"{i.subject} (issuer {i.issuer})" for i in identities)
            raise SignatureUntrusted(
                "a certificate-signed Sigstore bundle is signed by "
                f"{_describe(bundle.signing_certificate)}, none of the identities this "
                f"Environment trusts: {trusted}"
            ) from None
        raise SignatureUntrusted(
            f"a certificate-signed Sigstore bundle does not verify: {str(exc)[:300]}"
        ) from None
    raise SignatureUntrusted(
        "a certificate-signed Sigstore bundle over a message (not DSSE) cannot be tied to the "
        "image here; sign with an attestation (cosign attest) instead"
    )


def _describe(cert: Any) -> str:
    """A signing certificate's identities and issuer, as a person reads them."""
    from cryptography import x509
    from cryptography.hazmat import asn1
    from sigstore.verify.policy import OIDCIssuer, OIDCIssuerV2

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.RFC822Name) + san.get_values_for_type(
            x509.UniformResourceIdentifier
        )
    except x509.ExtensionNotFound:
        names = []
    issuer = "none"
    for oid, v2 in ((OIDCIssuerV2.oid, True), (OIDCIssuer.oid, False)):
        try:
            value = cert.extensions.get_extension_for_oid(oid).value.value
        except x509.ExtensionNotFound:
            continue
        # .1.8 is a DER UTF8String, .1.1 raw text.
        try:
            issuer = asn1.decode_der(str, value) if v2 else value.decode()
        except ValueError:
            issuer = "unreadable"
        break
    return f"{', '.join(names) or 'no identity'} (issuer {issuer})"


def _matched(cert: Any, policies: Sequence[tuple[Identity, Any]]) -> str:
    """The first identity whose policy the (verified) certificate meets, by name."""
    from sigstore.errors import VerificationError

    for identity, policy in policies:
        try:
            policy.verify(cert)
        except VerificationError:
            continue
        return f"{identity.subject} (issuer {identity.issuer})"
    raise VerificationError("no identity matches the certificate")  # AnyOf passed: unreachable


def verify_bundle(
    raw: bytes,
    keys: Sequence[TrustedKey],
    *,
    trusted_root_json: str | None = None,
    identities: Sequence[Identity] = (),
) -> BundleResult:
    """Verify a Sigstore bundle offline; raise a :class:`SupplyChainError` otherwise."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise MalformedArtifact("a Sigstore bundle is not JSON") from None
    if not isinstance(doc, dict) or doc.get("mediaType") not in BUNDLE_TYPES:
        raise MalformedArtifact("not a Sigstore bundle v0.2/v0.3")
    material = doc.get("verificationMaterial")
    if not isinstance(material, Mapping):
        raise MalformedArtifact("a Sigstore bundle without verificationMaterial")
    if "publicKey" in material:
        return _verify_keyed(doc, keys)
    return _verify_certificate(raw, trusted_root_json, identities)


def digest_b64(digest: str) -> str:
    return base64.b64encode(bytes.fromhex(digest.removeprefix("sha256:"))).decode()
