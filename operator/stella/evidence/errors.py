"""Typed errors of the evidence subsystem.

Each error carries a ``reason`` (a CamelCase word for a condition's ``reason``), says whether
retrying later may succeed (``transient``) and, where it knows, ``retry_after`` seconds, so a
handler maps it to a condition and a retry without knowing the details:

* :class:`SignerUnavailable` (Vault down, sealed, refused): nothing may be deployed.
* :class:`LogUnavailable` (the external log is down): the promotion waits,
  condition ``EvidencePending``, and resumes when the log returns.
* :class:`StoreUnavailable` (the API server refused or failed the ConfigMap write).
* :class:`ChainConflict`: another writer advanced the chain first and retries ran out.
* :class:`IntegrityError`: a stored record disagrees with what should be there (tampering,
  or a bug); never transient, never retried blindly.

No message ever contains a secret (tokens, passwords, DSNs with passwords).
"""

from __future__ import annotations


class EvidenceError(Exception):
    """Base of every error the evidence subsystem raises."""

    reason = "EvidenceError"
    transient = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class SignerUnavailable(EvidenceError):
    """The packet could not be signed (Vault down, sealed, permission denied, key missing)."""

    reason = "EvidenceSignerUnavailable"
    transient = True


class LogUnavailable(EvidenceError):
    """The external append-only log cannot be reached or refused the write."""

    reason = "EvidencePending"
    transient = True


class StoreUnavailable(EvidenceError):
    """The ConfigMap store (the API server) cannot be reached or refused the write."""

    reason = "EvidencePending"
    transient = True


class ChainConflict(EvidenceError):
    """Another writer advanced the environment's chain first (optimistic concurrency)."""

    reason = "EvidenceChainConflict"
    transient = True


class DuplicatePacket(EvidenceError):
    """A packet with this id is already in the log (used internally for idempotency)."""

    reason = "EvidenceDuplicate"


class IntegrityError(EvidenceError):
    """A stored record disagrees with the one that should be there."""

    reason = "EvidenceIntegrity"


class MalformedPacket(EvidenceError, ValueError):
    """An envelope or statement does not parse, or the event would leak a secret."""

    reason = "EvidenceMalformed"


class SignatureInvalid(EvidenceError):
    """No signature on the envelope verifies with a published key."""

    reason = "EvidenceSignatureInvalid"
