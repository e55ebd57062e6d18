"""The agents' CA in a real OpenBao: the PKI engine signs an agent's CSR as a client
certificate named by the hub (never by the CSR), refuses weak or badly signed CSRs, and a
revoked serial lands on the CA's revocation list."""

from __future__ import annotations

import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devenv.services import OpenBao
from stella.agents.ca import AgentCA, CSRRefused, agent_of, common_name, fingerprint
from stella.secrets import SecretValue, TokenAuth, VaultClient, VaultSettings


def _csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cn: str) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def ca(openbao: OpenBao) -> AgentCA:
    vault = VaultClient(
        VaultSettings(addr=openbao.addr, auth=TokenAuth(token=SecretValue(openbao.root_token)))
    )
    authority = AgentCA(vault, mount=f"pki-{uuid.uuid4().hex[:6]}", ttl="1h")
    authority.ensure()
    authority.ensure()  # idempotent
    return authority


def test_a_csr_becomes_a_client_certificate_named_by_the_hub(ca: AgentCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    # The CSR asks to be another agent; the certificate names the one that enrolled.
    issued = ca.sign("eu-1", _csr(key, common_name("us-1")))
    cert = x509.load_pem_x509_certificate(issued.pem.encode())
    assert agent_of(cert) == "eu-1"
    assert issued.fingerprint == fingerprint(cert)
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.public_numbers() == key.public_key().public_numbers()
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca_cert = x509.load_pem_x509_certificate(ca.ca_pem().encode())
    cert.verify_directly_issued_by(ca_cert)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.total_seconds() <= 3600 + 60


def test_weak_or_badly_signed_csrs_are_refused(ca: AgentCA) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(CSRRefused, match="RSA >= 2048"):
        ca.sign("eu-1", _csr(weak, "x"))
    with pytest.raises(CSRRefused, match="not a PEM"):
        ca.sign(
            "eu-1", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
        )
    good = _csr(ec.generate_private_key(ec.SECP256R1()), "x")
    body = good.splitlines()
    # Flip one character of the signature (near the end of the base64 body).
    line = body[-2]
    body[-2] = line[:-3] + ("A" if line[-3] != "A" else "B") + line[-2:]
    with pytest.raises(CSRRefused):
        ca.sign("eu-1", "\n".join(body) + "\n")


def test_a_revoked_serial_is_on_the_revocation_list(ca: AgentCA, openbao: OpenBao) -> None:
    issued = ca.sign("eu-2", _csr(ec.generate_private_key(ec.SECP256R1()), "x"))
    ca.revoke(issued.serial)
    crl_pem = ca.vault.call(lambda c: c.secrets.pki.read_crl(mount_point=ca.mount))
    crl = x509.load_pem_x509_crl(str(crl_pem).encode())
    cert = x509.load_pem_x509_certificate(issued.pem.encode())
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
