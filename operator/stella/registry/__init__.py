"""OCI distribution client: digest verification before every deploy, tag resolution, drift."""

from stella.registry.client import (
    RegistryClient,
    RegistryCredentials,
    VerifiedManifest,
    parse_www_authenticate,
)
from stella.registry.errors import (
    DigestMismatch,
    InvalidImageReference,
    ManifestNotFound,
    RegistryAuthFailed,
    RegistryError,
    RegistryUnavailable,
    TagNotFound,
)
from stella.registry.reference import ImageRef, parse_image_ref, parse_pinned
from stella.registry.verify import (
    CredentialsLookup,
    DriftCheck,
    ImageCheck,
    PinnedImage,
    VerificationReport,
    check_drift,
    check_drift_many,
    pin_images,
    static_credentials,
    vault_credentials,
    verify_release_images,
)

__all__ = [
    "CredentialsLookup",
    "DigestMismatch",
    "DriftCheck",
    "ImageCheck",
    "ImageRef",
    "InvalidImageReference",
    "ManifestNotFound",
    "PinnedImage",
    "RegistryAuthFailed",
    "RegistryClient",
    "RegistryCredentials",
    "RegistryError",
    "RegistryUnavailable",
    "TagNotFound",
    "VerificationReport",
    "VerifiedManifest",
    "check_drift",
    "check_drift_many",
    "parse_image_ref",
    "parse_pinned",
    "parse_www_authenticate",
    "pin_images",
    "static_credentials",
    "vault_credentials",
    "verify_release_images",
]
