"""Typed errors of the secrets layer.

Every message says what happened and what a person should do about it, and none of them
ever contains a secret value: the messages go into conditions, Events and logs.
Each error carries a ``reason`` (a CamelCase word for a condition's ``reason`` field) and,
for transient failures, ``retry_after`` in seconds, so a handler can write
``raise kopf.TemporaryError(str(err), delay=err.retry_after)`` without knowing the details.
"""

from __future__ import annotations


class SecretsError(Exception):
    """Base of every error the secrets layer raises."""

    reason = "SecretsError"
    #: True when retrying later may succeed without anyone changing anything.
    transient = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class BadReference(SecretsError, ValueError):
    """A field that must hold ``vault:<mount>/<path>#<key>`` holds something else."""

    reason = "BadVaultReference"


class VaultUnavailable(SecretsError):
    """Vault cannot be reached, is sealed, or the circuit breaker is open: fail closed."""

    reason = "VaultUnavailable"
    transient = True


class VaultAuthFailed(SecretsError):
    """The operator could not log in to Vault, or its token may not read the path."""

    reason = "VaultAuthFailed"
    transient = True


class SecretNotFound(SecretsError):
    """The reference is well formed, but Vault holds no such secret or key."""

    reason = "SecretNotFound"
