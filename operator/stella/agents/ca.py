"""The agents' certificate authority: OpenBao/Vault's PKI secrets engine signs each
agent's CSR; the CA key is generated inside Vault and never leaves it (threat T3).

The hub names the certificate (common name `<agent>.agents.stella.internal`, client auth
only), whatever the CSR asks for: an agent cannot obtain a certificate for another agent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import hvac.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from stella.secrets.vault import VaultClient

DOMAIN = "agents.stella.internal"


class CSRRefused(ValueError):
    """A CSR that is malformed, badly signed or uses a weak key."""


@dataclass(frozen=True)
class IssuedCertificate:
    pem: str
    ca_pem: str
    serial: str  # colon-separated hex, as Vault writes it
    fingerprint: str  # sha256 of the DER, 64 lowercase hex
    not_after: datetime


def common_name(agent: str) -> str:
    return f"{agent}.{DOMAIN}"


def agent_of(cert: x509.Certificate) -> str | None:
    """The agent a certificate was issued to (None: not one of ours)."""
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if len(names) != 1:
        return None
    cn = str(names[0].value)
    agent, _, domain = cn.partition(".")
    return agent if domain == DOMAIN and agent else None


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def serial_hex(cert: x509.Certificate) -> str:
    raw = f"{cert.serial_number:x}"
    raw = raw if len(raw) % 2 == 0 else "0" + raw
    return ":".join(raw[i : i + 2] for i in range(0, len(raw), 2))


def check_csr(csr_pem: str) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as exc:
        raise CSRRefused("the CSR is not a PEM certificate signing request") from exc
    if not csr.is_signature_valid:
        raise CSRRefused("the CSR's signature does not verify")
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            raise CSRRefused("the CSR's key must be EC P-256/P-384 or RSA >= 2048 bits")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise CSRRefused("the CSR's key must be EC P-256/P-384 or RSA >= 2048 bits")
    else:
        raise CSRRefused("the CSR's key must be EC P-256/P-384 or RSA >= 2048 bits")
    return csr


class AgentCA:
    def __init__(
        self,
        vault: VaultClient,
        mount: str = "stella-agent-pki",
        role: str = "agent",
        ttl: str = "24h",
    ) -> None:
        self.vault = vault
        self.mount = mount
        self.role = role
        self.ttl = ttl

    def ensure(self) -> None:
        """Enable the PKI engine with an internal root and the agent role, where absent
        (development and tests; in production point `mount` at an intermediate your PKI
        team set up, and this only adds the role)."""

        def run(client: Any) -> None:
            mounts = client.sys.list_mounted_secrets_engines()
            mounts = mounts.get("data", mounts)
            if f"{self.mount}/" not in mounts:
                client.sys.enable_secrets_engine(
                    "pki", path=self.mount, config={"max_lease_ttl": "87600h"}
                )
            try:
                existing = client.secrets.pki.read_ca_certificate(mount_point=self.mount)
            except hvac.exceptions.VaultError:
                existing = ""
            if not existing:
                client.secrets.pki.generate_root(
                    "internal",
                    "Stella agent CA",
                    extra_params={"key_type": "ec", "key_bits": 256, "ttl": "87600h"},
                    mount_point=self.mount,
                )
            client.secrets.pki.create_or_update_role(
                self.role,
                extra_params={
                    "allowed_domains": [DOMAIN],
                    "key_type": "any",  # EC or RSA: check_csr decides what is strong enough
                    "allow_subdomains": True,
                    "allow_bare_domains": False,
                    "allow_ip_sans": False,
                    "allow_localhost": False,
                    "client_flag": True,
                    "server_flag": False,
                    "use_csr_common_name": False,
                    "use_csr_sans": False,
                    "key_usage": ["DigitalSignature"],
                    "ext_key_usage": ["ClientAuth"],
                    "max_ttl": self.ttl,
                    "ttl": self.ttl,
                },
                mount_point=self.mount,
            )

        self.vault.call(run)

    def ca_pem(self) -> str:
        return str(
            self.vault.call(lambda c: c.secrets.pki.read_ca_certificate(mount_point=self.mount))
        )

    def sign(self, agent: str, csr_pem: str) -> IssuedCertificate:
        check_csr(csr_pem)
        resp = self.vault.call(
            lambda c: c.secrets.pki.sign_certificate(
                self.role,
                csr_pem,
                common_name(agent),
                extra_params={"ttl": self.ttl, "exclude_cn_from_sans": True},
                mount_point=self.mount,
            )
        )
        data = resp["data"]
        pem = str(data["certificate"])
        cert = x509.load_pem_x509_certificate(pem.encode())
        return IssuedCertificate(
            pem=pem,
            ca_pem=str(data.get("issuing_ca") or ""),
            serial=str(data.get("serial_number") or serial_hex(cert)),
            fingerprint=fingerprint(cert),
            not_after=cert.not_valid_after_utc.astimezone(UTC),
        )

    def revoke(self, serial: str) -> None:
        self.vault.call(lambda c: c.secrets.pki.revoke_certificate(serial, mount_point=self.mount))
