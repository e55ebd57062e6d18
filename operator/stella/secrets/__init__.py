"""Vault references, the Vault client and secret values that cannot leak by accident.

The evidence signers (``stella.secrets.signers``) live here too, written elsewhere.
"""

from stella.secrets.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from stella.secrets.errors import (
    BadReference,
    SecretNotFound,
    SecretsError,
    VaultAuthFailed,
    VaultUnavailable,
)
from stella.secrets.refs import VaultRef, is_vault_ref, looks_like_secret, parse_vault_ref
from stella.secrets.value import SecretValue
from stella.secrets.vault import (
    AppRoleAuth,
    KubernetesAuth,
    TokenAuth,
    VaultClient,
    VaultSettings,
)

__all__ = [
    "AppRoleAuth",
    "BadReference",
    "BreakerPolicy",
    "BreakerState",
    "CircuitBreaker",
    "KubernetesAuth",
    "SecretNotFound",
    "SecretValue",
    "SecretsError",
    "TokenAuth",
    "VaultAuthFailed",
    "VaultClient",
    "VaultRef",
    "VaultSettings",
    "VaultUnavailable",
    "is_vault_ref",
    "looks_like_secret",
    "parse_vault_ref",
]
