"""Typed errors of the plugin layer: each a CamelCase ``reason`` for conditions, Events,
metrics and evidence, and a message for people that never holds a secret value."""

from __future__ import annotations


class PluginError(Exception):
    """Base of every error the plugin layer raises."""

    reason = "PluginError"
    transient = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class PluginRefused(PluginError):
    """The plugin may not run: unsigned, altered, untrusted, or its module does not match.

    Refused at admission of the Plugin and again before every run; never transient."""

    reason = "PluginRefused"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ModuleUnavailable(PluginError):
    """The module could not be fetched now (registry down, file missing): retry later."""

    reason = "PluginModuleUnavailable"
    transient = True


class PluginBusy(PluginError):
    """As many plugin runs as allowed are in flight (T10): the step is asked again later."""

    reason = "PluginRunsBusy"
    transient = True


# Refusal reasons, one place (docs/plugins.md lists them with what to do).
UNSIGNED = "PluginUnsigned"
TAMPERED = "PluginSignatureInvalid"
UNTRUSTED = "PluginPublisherUntrusted"
MALFORMED = "PluginManifestInvalid"
MODULE_MISMATCH = "PluginModuleDigestMismatch"
MODULE_INVALID = "PluginModuleInvalid"
