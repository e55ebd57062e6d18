"""requireSignatures' logic without a registry: cosign keyed signatures and keyed Sigstore
bundles, each against keys generated per test."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from tests.supplychain_support import KeyPair, dsse, found, signature

from stella.supplychain.bundle import BUNDLE_V03, keyed_bundle, verify_bundle
from stella.supplychain.check import SignatureRule, check_signatures
from stella.supplychain.cosign import signed_digest, statement_bytes
from stella.supplychain.errors import (
    MalformedArtifact,
    SignatureMissing,
    SignatureUntrusted,
    TrustConfigError,
)
from stella.supplychain.keys import load_trusted_key

DIGEST = "sha256:" + hashlib.sha256(b"the web image").hexdigest()
OTHER = "sha256:" + hashlib.sha256(b"another image").hexdigest()
IMAGE = f"reg.example/shop/web@{DIGEST}"


@pytest.fixture
def ci() -> KeyPair:
    return KeyPair.generate("ci")


def test_a_signature_by_a_trusted_key_passes(ci: KeyPair) -> None:
    rule = SignatureRule(keys=(KeyPair.generate("other").trusted, ci.trusted))
    assert check_signatures(IMAGE, DIGEST, found(signature(ci, DIGEST)), rule) == "ci"


def test_an_unsigned_image_is_refused_saying_where_it_looked(ci: KeyPair) -> None:
    with pytest.raises(SignatureMissing) as err:
        check_signatures(IMAGE, DIGEST, found(), SignatureRule(keys=(ci.trusted,)))
    assert f"{DIGEST.replace(':', '-')}.sig" in err.value.message
    assert err.value.reason == "SignatureMissing" and err.value.refuses


def test_a_signature_by_an_untrusted_key_is_refused_naming_the_trusted_keys(ci: KeyPair) -> None:
    stranger = KeyPair.generate("stranger")
    with pytest.raises(SignatureUntrusted) as err:
        check_signatures(
            IMAGE, DIGEST, found(signature(stranger, DIGEST)), SignatureRule((ci.trusted,))
        )
    assert "1 signature(s)" in err.value.message and "trusted keys: ci" in err.value.message


def test_a_signature_made_for_another_digest_never_counts(ci: KeyPair) -> None:
    """A valid signature copied from another image's .sig tag (replay) is refused."""
    replayed = signature(ci, OTHER)
    with pytest.raises(SignatureUntrusted) as err:
        check_signatures(IMAGE, DIGEST, found(replayed), SignatureRule((ci.trusted,)))
    assert "unreadable or made for another digest" in err.value.message


def test_a_tampered_payload_does_not_verify(ci: KeyPair) -> None:
    sig = signature(ci, DIGEST)
    doc = json.loads(sig.payload)
    doc["optional"] = {"note": "edited"}
    tampered = type(sig)(json.dumps(doc).encode(), sig.signature)
    with pytest.raises(SignatureUntrusted):
        check_signatures(IMAGE, DIGEST, found(tampered), SignatureRule((ci.trusted,)))


def test_garbage_signatures_are_skipped_not_trusted(ci: KeyPair) -> None:
    sig = signature(ci, DIGEST)
    broken = type(sig)(b"not json", sig.signature)
    bad_b64 = type(sig)(sig.payload, "%%%")
    assert (
        check_signatures(IMAGE, DIGEST, found(broken, bad_b64, sig), SignatureRule((ci.trusted,)))
        == "ci"
    )


def test_signed_digest_reads_only_cosign_payloads() -> None:
    with pytest.raises(MalformedArtifact):
        signed_digest(json.dumps({"critical": {"type": "something else"}}).encode())


def test_a_private_key_is_refused_as_trust_material_without_echoing_it(ci: KeyPair) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = ci.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(TrustConfigError) as err:
        load_trusted_key("ci", pem)
    assert "private key" in err.value.message and "MII" not in err.value.message
    with pytest.raises(TrustConfigError):
        load_trusted_key("ci", "not a key")


# ---- Sigstore bundles (keyed) -----------------------------------------------------------
def test_a_keyed_dsse_bundle_verifies_and_names_its_signer(ci: KeyPair) -> None:
    env = dsse(ci, statement_bytes("web", DIGEST, "https://example.com/p", {}))
    raw = json.dumps(keyed_bundle(env, "ci")).encode()
    result = verify_bundle(raw, [ci.trusted])
    assert result.signer == "ci" and result.envelope is not None
    with pytest.raises(SignatureUntrusted):
        verify_bundle(raw, [KeyPair.generate().trusted])


def test_a_keyed_message_signature_bundle_counts_for_its_digest_only(ci: KeyPair) -> None:
    raw_digest = bytes.fromhex(DIGEST.removeprefix("sha256:"))
    sig = ci.private.sign(raw_digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    bundle = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": "ci"}},
        "messageSignature": {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": base64.b64encode(raw_digest).decode(),
            },
            "signature": base64.b64encode(sig).decode(),
        },
    }
    f = found()
    f.bundles.append(json.dumps(bundle).encode())
    assert check_signatures(IMAGE, DIGEST, f, SignatureRule((ci.trusted,))) == "ci"
    with pytest.raises(SignatureUntrusted):
        check_signatures(f"reg.example/shop/web@{OTHER}", OTHER, f, SignatureRule((ci.trusted,)))


def test_a_bundle_for_another_subject_does_not_sign_this_image(ci: KeyPair) -> None:
    env = dsse(ci, statement_bytes("web", OTHER, "https://example.com/p", {}))
    f = found()
    f.bundles.append(json.dumps(keyed_bundle(env, "ci")).encode())
    with pytest.raises(SignatureUntrusted):
        check_signatures(IMAGE, DIGEST, f, SignatureRule((ci.trusted,)))


def test_a_certificate_bundle_needs_a_trusted_root_and_identities(ci: KeyPair) -> None:
    """Certificate bundles go to sigstore-python; without the platform's trusted root
    (or an identity to match) nothing is trusted: fail closed with a configuration error."""
    bundle = {"mediaType": BUNDLE_V03, "verificationMaterial": {"certificate": {"rawBytes": ""}}}
    with pytest.raises(TrustConfigError) as err:
        verify_bundle(json.dumps(bundle).encode(), [ci.trusted])
    assert "trusted root" in err.value.message


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", json.dumps({"mediaType": "application/json"}).encode()],
)
def test_malformed_bundles_are_refused(raw: bytes, ci: KeyPair) -> None:
    with pytest.raises(MalformedArtifact):
        verify_bundle(raw, [ci.trusted])
