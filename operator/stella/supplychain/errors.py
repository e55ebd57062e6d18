"""Why a supply-chain check refused an image, or could not decide.

``reason`` is the word a condition, Event, metric and evidence carry. A refusal means the
artifact itself fails the policy (the promotion fails, and the Environment halts when its
policy says so); :class:`TrustConfigError` means the policy's own trust material is
missing or malformed (fail closed, retried once it is fixed). Messages name images, keys
and builders, never key material or a credential.
"""

from __future__ import annotations


class SupplyChainError(Exception):
    reason = "SupplyChainRefused"
    refuses = True  # the artifact fails the policy (vs. the check could not run)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SignatureMissing(SupplyChainError):
    reason = "SignatureMissing"


class SignatureUntrusted(SupplyChainError):
    reason = "SignatureUntrusted"


class ProvenanceMissing(SupplyChainError):
    reason = "ProvenanceMissing"


class ProvenanceUntrusted(SupplyChainError):
    reason = "ProvenanceUntrusted"


class ProvenanceBuilderNotAllowed(SupplyChainError):
    reason = "ProvenanceBuilderNotAllowed"


class ProvenanceSourceNotAllowed(SupplyChainError):
    reason = "ProvenanceSourceNotAllowed"


class PassportMissing(SupplyChainError):
    reason = "PassportMissing"


class MalformedArtifact(SupplyChainError):
    """A signature, envelope or bundle that cannot be parsed is never trusted."""

    reason = "MalformedSupplyChainArtifact"


class TrustConfigError(SupplyChainError):
    """The Environment's trusted keys or trusted root are missing or malformed."""

    reason = "TrustConfigInvalid"
    refuses = False
