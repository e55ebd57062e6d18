"""Artifacts stored beside an image: read and write manifests and blobs by tag or digest,
and list an image's referrers (OCI 1.1 Referrers API) where the registry has it.

Cosign keeps an image's signatures and attestations as ordinary manifests under the tags
``sha256-<hex>.sig`` and ``sha256-<hex>.att`` in the image's own repository;
:mod:`stella.supplychain` reads (and, for Stella's passport, writes) them through these
functions. Every blob read is checked against its digest before anyone parses it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from stella.registry.client import OCI_INDEX, OCI_MANIFEST, RegistryClient, RegistryCredentials
from stella.registry.errors import DigestMismatch, RegistryError
from stella.registry.reference import ImageRef

#: Signatures, attestations and their blobs are small; a bigger one is refused, not read.
MAX_ARTIFACT_BYTES = 4 * 1024 * 1024


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def cosign_tag(digest: str, suffix: str) -> str:
    """``sha256:<hex>`` -> ``sha256-<hex>.<suffix>``, the tag cosign stores ``sig``/``att`` at."""
    algo, _, hex_ = digest.partition(":")
    return f"{algo}-{hex_}.{suffix}"


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    raw: bytes
    doc: dict[str, Any]

    @property
    def layers(self) -> list[dict[str, Any]]:
        layers = self.doc.get("layers")
        return [x for x in layers if isinstance(x, dict)] if isinstance(layers, list) else []


def json_object(raw: bytes) -> dict[str, Any] | None:
    """``raw`` parsed as a JSON object, or None (not JSON, or not an object)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _parse(raw: bytes, where: str) -> dict[str, Any]:
    doc = json_object(raw)
    if doc is None:
        raise RegistryError(f"{where} is not a JSON object")
    return doc


def _same_bytes(ref: ImageRef, raw: bytes, expected: str, what: str, header: str | None) -> None:
    """Raise DigestMismatch unless ``raw`` hashes to ``expected``."""
    actual = sha256_digest(raw)
    if actual != expected:
        raise DigestMismatch(
            f"registry {ref.registry} served {what} of {ref.repository} whose bytes hash to "
            f"{actual}, not {expected}",
            image=str(ref),
            expected=expected,
            actual=actual,
            header=header,
        )


async def fetch_manifest(
    client: RegistryClient,
    ref: ImageRef,
    reference: str,
    credentials: RegistryCredentials | None = None,
) -> Manifest | None:
    """The manifest at a tag or digest of ``ref``'s repository; None when there is none."""
    status, headers, raw = await client.request(
        ref, "GET", f"manifests/{reference}", credentials, limit=MAX_ARTIFACT_BYTES
    )
    if status == 404:
        return None
    _expect(client, ref, status, (200,))
    if reference.startswith("sha256:"):
        _same_bytes(ref, raw, reference, "a manifest", headers.get("Docker-Content-Digest"))
    digest = sha256_digest(raw)
    media_type = headers.get("Content-Type", "").split(";")[0].strip()
    return Manifest(digest, media_type, raw, _parse(raw, f"manifest {ref.name}:{reference}"))


async def fetch_blob(
    client: RegistryClient,
    ref: ImageRef,
    digest: str,
    credentials: RegistryCredentials | None = None,
) -> bytes:
    """A blob of ``ref``'s repository whose bytes hash to ``digest`` (or an error)."""
    status, _, raw = await client.request(
        ref, "GET", f"blobs/{digest}", credentials, limit=MAX_ARTIFACT_BYTES
    )
    _expect(client, ref, status, (200,))
    _same_bytes(ref, raw, digest, "a blob", None)
    return raw


async def referrers(
    client: RegistryClient,
    ref: ImageRef,
    digest: str,
    credentials: RegistryCredentials | None = None,
) -> list[dict[str, Any]] | None:
    """The descriptors of the manifests whose ``subject`` is ``digest`` (OCI 1.1 Referrers
    API); None when the registry does not implement it (404, as distribution 2.8 answers)."""
    status, headers, raw = await client.request(
        ref,
        "GET",
        f"referrers/{digest}",
        credentials,
        headers={"Accept": OCI_INDEX},
        limit=MAX_ARTIFACT_BYTES,
    )
    if status == 404:
        return None
    _expect(client, ref, status, (200,))
    if headers.get("Content-Type", "").split(";")[0].strip() != OCI_INDEX:
        return None
    found = _parse(raw, f"referrers of {ref.name}@{digest}").get("manifests")
    return [m for m in found if isinstance(m, dict)] if isinstance(found, list) else []


def referrers_tag(digest: str) -> str:
    """``sha256:<hex>`` -> ``sha256-<hex>``: the OCI 1.1 referrers tag schema, the image index
    a client keeps (cosign ``--registry-referrers-mode=oci-1-1``, oras) where a registry has
    no Referrers API."""
    algo, _, hex_ = digest.partition(":")
    return f"{algo}-{hex_}"


async def referrers_by_tag(
    client: RegistryClient,
    ref: ImageRef,
    digest: str,
    credentials: RegistryCredentials | None = None,
) -> list[dict[str, Any]]:
    """The descriptors the referrers tag schema lists for ``digest`` (empty when there is no
    such index). Anyone who may push a tag may write it: callers check each manifest's
    ``subject`` and every signature, as for the API's answer."""
    index = await fetch_manifest(client, ref, referrers_tag(digest), credentials)
    if index is None:
        return []
    found = index.doc.get("manifests")
    return [m for m in found if isinstance(m, dict)] if isinstance(found, list) else []


async def push_blob(
    client: RegistryClient,
    ref: ImageRef,
    data: bytes,
    credentials: RegistryCredentials | None = None,
) -> str:
    """Upload ``data`` (skipped when the registry has it already); returns its digest."""
    digest = sha256_digest(data)
    status, _, _ = await client.request(ref, "HEAD", f"blobs/{digest}", credentials, push=True)
    if status == 200:
        return digest
    status, headers, _ = await client.request(ref, "POST", "blobs/uploads/", credentials, push=True)
    _expect(client, ref, status, (202,))
    location = headers.get("Location", "")
    if not location:
        raise RegistryError(f"registry {ref.registry} gave no upload location", image=str(ref))
    sep = "&" if "?" in location else "?"
    status, _, _ = await client.request(
        ref,
        "PUT",
        f"{location}{sep}digest={digest}",
        credentials,
        push=True,
        body=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    _expect(client, ref, status, (201,))
    return digest


async def push_manifest(
    client: RegistryClient,
    ref: ImageRef,
    reference: str,
    raw: bytes,
    credentials: RegistryCredentials | None = None,
    *,
    media_type: str = OCI_MANIFEST,
) -> str:
    """PUT a manifest at a tag (or its digest); returns the manifest's digest."""
    status, _, _ = await client.request(
        ref,
        "PUT",
        f"manifests/{reference}",
        credentials,
        push=True,
        body=raw,
        headers={"Content-Type": media_type},
    )
    _expect(client, ref, status, (201,))
    return sha256_digest(raw)


def _expect(client: RegistryClient, ref: ImageRef, status: int, ok: tuple[int, ...]) -> None:
    if status in ok:
        return
    if status in (401, 403):
        client.expect_ok_status(status, ref)
    raise RegistryError(
        f"registry {ref.registry} answered HTTP {status} for {ref.repository}", image=str(ref)
    )
