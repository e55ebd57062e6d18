"""A Sigstore instance made in-process for the tests: a Fulcio-like CA (root, intermediate,
short-lived leaves carrying the signer's identity as SAN and the OIDC issuer as extensions
1.3.6.1.4.1.57264.1.1 and .1.8, with an embedded SCT from a CT log key), a Rekor-like log
(a dsse/0.0.1 entry in a two-leaf Merkle tree: inclusion proof, signed checkpoint and signed
entry timestamp under the log key), the trusted_root.json that names them, and
certificate-signed ("keyless") bundles of DSSE in-toto Statements for an image digest.

Nothing here talks to a network: what sigstore-python's Verifier checks offline is what is
built, byte for byte, the way Fulcio, the CT log and Rekor v1 build it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from stella.supplychain.cosign import INTOTO_PAYLOAD_TYPE, pae, statement_bytes

OIDC_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_LIST = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_id(key: ec.EllipticCurvePrivateKey) -> bytes:
    return hashlib.sha256(_spki(key)).digest()


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _der_octets(data: bytes) -> bytes:
    """DER OCTET STRING (short and long length forms)."""
    n = len(data)
    if n < 0x80:
        return b"\x04" + bytes([n]) + data
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\x04" + bytes([0x80 | len(size)]) + size + data


def _der_utf8(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 0x80
    return b"\x0c" + bytes([len(raw)]) + raw


def _key_usage(*granted: str) -> x509.KeyUsage:
    usages = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{u: u in granted for u in usages})


def _ca(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "stella-test"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    signer = issuer[1] if issuer else key
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(EPOCH - timedelta(days=365))
        .not_valid_after(EPOCH + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage("key_cert_sign", "crl_sign"), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    return b.sign(signer, hashes.SHA256())


@dataclass(frozen=True)
class Leaf:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@dataclass
class SigstoreInstance:
    """Fulcio (root + intermediate), a CT log and a Rekor log, each with its own key."""

    root_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    intermediate_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    ct_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    log_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        self.root = _ca("fulcio-root", self.root_key, None)
        self.intermediate = _ca(
            "fulcio-intermediate", self.intermediate_key, (self.root, self.root_key)
        )

    # ---- the trusted root a platform team would put in the ConfigMap -------------------
    def trusted_root(self) -> dict[str, Any]:
        def log(key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, Any]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(_spki(key)),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2020-01-01T00:00:00Z"},
                },
                "logId": {"keyId": _b64(_key_id(key))},
            }

        der = serialization.Encoding.DER
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.log_key, "https://rekor.stella-test.invalid")],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "stella-test", "commonName": "fulcio"},
                    "uri": "https://fulcio.stella-test.invalid",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(self.intermediate.public_bytes(der))},
                            {"rawBytes": _b64(self.root.public_bytes(der))},
                        ]
                    },
                    "validFor": {"start": "2020-01-01T00:00:00Z"},
                }
            ],
            "ctlogs": [log(self.ct_key, "https://ctfe.stella-test.invalid")],
            "timestampAuthorities": [],
        }

    # ---- Fulcio: a leaf for an identity, with an embedded SCT -------------------------
    def leaf(
        self,
        subject: str,
        issuer: str,
        *,
        not_before: datetime = EPOCH,
        minutes: int = 10,
        issuer_v1: bool = True,
    ) -> Leaf:
        key = ec.generate_private_key(ec.SECP256R1())
        san: x509.GeneralName = (
            x509.RFC822Name(subject) if "@" in subject else x509.UniformResourceIdentifier(subject)
        )
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + timedelta(minutes=minutes))
            .add_extension(_key_usage("digital_signature"), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.intermediate_key.public_key()
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
        )
        if issuer_v1:
            b = b.add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V1, issuer.encode()), False)
        b = b.add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V2, _der_utf8(issuer)), False)
        # The precertificate's TBS is this certificate's without the SCT list: sign that as
        # the CT log does (RFC 6962 digitally-signed, precert_entry), then embed the SCT.
        precert = b.sign(self.intermediate_key, hashes.SHA256())
        sct = self._sct(precert.tbs_certificate_bytes, not_before)
        cert = b.add_extension(
            x509.UnrecognizedExtension(SCT_LIST, _der_octets(sct)), critical=False
        ).sign(self.intermediate_key, hashes.SHA256())
        assert cert.tbs_precertificate_bytes == precert.tbs_certificate_bytes
        return Leaf(cert, key)

    def _sct(self, tbs: bytes, when: datetime) -> bytes:
        millis = int(when.timestamp() * 1000)
        issuer_key_hash = _key_id(self.intermediate_key)
        signed = (
            struct.pack("!BBQH", 0, 0, millis, 1)
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack("!H", 0)
        )
        sig = _sign(self.ct_key, signed)
        one = (
            b"\x00"
            + _key_id(self.ct_key)
            + struct.pack("!QH", millis, 0)
            + b"\x04\x03"
            + struct.pack("!H", len(sig))
            + sig
        )
        entry = struct.pack("!H", len(one)) + one
        return struct.pack("!H", len(entry)) + entry

    # ---- a keyless bundle: DSSE signed by the leaf, logged in Rekor -------------------
    def bundle(
        self,
        leaf: Leaf,
        image: str,
        digest: str,
        *,
        integrated: datetime | None = None,
        predicate_type: str = "https://sigstore.dev/cosign/sign/v1",
    ) -> dict[str, Any]:
        statement = statement_bytes(image, digest, predicate_type, {})
        sig = _sign(leaf.key, pae(INTOTO_PAYLOAD_TYPE, statement))
        pem = leaf.cert.public_bytes(serialization.Encoding.PEM)
        body = rfc8785.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(b"envelope").hexdigest(),
                    },
                    "payloadHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(statement).hexdigest(),
                    },
                    "signatures": [{"signature": _b64(sig), "verifier": _b64(pem)}],
                },
            }
        )
        when = int(
            (integrated or leaf.cert.not_valid_before_utc + timedelta(minutes=1)).timestamp()
        )
        entry = self._log(body, when)
        der = leaf.cert.public_bytes(serialization.Encoding.DER)
        return {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": _b64(der)},
                "tlogEntries": [entry],
            },
            "dsseEnvelope": {
                "payload": _b64(statement),
                "payloadType": INTOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": _b64(sig)}],
            },
        }

    def _log(self, body: bytes, integrated_time: int) -> dict[str, Any]:
        """Rekor v1: the entry is leaf 0 of a two-leaf tree (RFC 6962 hashing), with its
        inclusion proof, a checkpoint signed as a note, and a signed entry timestamp."""
        log_id = _key_id(self.log_key)
        leaf_hash = hashlib.sha256(b"\x00" + body).digest()
        sibling = hashlib.sha256(b"\x00" + b"another entry").digest()
        root = hashlib.sha256(b"\x01" + leaf_hash + sibling).digest()
        note = f"rekor.stella-test - 1\n2\n{_b64(root)}\n"
        note_sig = _b64(log_id[:4] + _sign(self.log_key, note.encode()))
        checkpoint = f"{note}\n\u2014 rekor.stella-test {note_sig}\n"
        set_payload = rfc8785.dumps(
            {
                "body": _b64(body),
                "integratedTime": integrated_time,
                "logID": log_id.hex(),
                "logIndex": 0,
            }
        )
        return {
            "logIndex": "0",
            "logId": {"keyId": _b64(log_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(integrated_time),
            "inclusionPromise": {"signedEntryTimestamp": _b64(_sign(self.log_key, set_payload))},
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": _b64(root),
                "treeSize": "2",
                "hashes": [_b64(sibling)],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": _b64(body),
        }


def raw(bundle: dict[str, Any]) -> bytes:
    return json.dumps(bundle).encode()
