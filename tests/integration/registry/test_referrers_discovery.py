"""Issue 17: signatures found through the OCI 1.1 Referrers API, against a registry that
implements it (go-containerregistry's, hack/referrers-registry) and, for the referrers tag
schema clients fall back to, against the distribution registry (2.8, no Referrers API).
cosign itself signs, keys generated per module, no transparency log, loopback only.

Also settles what cosign's ``--new-bundle-format`` image signature is: a keyed Sigstore
bundle of a DSSE in-toto Statement (predicate https://sigstore.dev/cosign/sign/v1, subject
the image digest), attached as a referrer — and that Stella's check_signatures accepts it
for that digest only, as ``cosign verify --new-bundle-format`` does."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.keyless_support import SigstoreInstance
from tests.supplychain_support import OFFLINE_REGISTRY, Cosign

from devenv.services import Registry, push_image
from stella.registry import RegistryClient
from stella.registry.artifacts import push_blob, push_manifest
from stella.registry.reference import parse_pinned
from stella.supplychain.bundle import BUNDLE_V03, Identity
from stella.supplychain.check import SignatureRule, check_image
from stella.supplychain.discovery import Found, discover
from stella.supplychain.keys import load_trusted_key

OCI_11 = "--registry-referrers-mode=oci-1-1"


@dataclass
class Signer:
    cosign: Cosign
    key: Path
    rule: SignatureRule  # trusts the key above only
    stranger: SignatureRule  # trusts another key


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signer]:
    work = tmp_path_factory.mktemp("referrers")
    cosign = Cosign(work, extra_env={"COSIGN_EXPERIMENTAL": "1"})  # oci-1-1 mode needs it
    key, pub = cosign.keypair("ci")
    _, other = cosign.keypair("stranger")
    yield Signer(
        cosign,
        key,
        SignatureRule(keys=(load_trusted_key("ci.pub", pub),)),
        SignatureRule(keys=(load_trusted_key("stranger.pub", other),)),
    )


def image(reg: Registry, beside: str | None = None) -> str:
    """A fresh image in a new repository, or in the repository of the image ``beside``."""
    repo = parse_pinned(beside).repository if beside else f"shop/web-{uuid.uuid4().hex[:6]}"
    tag = uuid.uuid4().hex[:6]
    digest = push_image(reg.url, repo, tag, f"payload {uuid.uuid4()}".encode())
    return f"{reg.host}/{repo}@{digest}"


def tags(reg: Registry, img: str) -> list[str]:
    repo = parse_pinned(img).repository
    with urllib.request.urlopen(f"{reg.url}/v2/{repo}/tags/list", timeout=5) as r:
        return list(json.load(r)["tags"])


def found(reg: Registry, img: str) -> Found:
    async def go() -> Found:
        async with RegistryClient(insecure_registries={reg.host}, timeout=5) as client:
            return await discover(client, parse_pinned(img), attestations=False)

    return asyncio.run(go())


def checked(reg: Registry, img: str, rule: SignatureRule) -> tuple[bool, str, str]:
    async def go() -> tuple[bool, str, str]:
        async with RegistryClient(insecure_registries={reg.host}, timeout=5) as client:
            r = await check_image(client, img, rule, None)
        return r.ok, r.reason, r.message

    return asyncio.run(go())


def test_a_cosign_oci11_signature_is_found_through_the_referrers_api(
    referrers_registry: Registry, signer: Signer
) -> None:
    img = image(referrers_registry)
    signer.cosign.run("sign", "--key", str(signer.key), *OFFLINE_REGISTRY, OCI_11, img)
    assert not [t for t in tags(referrers_registry, img) if t.startswith("sha256-")]
    f = found(referrers_registry, img)
    assert f.referrers_api and len(f.signatures) == 1
    assert checked(referrers_registry, img, signer.rule) == (True, "Verified", "signed by ci.pub")
    ok, reason, message = checked(referrers_registry, img, signer.stranger)
    assert (ok, reason) == (False, "SignatureUntrusted") and "stranger.pub" in message
    # Another image of the same repository is not signed by it.
    other = image(referrers_registry, beside=img)
    assert checked(referrers_registry, other, signer.rule)[1] == "SignatureMissing"


def test_cosign_new_bundle_format_signatures_pass_for_their_digest_only(
    referrers_registry: Registry, signer: Signer
) -> None:
    img = image(referrers_registry)
    signer.cosign.run(
        "sign", "--key", str(signer.key), *OFFLINE_REGISTRY, "--new-bundle-format", img
    )
    f = found(referrers_registry, img)
    assert f.referrers_api and len(f.bundles) == 1 and not f.signatures
    bundle = json.loads(f.bundles[0])
    assert "publicKey" in bundle["verificationMaterial"] and "dsseEnvelope" in bundle
    # cosign itself verifies it offline with the key ...
    verify = [
        "verify",
        "--key",
        str(signer.key.with_suffix(".pub")),
        "--new-bundle-format",
        "--insecure-ignore-tlog",
        "--offline",
        "--trusted-root",
        signer.cosign.trusted_root(),
        *OFFLINE_REGISTRY[1:],
    ]
    signer.cosign.run(*verify, img)
    # ... and so does Stella; a stranger's key does not.
    assert checked(referrers_registry, img, signer.rule) == (True, "Verified", "signed by ci.pub")
    assert checked(referrers_registry, img, signer.stranger)[1] == "SignatureUntrusted"
    # The same bundle attached to another image (its subject is still the first digest)
    # signs nothing there: Stella and cosign agree.
    other = image(referrers_registry, beside=img)
    replay_referrer(referrers_registry, img, other)
    assert len(found(referrers_registry, other).bundles) == 1
    assert checked(referrers_registry, other, signer.rule)[1] == "SignatureUntrusted"
    assert signer.cosign.run(*verify, other, check=False).returncode != 0


def test_a_keyless_bundle_among_the_referrers_passes_for_its_identity(
    referrers_registry: Registry,
) -> None:
    """A certificate-signed bundle (tests/keyless_support: Fulcio-like CA, CT log and Rekor
    log made here) attached as cosign attaches --new-bundle-format bundles, found through
    the Referrers API and verified offline against the trusted root for one identity."""
    sigstore = SigstoreInstance()
    img = image(referrers_registry)
    ref = parse_pinned(img)
    assert ref.digest is not None
    bundle = sigstore.bundle(
        sigstore.leaf("ci@example.com", "https://issuer.example.com"), ref.name, ref.digest
    )

    async def attach() -> None:
        async with RegistryClient(insecure_registries={referrers_registry.host}) as client:
            config = await push_blob(client, ref, b"{}")
            layer_bytes = json.dumps(bundle).encode()
            layer = await push_blob(client, ref, layer_bytes)
            manifest = {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": BUNDLE_V03,
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "size": 2,
                    "digest": config,
                },
                "layers": [{"mediaType": BUNDLE_V03, "size": len(layer_bytes), "digest": layer}],
                "subject": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": ref.digest,
                    "size": 0,
                },
            }
            raw = json.dumps(manifest).encode()
            await push_manifest(client, ref, "keyless", raw)

    asyncio.run(attach())
    root = json.dumps(sigstore.trusted_root())
    trusted = SignatureRule(
        keys=(),
        trusted_root_json=root,
        identities=(Identity("ci@example.com", "https://issuer.example.com"),),
    )
    ok, reason, message = checked(referrers_registry, img, trusted)
    assert (ok, reason) == (True, "Verified"), message
    assert message == "signed by ci@example.com (issuer https://issuer.example.com)"
    other = SignatureRule(
        keys=(),
        trusted_root_json=root,
        identities=(Identity("release@example.com", "https://issuer.example.com"),),
    )
    assert checked(referrers_registry, img, other)[1] == "SignatureUntrusted"


def test_without_the_api_the_referrers_tag_schema_is_read(
    registry: Registry, signer: Signer
) -> None:
    """distribution 2.8 answers 404 on /referrers/: cosign's oci-1-1 mode then keeps the
    index at tag sha256-<hex>, and Stella reads it there."""
    img = image(registry)
    signer.cosign.run("sign", "--key", str(signer.key), *OFFLINE_REGISTRY, OCI_11, img)
    digest = img.rsplit("@", 1)[1]
    assert digest.replace(":", "-") in tags(registry, img)
    f = found(registry, img)
    assert not f.referrers_api and len(f.signatures) == 1
    assert checked(registry, img, signer.rule) == (True, "Verified", "signed by ci.pub")


def replay_referrer(reg: Registry, source: str, target: str) -> None:
    """Re-attach ``source``'s referrer (same repository) to ``target``: the same layers (the
    bundle), the subject changed — what replaying a signature onto another image pushes."""
    repo = parse_pinned(source).repository
    src, dst = source.rsplit("@", 1)[1], target.rsplit("@", 1)[1]
    with urllib.request.urlopen(f"{reg.url}/v2/{repo}/referrers/{src}", timeout=5) as r:
        desc = json.load(r)["manifests"][0]
    get = urllib.request.Request(
        f"{reg.url}/v2/{repo}/manifests/{desc['digest']}", headers={"Accept": desc["mediaType"]}
    )
    with urllib.request.urlopen(get, timeout=5) as r:
        manifest = json.load(r)
    manifest["subject"] = {**manifest["subject"], "digest": dst}
    put = urllib.request.Request(
        f"{reg.url}/v2/{repo}/manifests/replayed",
        data=json.dumps(manifest).encode(),
        method="PUT",
        headers={"Content-Type": manifest["mediaType"]},
    )
    urllib.request.urlopen(put, timeout=5).close()
