"""An Environment's supply-chain policy: signatures and provenance required before deploy,
and the passport of a prerequisite Environment (issue 17, docs/supply-chain.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from stella.models.common import VAULT_REF, Name, StrictModel, VaultRef

_KEYS_RULE: JsonDict = {
    "rule": f"!has(self.keys) || self.keys.all(k, k.matches('{VAULT_REF}'))",
    "message": "each of keys must be a Vault reference vault:<mount>/<path>#<key> to a PEM "
    "public key (bao kv put secret/cosign/ci pub=@cosign.pub)",
}
_SOME_TRUST: JsonDict = {
    "rule": "(has(self.keys) && size(self.keys) > 0) || has(self.configMap)",
    "message": "name the trusted keys: keys (Vault references to PEM public keys) or "
    "configMap (a ConfigMap in the operator's namespace)",
}

Text = Annotated[str, Field(min_length=1, max_length=512)]


class CertificateIdentity(StrictModel):
    """A signer identity in a Sigstore signing certificate (keyless signing)."""

    subject: Text = Field(
        description="The certificate's subject alternative name, e.g. "
        "https://git.example.com/acme/shop/.ci/release.yml@refs/heads/main or ci@example.com."
    )
    issuer: Text = Field(
        description="The OIDC issuer that vouched for it, e.g. https://token.ci.example.com."
    )


class TrustedKeys(StrictModel):
    """Where the trusted public keys come from. Both are read at each check, never cached."""

    keys: list[VaultRef] = Field(
        default_factory=list,
        max_length=16,
        description="Vault references to PEM public keys (cosign.pub), e.g. "
        "vault:secret/cosign/ci#pub. The key's name in messages and evidence is the reference.",
    )
    config_map: Name | None = Field(
        default=None,
        description="A ConfigMap in the operator's namespace whose data entries ending in "
        ".pem are trusted public keys, and whose trusted_root.json (if any) is the Sigstore "
        "trusted root for certificate-signed bundles. Only the platform team should be able "
        "to write it.",
    )

    @model_validator(mode="after")
    def _some_trust(self) -> TrustedKeys:
        if not self.keys and self.config_map is None:
            raise ValueError(str(_SOME_TRUST["message"]))
        return self


class SignaturePolicy(TrustedKeys):
    """requireSignatures: every component's image carries a signature by a trusted key or
    identity (cosign sign --key, or a Sigstore bundle), checked before deploy."""

    model_config = ConfigDict(
        **StrictModel.model_config,
        json_schema_extra={"x-kubernetes-validations": [_KEYS_RULE, _SOME_TRUST]},
    )

    identities: list[CertificateIdentity] = Field(
        default_factory=list,
        max_length=16,
        description="Certificate identities whose Sigstore bundles count (needs "
        "trusted_root.json in configMap). Empty: keyed signatures only.",
    )
    halt_on_failure: bool = Field(
        default=True,
        description="When true (the default), a refused image also halts the Environment "
        "until a person clears it; when false, only the promotion fails.",
    )


class ProvenancePolicy(TrustedKeys):
    """requireProvenance: a SLSA provenance attestation for each image's digest, signed by a
    trusted builder key, naming an allowed builder and source repository."""

    model_config = ConfigDict(
        **StrictModel.model_config,
        json_schema_extra={"x-kubernetes-validations": [_KEYS_RULE, _SOME_TRUST]},
    )

    builders: list[Text] = Field(
        min_length=1,
        max_length=16,
        description="Allowed builder ids (runDetails.builder.id), exact, or a prefix ending "
        "in *, e.g. https://ci.example.com/builders/release@*.",
    )
    source_repositories: list[Text] = Field(
        min_length=1,
        max_length=16,
        description="Allowed source repositories, e.g. https://git.example.com/acme/shop "
        "(git+ prefixes, .git suffixes and @refs are ignored when comparing).",
    )
    halt_on_failure: bool = Field(
        default=True,
        description="When true (the default), refused provenance also halts the Environment.",
    )


class PassportPolicy(StrictModel):
    """requirePassport: each image carries Stella's passport (a SLSA verification summary
    Stella signed when it deployed the image there) for these Environments."""

    model_config = ConfigDict(
        **StrictModel.model_config,
        json_schema_extra={"x-kubernetes-validations": [_KEYS_RULE]},
    )

    environments: list[Name] = Field(
        min_length=1,
        max_length=8,
        description="The Environments whose passport each image must carry, e.g. [staging].",
    )
    keys: list[VaultRef] = Field(
        default_factory=list,
        max_length=16,
        description="Vault references to the evidence public keys of the Stella that issues "
        "the passports (another cluster's). Empty: this operator's own evidence keys.",
    )
