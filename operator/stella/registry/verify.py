"""What the operator calls before a deploy: verify every image of a Release, check drift.

::

    lookup = vault_credentials(vault, env.spec.registry_credentials, env.spec.allowed_registries)
    report = await verify_release_images(registry, [c.image for c in release.spec.components],
                                         lookup)
    if report.ok: deploy
    elif report.halts: halt the Environment (reason report.reason: DigestMismatch or
                       ManifestNotFound), Event, metric, evidence — until a person clears it
    else: fail closed, retry after report.retry_after (registry or Vault down, auth refused)

Nothing here raises for a failed image; every outcome is in the report, including a
failure to obtain credentials (Vault down -> reason VaultUnavailable, fail closed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from stella.registry.client import (
    RegistryClient,
    RegistryCredentials,
    VerifiedManifest,
    gather_limited,
)
from stella.registry.errors import (
    InvalidImageReference,
    RegistryAuthFailed,
    RegistryError,
    TagNotFound,
)
from stella.registry.reference import ImageRef, credentials_matcher, parse_image_ref, parse_pinned
from stella.secrets.errors import SecretsError
from stella.secrets.refs import VaultRef, parse_vault_ref
from stella.secrets.vault import VaultClient

#: Given the image about to be fetched, the credentials for its registry (or None).
CredentialsLookup = Callable[[ImageRef], Awaitable[RegistryCredentials | None]]

VERIFIED = "Verified"
# When several images fail, the report's reason is the most serious one.
_SEVERITY = ["DigestMismatch", "ManifestNotFound"]


@dataclass(frozen=True)
class ImageCheck:
    image: str
    ok: bool
    reason: str  # "Verified" or the error's reason (DigestMismatch, VaultUnavailable, ...)
    message: str
    halts: bool = False
    retry_after: float | None = None
    manifest: VerifiedManifest | None = None
    error: Exception | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class VerificationReport:
    checks: tuple[ImageCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[ImageCheck]:
        return [c for c in self.checks if not c.ok]

    @property
    def halts(self) -> bool:
        """True when an artifact itself is wrong: halt the Environment until a person clears it."""
        return any(c.halts for c in self.checks)

    @property
    def reason(self) -> str:
        failed = self.failures
        if not failed:
            return VERIFIED
        for r in _SEVERITY:
            if any(c.reason == r for c in failed):
                return r
        return failed[0].reason

    @property
    def message(self) -> str:
        failed = self.failures
        if not failed:
            return f"{len(self.checks)} image(s) verified against their registries"
        shown = "; ".join(c.message for c in failed[:3])
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
        return f"{len(failed)} of {len(self.checks)} image(s) failed verification: {shown}{more}"

    @property
    def retry_after(self) -> float | None:
        waits = [c.retry_after for c in self.failures if c.retry_after is not None]
        return max(waits) if waits else None


async def verify_release_images(
    client: RegistryClient,
    images: Iterable[str],
    credentials_lookup: CredentialsLookup | None = None,
    *,
    concurrency: int = 8,
) -> VerificationReport:
    """Verify each pinned image's manifest against its registry, concurrently."""
    cache: dict[str, RegistryCredentials | None] = {}  # per call only: dropped on return

    async def creds_for(ref: ImageRef) -> RegistryCredentials | None:
        if credentials_lookup is None:
            return None
        if ref.api_host not in cache:
            cache[ref.api_host] = await credentials_lookup(ref)
        return cache[ref.api_host]

    async def one(image: str) -> ImageCheck:
        try:
            ref = parse_pinned(image)
            manifest = await client.verify_digest(ref, await creds_for(ref))
        except RegistryError as err:
            return ImageCheck(
                image=image,
                ok=False,
                reason=err.reason,
                message=err.message,
                halts=err.halts,
                retry_after=err.retry_after,
                error=err,
            )
        except SecretsError as err:
            return ImageCheck(
                image=image,
                ok=False,
                reason=err.reason,
                message=f"registry credentials for {image}: {err.message}",
                retry_after=err.retry_after,
                error=err,
            )
        return ImageCheck(
            image=image, ok=True, reason=VERIFIED, message="verified", manifest=manifest
        )

    try:
        checks = await gather_limited([one(i) for i in images], concurrency)
    finally:
        cache.clear()
    return VerificationReport(checks=tuple(checks))


def vault_credentials(
    vault: VaultClient,
    reference: str | VaultRef | None,
    allowed_registries: Iterable[str] = (),
    *,
    username_key: str = "username",
) -> CredentialsLookup:
    """Credentials from Vault for an Environment's ``registryCredentials``.

    The reference names the password (or token) key; the same Vault secret holds the user
    name under ``username_key``::

        bao kv put secret/registry/prod username=stella password=...
        registryCredentials: vault:secret/registry/prod#password

    Credentials go only to hosts listed in ``allowed_registries``, compared as admission
    and the deploy-time check compare them (``normalize_registry``: ``docker.io``,
    ``index.docker.io`` and ``registry-1.docker.io`` are one registry): a Release naming
    another registry gets an anonymous request, never the secret. An EMPTY list sends the
    credentials to no registry at all (Vault is not read): "any registry allowed" must not
    mean "the password to any registry a Release names" (T1/T9).
    Each call reads Vault afresh; nothing is cached between verifications.
    """
    allowed = credentials_matcher(allowed_registries)
    ref = (
        None
        if reference is None
        else reference
        if isinstance(reference, VaultRef)
        else parse_vault_ref(reference, "registryCredentials")
    )

    async def lookup(image: ImageRef) -> RegistryCredentials | None:
        if ref is None:
            return None
        if not allowed(image):
            return None
        values = await vault.aread_keys(ref, username_key)
        return RegistryCredentials(username=values[username_key].reveal(), password=values[ref.key])

    return lookup


def credentials_withheld(
    environment: str, registry_credentials: object, allowed_registries: Sequence[str]
) -> str | None:
    """Why an Environment's credentials go to no registry, or None when they may go to
    some: it sets ``registryCredentials`` but lists no ``allowedRegistries`` (admission
    refuses that since issue T1/T9; an Environment stored before keeps working anonymously).
    The same words for admission's refusal and for a verification the registry refused."""
    if registry_credentials is None or allowed_registries:
        return None
    return (
        f"Environment {environment} sets registryCredentials but no allowedRegistries: "
        "credentials are sent only to registries listed there; list the registry in "
        "spec.allowedRegistries"
    )


def advised_message(report: VerificationReport, withheld: str | None) -> str:
    """The report's message, led by `withheld` (:func:`credentials_withheld`) when the
    registry refused the anonymous request the withheld credentials left: what to fix."""
    if withheld is not None and report.reason == RegistryAuthFailed.reason:
        return f"{withheld} ({report.message})"
    return report.message


def static_credentials(
    credentials: RegistryCredentials | None, hosts: Iterable[str] = ()
) -> CredentialsLookup:
    """A lookup returning fixed credentials for the hosts in ``hosts`` only (none when empty)."""
    only = credentials_matcher(hosts)

    async def lookup(image: ImageRef) -> RegistryCredentials | None:
        if not only(image):
            return None
        return credentials

    return lookup


@dataclass(frozen=True)
class DriftCheck:
    """Whether a tag still points at the digest a Release pinned. Reported, never followed."""

    image: str
    tag: str
    pinned: str
    current: str | None  # None: the tag is gone, or could not be resolved (see reason)
    reason: str  # InSync, Drifted, TagNotFound, or an error reason
    message: str

    @property
    def drifted(self) -> bool:
        return self.reason in ("Drifted", "TagNotFound")


async def check_drift(
    client: RegistryClient,
    image: str,
    credentials_lookup: CredentialsLookup | None = None,
) -> DriftCheck | None:
    """For ``repo:tag@sha256:...``: does the tag still point at the pin? None without a tag."""
    ref = parse_pinned(image)
    if not ref.tag or ref.digest is None:
        return None
    try:
        creds = await credentials_lookup(ref) if credentials_lookup else None
        current = await client.resolve_tag(ref.without_digest(), creds)
    except TagNotFound as err:
        return DriftCheck(image, ref.tag, ref.digest, None, err.reason, err.message)
    except (RegistryError, SecretsError) as err:
        return DriftCheck(image, ref.tag, ref.digest, None, err.reason, err.message)
    if current == ref.digest:
        return DriftCheck(image, ref.tag, ref.digest, current, "InSync", "tag matches the pin")
    return DriftCheck(
        image,
        ref.tag,
        ref.digest,
        current,
        "Drifted",
        f"tag {ref.tag} of {ref.name} now points at {current}, not the pinned {ref.digest}; "
        "Stella keeps deploying the pinned digest",
    )


async def check_drift_many(
    client: RegistryClient,
    images: Sequence[str],
    credentials_lookup: CredentialsLookup | None = None,
    *,
    concurrency: int = 8,
) -> list[DriftCheck]:
    results = await gather_limited(
        [check_drift(client, i, credentials_lookup) for i in images], concurrency
    )
    return [r for r in results if r is not None]


@dataclass(frozen=True)
class PinnedImage:
    source: str  # as written, with a tag
    image: str  # fully qualified, tag kept for readers, pinned: host/repo:tag@sha256:...
    digest: str


async def pin_images(
    client: RegistryClient,
    images: Sequence[str],
    credentials_lookup: CredentialsLookup | None = None,
    *,
    concurrency: int = 8,
) -> list[PinnedImage]:
    """Resolve each ``repo:tag`` to its digest once (``stella release create --from-tags``).

    An image already pinned is verified instead. Raises the first :class:`RegistryError`
    (TagNotFound, RegistryUnavailable, ...) or :class:`SecretsError`: a Release is written
    only when every component resolved.
    """

    async def one(image: str) -> PinnedImage:
        ref = parse_image_ref(image)
        creds = await credentials_lookup(ref) if credentials_lookup else None
        if ref.digest is not None:
            await client.verify_digest(ref, creds)
            return PinnedImage(source=image, image=str(ref), digest=ref.digest)
        if not ref.tag:
            raise InvalidImageReference(
                f"image {image!r} has neither tag nor digest; name the tag to resolve "
                "(an implicit 'latest' is not pinned on purpose)",
                image=image,
            )
        digest = await client.resolve_tag(ref, creds)
        return PinnedImage(source=image, image=str(ref.with_digest(digest)), digest=digest)

    return list(await gather_limited([one(i) for i in images], concurrency))
