"""Signers against real OpenBao transit and a real key file; checked with openssl."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path

import hvac
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stella.evidence.dsse import pae, sign_envelope, verify_envelope
from stella.evidence.keys import KeyRing
from stella.evidence.packet import PAYLOAD_TYPE
from stella.secrets.errors import SecretNotFound, VaultAuthFailed, VaultUnavailable
from stella.secrets.signers import (
    KeyFileError,
    LocalKeySigner,
    Signer,
    VaultTransitSigner,
    ensure_transit_key,
)


def openssl_verify(tmp: Path, pem: str, message: bytes, der: bytes) -> bool:
    (tmp / "pub.pem").write_text(pem)
    (tmp / "msg.bin").write_bytes(message)
    (tmp / "sig.der").write_bytes(der)
    res = subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            str(tmp / "pub.pem"),
            "-signature",
            str(tmp / "sig.der"),
            str(tmp / "msg.bin"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return res.returncode == 0 and "Verified OK" in res.stdout


def test_transit_signature_verifies_with_cryptography_and_openssl(
    transit_signer: VaultTransitSigner, tmp_path: Path
) -> None:
    assert isinstance(transit_signer, Signer)
    assert transit_signer.key_id.endswith(":v1")
    message = pae(PAYLOAD_TYPE, b'{"hello":"world"}')
    der = transit_signer.sign(message)
    pub = serialization.load_pem_public_key(transit_signer.public_key_pem().encode())
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(der, message, ec.ECDSA(hashes.SHA256()))
    assert openssl_verify(tmp_path, transit_signer.public_key_pem(), message, der)
    assert not openssl_verify(tmp_path, transit_signer.public_key_pem(), message + b"x", der)


def test_transit_rotation_keeps_old_packets_verifiable(transit_signer: VaultTransitSigner) -> None:
    old = sign_envelope(b'{"n":1}', transit_signer)
    old_id = transit_signer.key_id
    new_id = transit_signer.rotate()
    assert new_id != old_id and new_id.endswith(":v2")
    new = sign_envelope(b'{"n":2}', transit_signer)
    ring = KeyRing(transit_signer.public_keys())
    assert set(ring) == {old_id, new_id}
    assert verify_envelope(old, ring) == old_id
    assert verify_envelope(new, ring) == new_id
    # a signer built later still knows the old public key
    later = VaultTransitSigner(transit_signer.client, transit_signer.key_name)
    assert later.key_id == new_id and old_id in later.public_keys()


def test_transit_errors_are_typed(openbao, vault: hvac.Client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SecretNotFound):
        VaultTransitSigner(vault, "no-such-key")
    name = "limited-" + os.urandom(4).hex()
    ensure_transit_key(vault, name)
    vault.sys.create_or_update_policy(
        name, f'path "transit/keys/{name}" {{ capabilities = ["read"] }}'
    )
    token = vault.auth.token.create(policies=[name], ttl="5m")["auth"]["client_token"]
    limited = VaultTransitSigner(hvac.Client(url=openbao.addr, token=token), name)
    with pytest.raises(VaultAuthFailed):
        limited.sign(b"x")
    unreachable = hvac.Client(url="http://127.0.0.1:1", token="x", timeout=1)
    with pytest.raises(VaultUnavailable):
        VaultTransitSigner(unreachable, name)
    # no private material, no token in what we say
    assert token not in repr(limited.__dict__.get("key_name"))


def test_local_key_generated_0600_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "evidence.pem"
    signer = LocalKeySigner(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signer.key_id.startswith("local:")
    again = LocalKeySigner(path)
    assert again.key_id == signer.key_id
    message = pae(PAYLOAD_TYPE, b"{}")
    assert openssl_verify(tmp_path, signer.public_key_pem(), message, signer.sign(message))


def test_local_key_rotation_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "evidence.pem"
    signer = LocalKeySigner(path)
    old = sign_envelope(b'{"n":1}', signer)
    old_id = signer.key_id
    new_id = signer.rotate()
    assert new_id != old_id
    ring = KeyRing(LocalKeySigner(path).public_keys())
    assert verify_envelope(old, ring) == old_id
    assert verify_envelope(sign_envelope(b"{}", signer), ring) == new_id
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        LocalKeySigner(path)
    with pytest.raises(KeyFileError):
        LocalKeySigner(tmp_path / "absent.pem", generate=False)
    bad = tmp_path / "bad.pem"
    bad.write_text("nope")
    bad.chmod(0o600)
    with pytest.raises(KeyFileError):
        LocalKeySigner(bad)


def test_signature_format_is_der_base64_in_envelope(transit_signer: VaultTransitSigner) -> None:
    env = sign_envelope(b"{}", transit_signer)
    der = base64.b64decode(env.signatures[0].sig)
    assert der[0] == 0x30  # an ASN.1 SEQUENCE: DER, as openssl expects
