"""Typed errors of the registry layer.

``reason`` is the word a condition or Event carries; ``halts`` says whether the failure
means the artifact itself is wrong (the Environment halts until a person clears it) rather
than a path to it being down (fail closed and retry with ``retry_after``). Messages name
the image and digest, never a credential.
"""

from __future__ import annotations


class RegistryError(Exception):
    reason = "RegistryError"
    halts = False
    transient = False

    def __init__(
        self, message: str, *, image: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.image = image
        self.retry_after = retry_after


class InvalidImageReference(RegistryError, ValueError):
    reason = "InvalidImageReference"


class DigestMismatch(RegistryError):
    """The registry served bytes (or a Docker-Content-Digest) other than the pinned digest."""

    reason = "DigestMismatch"
    halts = True

    def __init__(
        self,
        message: str,
        *,
        image: str,
        expected: str,
        actual: str,
        header: str | None,
    ) -> None:
        super().__init__(message, image=image)
        self.expected = expected
        self.actual = actual
        self.header = header


class ManifestNotFound(RegistryError):
    """No manifest or index for the pinned digest (deleted, or never pushed there)."""

    reason = "ManifestNotFound"
    halts = True


class TagNotFound(RegistryError):
    """A tag to resolve (``--from-tags``, drift) does not exist."""

    reason = "TagNotFound"


class RegistryUnavailable(RegistryError):
    """Unreachable, timing out, 5xx or 429, or its circuit breaker is open: fail closed."""

    reason = "RegistryUnavailable"
    transient = True


class RegistryAuthFailed(RegistryError):
    """The registry or its token service refused the credentials, or needs some."""

    reason = "RegistryAuthFailed"
    transient = True
