"""Find an image's signatures and attestations where cosign and OCI 1.1 put them.

* cosign's tags in the image's repository: ``sha256-<hex>.sig`` (simple-signing layers)
  and ``sha256-<hex>.att`` (DSSE layers);
* the OCI Referrers API (``GET /v2/<repo>/referrers/<digest>``), where the registry has
  it: manifests whose ``subject`` is the image, e.g. Sigstore bundles (cosign
  ``--new-bundle-format``) and cosign ``--registry-referrers-mode=oci-1-1`` signatures;
* where the registry answers 404 there (distribution 2.8), the OCI 1.1 referrers tag schema
  instead: the image index at tag ``sha256-<hex>`` that those clients then keep.

A referrer counts only when its manifest's ``subject`` is the image's digest.

Every blob is fetched by digest and checked against it before it is parsed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from stella.registry.artifacts import (
    cosign_tag,
    fetch_blob,
    fetch_manifest,
    referrers,
    referrers_by_tag,
)
from stella.registry.client import RegistryClient, RegistryCredentials
from stella.registry.reference import ImageRef
from stella.supplychain.bundle import BUNDLE_TYPES
from stella.supplychain.cosign import (
    DSSE_LAYER,
    PREDICATE_ANNOTATION,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
)

#: At most this many layers of one kind are read per image (a flood of signatures must not
#: turn one check into thousands of requests).
MAX_LAYERS = 32


@dataclass(frozen=True)
class SimpleSignature:
    payload: bytes
    signature: str  # base64, as the layer annotation holds it


@dataclass(frozen=True)
class Attestation:
    predicate_type: str  # the layer's annotation ("" when absent)
    envelope: bytes  # DSSE envelope JSON


@dataclass
class Found:
    """What an image carries; ``referrers_api`` says whether the registry has the API."""

    signatures: list[SimpleSignature] = field(default_factory=list)
    attestations: list[Attestation] = field(default_factory=list)
    bundles: list[bytes] = field(default_factory=list)
    referrers_api: bool = False


async def discover(
    client: RegistryClient,
    ref: ImageRef,
    credentials: RegistryCredentials | None = None,
    *,
    signatures: bool = True,
    attestations: bool = True,
) -> Found:
    assert ref.digest is not None
    digest = ref.digest
    found = Found()

    async def by_tag(suffix: str) -> None:
        m = await fetch_manifest(client, ref, cosign_tag(digest, suffix), credentials)
        if m is not None:
            await _read_layers(client, ref, m.layers, credentials, found)

    async def by_referrers() -> None:
        descs = await referrers(client, ref, digest, credentials)
        if descs is None:
            descs = await referrers_by_tag(client, ref, digest, credentials)
        else:
            found.referrers_api = True
        for d in descs[:MAX_LAYERS]:
            mdigest = d.get("digest")
            if not isinstance(mdigest, str):
                continue
            m = await fetch_manifest(client, ref, mdigest, credentials)
            subject = m.doc.get("subject") if m is not None else None
            if m is not None and isinstance(subject, dict) and subject.get("digest") == digest:
                await _read_layers(client, ref, m.layers, credentials, found)

    work = [by_referrers()]
    if signatures:
        work.append(by_tag("sig"))
    if attestations:
        work.append(by_tag("att"))
    await asyncio.gather(*work)
    return found


async def _read_layers(
    client: RegistryClient,
    ref: ImageRef,
    layers: list[dict[str, object]],
    credentials: RegistryCredentials | None,
    found: Found,
) -> None:
    for layer in layers[:MAX_LAYERS]:
        media_type, digest = layer.get("mediaType"), layer.get("digest")
        annotations = layer.get("annotations")
        ann = annotations if isinstance(annotations, dict) else {}
        if not isinstance(digest, str):
            continue
        if media_type == SIMPLE_SIGNING:
            sig = ann.get(SIGNATURE_ANNOTATION)
            if not isinstance(sig, str):
                continue
            payload = await fetch_blob(client, ref, digest, credentials)
            found.signatures.append(SimpleSignature(payload, sig))
        elif media_type == DSSE_LAYER:
            blob = await fetch_blob(client, ref, digest, credentials)
            ptype = ann.get(PREDICATE_ANNOTATION)
            found.attestations.append(Attestation(ptype if isinstance(ptype, str) else "", blob))
        elif isinstance(media_type, str) and media_type in BUNDLE_TYPES:
            found.bundles.append(await fetch_blob(client, ref, digest, credentials))
