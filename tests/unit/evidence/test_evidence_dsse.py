"""DSSE: PAE per spec, and envelopes that an independent implementation accepts."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from evidence_fakes import MemorySigner
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from stella.evidence.dsse import pae, parse_envelope, sign_envelope, verify_envelope
from stella.evidence.errors import SignatureInvalid
from stella.evidence.keys import KeyRing
from stella.evidence.packet import PAYLOAD_TYPE


def test_pae_matches_the_spec_example() -> None:
    # https://github.com/secure-systems-lab/dsse/blob/master/protocol.md (test vector)
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_sign_and_verify_roundtrip() -> None:
    signer = MemorySigner()
    env = sign_envelope(b'{"a":1}', signer)
    assert env.payload_type == PAYLOAD_TYPE
    assert env.signatures[0].keyid == signer.key_id
    assert verify_envelope(env, KeyRing(signer.public_keys())) == signer.key_id
    # canonical form parses back identically
    assert parse_envelope(env.canonical()) == env


def test_tampered_payload_or_unknown_key_fails() -> None:
    signer, rogue = MemorySigner(), MemorySigner("test:rogue")
    env = sign_envelope(b'{"a":1}', signer)
    ring = KeyRing(signer.public_keys())
    tampered = env.model_copy(update={"payload": base64.b64encode(b'{"a":2}').decode()})
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify_envelope(tampered, ring)
    with pytest.raises(SignatureInvalid, match="not a published"):
        verify_envelope(sign_envelope(b'{"a":1}', rogue), ring)
    # a rogue key that claims a published key id
    impostor = MemorySigner(signer.key_id)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify_envelope(sign_envelope(b'{"a":1}', impostor), ring)


def test_securesystemslib_verifies_our_envelopes() -> None:
    """An independent DSSE implementation, given only the public key, accepts ours."""
    signer = MemorySigner()
    env = sign_envelope(b'{"_type":"https://in-toto.io/Statement/v1"}', signer)
    pub = serialization.load_pem_public_key(signer.public_key_pem().encode())
    key = SSlibKey.from_crypto(pub, keyid=signer.key_id)
    accepted = SslibEnvelope.from_dict(env.to_dict()).verify([key], 1)
    assert list(accepted) == [signer.key_id]


def test_we_verify_securesystemslib_envelopes() -> None:
    """And the other way round: an envelope signed by securesystemslib verifies here."""
    sslib_signer = CryptoSigner.generate_ecdsa()
    payload = b'{"hello":"world"}'
    sslib_env = SslibEnvelope(payload, PAYLOAD_TYPE, {})
    sslib_env.sign(sslib_signer)
    ours = parse_envelope(sslib_env.to_dict())
    key_id = sslib_signer.public_key.keyid
    priv_pem = sslib_signer.private_bytes  # PKCS#8 private key; derive the public half
    priv = serialization.load_pem_private_key(priv_pem, password=None)
    pub_pem = (
        priv.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert verify_envelope(ours, KeyRing({key_id: pub_pem})) == key_id
