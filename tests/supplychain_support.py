"""Signed supply-chain artifacts made in the tests: keys generated per test, cosign-style
signatures, SLSA provenance in DSSE, and pushing them where cosign puts them.

Tests use cosign itself where what is checked is interoperability (tests/integration/
supplychain); this module makes the same bytes in-process where a test is about Stella's
logic (the unit tier and the bench).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stella.supplychain.cosign import (
    DSSE_LAYER,
    INTOTO_PAYLOAD_TYPE,
    PREDICATE_ANNOTATION,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
    Envelope,
    pae,
    simple_signing_payload,
    statement_bytes,
)
from stella.supplychain.discovery import Attestation, Found, SimpleSignature
from stella.supplychain.keys import TrustedKey, load_trusted_key
from stella.supplychain.provenance import SLSA_V1

ROOT = Path(__file__).resolve().parent.parent
BUILDER = "https://ci.example.com/builders/release@v1"
REPO = "https://git.example.com/acme/shop"
COMMIT = "4f2b7c1e9a0d3b5c6e7f8091a2b3c4d5e6f70812"


@dataclass
class KeyPair:
    name: str
    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, name: str = "ci") -> KeyPair:
        return cls(name, ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    @property
    def trusted(self) -> TrustedKey:
        return load_trusted_key(self.name, self.public_pem)

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data, ec.ECDSA(hashes.SHA256()))


def signature(
    key: KeyPair, digest: str, reference: str = "reg.example/shop/web"
) -> SimpleSignature:
    payload = simple_signing_payload(reference, digest)
    return SimpleSignature(payload, base64.b64encode(key.sign(payload)).decode())


def slsa_v1(builder: str = BUILDER, repo: str = REPO, commit: str = COMMIT) -> dict[str, Any]:
    return {
        "buildDefinition": {
            "buildType": "https://ci.example.com/buildtypes/container@v1",
            "externalParameters": {"source": f"git+{repo}@refs/heads/main"},
            "resolvedDependencies": [
                {"uri": f"git+{repo}@refs/heads/main", "digest": {"gitCommit": commit}}
            ],
        },
        "runDetails": {"builder": {"id": builder}, "metadata": {"invocationId": "run-1"}},
    }


def dsse(key: KeyPair, statement: bytes) -> Envelope:
    return Envelope(
        INTOTO_PAYLOAD_TYPE, statement, (key.sign(pae(INTOTO_PAYLOAD_TYPE, statement)),)
    )


def provenance(
    key: KeyPair,
    digest: str,
    *,
    builder: str = BUILDER,
    repo: str = REPO,
    commit: str = COMMIT,
    name: str = "reg.example/shop/web",
) -> Attestation:
    st = statement_bytes(name, digest, SLSA_V1, slsa_v1(builder, repo, commit))
    return Attestation(SLSA_V1, json.dumps(dsse(key, st).to_dict()).encode())


def found(*items: SimpleSignature | Attestation) -> Found:
    f = Found()
    for i in items:
        if isinstance(i, SimpleSignature):
            f.signatures.append(i)
        else:
            f.attestations.append(i)
    return f


def sig_layer(sig: SimpleSignature) -> tuple[bytes, str, dict[str, str]]:
    """A cosign .sig manifest layer (for stella.supplychain.cosign.layer_manifest)."""
    return sig.payload, SIMPLE_SIGNING, {SIGNATURE_ANNOTATION: sig.signature}


def att_layer(att: Attestation) -> tuple[bytes, str, dict[str, str]]:
    return att.envelope, DSSE_LAYER, {PREDICATE_ANNOTATION: att.predicate_type}


# ---- cosign itself (built from github.com/sigstore/cosign/v2 by hack/build-binaries.sh) ----
COSIGN_VERSION = os.environ.get("COSIGN_VERSION", "v2.6.5")


def cosign_binary() -> Path:
    """The cached cosign, built on first use (as the control plane's binaries are)."""
    cache = Path(os.environ.get("STELLA_CACHE") or Path.home() / ".cache/stella")
    path = cache / "bin" / f"cosign-{COSIGN_VERSION}" / "cosign"
    if not path.exists():
        subprocess.run(["bash", str(ROOT / "hack/build-binaries.sh"), "cosign"], check=True)
    return path


@dataclass
class Cosign:
    """cosign as a CI job or a platform engineer runs it: keys generated per test, no
    transparency log, the loopback registry over plain HTTP, no network beyond it."""

    workdir: Path
    binary: Path = field(default_factory=cosign_binary)
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. COSIGN_EXPERIMENTAL=1

    def env(self) -> dict[str, str]:
        return {
            **self.extra_env,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "COSIGN_PASSWORD": "",
            "COSIGN_YES": "true",
            "TUF_ROOT": str(self.workdir / "tuf"),
            "SIGSTORE_NO_CACHE": "true",
            # Loopback only: anything cosign would fetch from the public-good instance (its
            # TUF root) goes to a closed port on loopback instead of leaving the machine.
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost",
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [str(self.binary), *args],
            check=False,
            cwd=self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"cosign {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out

    def trusted_root(self) -> str:
        path = self.workdir / "empty-trusted-root.json"
        if not path.exists():
            path.write_text(json.dumps(EMPTY_TRUSTED_ROOT))
        return str(path)

    def verify_attestation(
        self, key: Path, type_: str, image: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`cosign verify-attestation --key K --insecure-ignore-tlog --type T IMAGE`, offline."""
        return self.run(
            "verify-attestation",
            "--key",
            str(key),
            "--insecure-ignore-tlog",
            "--offline",
            "--trusted-root",
            self.trusted_root(),
            "--type",
            type_,
            *OFFLINE_REGISTRY[1:],
            image,
            check=check,
        )

    def verify_blob_attestation(
        self, bundle: Path, key: Path, digest_hex: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`cosign verify-blob-attestation --bundle B --key K --offline` for a keyed bundle
        of Stella evidence, bound to the image digest its subject names."""
        return self.run(
            "verify-blob-attestation",
            "--bundle",
            str(bundle),
            "--key",
            str(key),
            "--offline",
            "--new-bundle-format",
            "--insecure-ignore-tlog",
            "--trusted-root",
            self.trusted_root(),
            "--type",
            "https://stella.io/evidence/v1",
            "--digest",
            digest_hex,
            "--digestAlg",
            "sha256",
            check=check,
        )

    def keypair(self, name: str) -> tuple[Path, str]:
        """(private key path, public PEM) from `cosign generate-key-pair`."""
        self.run("generate-key-pair", "--output-key-prefix", name)
        return self.workdir / f"{name}.key", (self.workdir / f"{name}.pub").read_text()

    def sign(self, key: Path, image: str) -> None:
        self.run("sign", "--key", str(key), *OFFLINE_REGISTRY, image)

    def attest_provenance(self, key: Path, image: str, predicate: dict[str, Any]) -> None:
        pred = self.workdir / f"provenance-{uuid.uuid4().hex[:6]}.json"
        pred.write_text(json.dumps(predicate))
        self.run(
            "attest",
            "--key",
            str(key),
            "--type",
            "slsaprovenance1",
            "--predicate",
            str(pred),
            *OFFLINE_REGISTRY,
            image,
        )


#: An empty trusted root: keyed verification needs no Fulcio CA or Rekor key, and with a
#: root given cosign does not look for the public-good one.
EMPTY_TRUSTED_ROOT = {
    "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "tlogs": [],
    "certificateAuthorities": [],
    "ctlogs": [],
    "timestampAuthorities": [],
}

OFFLINE_REGISTRY = ("--tlog-upload=false", "--allow-http-registry", "--allow-insecure-registry")
