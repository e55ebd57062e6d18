"""What the engine calls before a deploy, beside digest verification: does each image
carry a signature by a trusted key or identity (``requireSignatures``), and SLSA
provenance signed by a trusted builder key whose builder and source repository the
Environment allows (``requireProvenance``)?

Nothing raises for a refused image: every outcome is in the report. A refusal
(``refuses``) means the artifact fails the policy — the promotion fails, and the
Environment halts when its policy says so; anything else (registry down, Vault down, the
trust material missing) fails closed and is retried.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stella.registry.client import RegistryClient, gather_limited
from stella.registry.errors import RegistryError
from stella.registry.reference import parse_pinned
from stella.registry.verify import CredentialsLookup
from stella.secrets.errors import SecretsError
from stella.supplychain.bundle import Identity, verify_bundle
from stella.supplychain.cosign import (
    Statement,
    b64,
    load_json,
    parse_envelope,
    parse_statement,
    verify_simple_signing,
)
from stella.supplychain.discovery import Found, discover
from stella.supplychain.errors import (
    MalformedArtifact,
    PassportMissing,
    ProvenanceBuilderNotAllowed,
    ProvenanceMissing,
    ProvenanceSourceNotAllowed,
    ProvenanceUntrusted,
    SignatureMissing,
    SignatureUntrusted,
    SupplyChainError,
)
from stella.supplychain.keys import TrustedKey
from stella.supplychain.passport import PassportStamp, find_passport
from stella.supplychain.provenance import (
    PROVENANCE_TYPES,
    Provenance,
    builder_allowed,
    read_provenance,
    source_allowed,
)

VERIFIED = "Verified"


@dataclass(frozen=True)
class SignatureRule:
    keys: tuple[TrustedKey, ...]
    trusted_root_json: str | None = None
    identities: tuple[Identity, ...] = ()


@dataclass(frozen=True)
class ProvenanceRule:
    keys: tuple[TrustedKey, ...]
    builders: tuple[str, ...]
    source_repositories: tuple[str, ...]


@dataclass(frozen=True)
class PassportRule:
    keys: tuple[TrustedKey, ...]  # the issuing Stella's evidence keys
    environments: tuple[str, ...]


@dataclass(frozen=True)
class ImageSupplyChain:
    image: str
    ok: bool
    reason: str
    message: str
    refuses: bool = False
    retry_after: float | None = None
    signer: str | None = None
    provenance: Provenance | None = None
    provenance_signer: str | None = None
    passports: tuple[PassportStamp, ...] = ()

    def evidence(self) -> dict[str, Any]:
        """What goes into the authorization packet (no key material: names only)."""
        out: dict[str, Any] = {"image": self.image, "result": self.reason}
        if self.signer:
            out["signedBy"] = self.signer
        if self.provenance is not None:
            out["provenance"] = {
                "builderId": self.provenance.builder_id,
                "sourceRepository": self.provenance.source_repository,
                "sourceRevision": self.provenance.source_revision,
                "signedBy": self.provenance_signer,
            }
        if self.passports:
            out["passports"] = [
                {
                    "environment": p.environment,
                    "timeVerified": p.time_verified,
                    "signedBy": p.signer,
                }
                for p in self.passports
            ]
        return out


@dataclass(frozen=True)
class SupplyChainReport:
    checks: tuple[ImageSupplyChain, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[ImageSupplyChain]:
        return [c for c in self.checks if not c.ok]

    @property
    def refuses(self) -> bool:
        return any(c.refuses for c in self.checks)

    @property
    def reason(self) -> str:
        failed = self.failures
        refused = [c for c in failed if c.refuses]
        return (refused or failed)[0].reason if failed else VERIFIED

    @property
    def message(self) -> str:
        failed = self.failures
        if not failed:
            return f"{len(self.checks)} image(s) passed the supply-chain policy"
        shown = "; ".join(c.message for c in failed[:3])
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
        return f"{len(failed)} of {len(self.checks)} image(s) refused: {shown}{more}"

    @property
    def retry_after(self) -> float | None:
        waits = [c.retry_after for c in self.failures if c.retry_after is not None]
        return max(waits) if waits else None

    def evidence(self) -> list[dict[str, Any]]:
        return [c.evidence() for c in self.checks]


def _key_names(keys: Iterable[TrustedKey]) -> str:
    return ", ".join(k.name for k in keys) or "none"


def check_signatures(image: str, digest: str, found: Found, rule: SignatureRule) -> str:
    """The name of a trusted signer of ``digest``, or raise why there is none."""
    seen = 0
    replayed = 0
    for s in found.signatures:
        seen += 1
        try:
            key = verify_simple_signing(
                s.payload, b64(s.signature, "a cosign signature"), digest, rule.keys
            )
        except MalformedArtifact:
            replayed += 1
            continue
        if key is not None:
            return key.name
    for raw in found.bundles:
        seen += 1
        try:
            result = verify_bundle(
                raw,
                rule.keys,
                trusted_root_json=rule.trusted_root_json,
                identities=rule.identities,
            )
        except (SignatureUntrusted, MalformedArtifact):
            continue
        if result.envelope is not None:
            try:
                statement = parse_statement(result.envelope)
            except MalformedArtifact:
                continue
            if statement.names_digest(digest):
                return result.signer
        elif result.message_digest == digest:
            return result.signer
    if not seen:
        raise SignatureMissing(
            f"{image} carries no signature (no cosign signature at tag "
            f"{digest.replace(':', '-')}.sig, no Sigstore bundle among its referrers); sign it "
            "with a trusted key (cosign sign --key) before promoting it"
        )
    extra = f", {replayed} of them unreadable or made for another digest" if replayed else ""
    raise SignatureUntrusted(
        f"{image} carries {seen} signature(s){extra}, none by a key or identity this "
        f"Environment trusts (trusted keys: {_key_names(rule.keys)})"
    )


def _provenance_statements(
    found: Found, digest: str, rule: ProvenanceRule
) -> Iterable[tuple[Statement | None, str | None]]:
    """(statement, signer) per provenance attestation for ``digest``: the statement is
    None when no trusted key signed it."""
    for att in found.attestations:
        if att.predicate_type and att.predicate_type not in PROVENANCE_TYPES:
            continue
        try:
            envelope = parse_envelope(load_json(att.envelope, "an attestation"))
            statement = parse_statement(envelope)
        except MalformedArtifact:
            continue
        if statement.predicate_type not in PROVENANCE_TYPES or not statement.names_digest(digest):
            continue
        key = envelope.verified_by(rule.keys)
        yield (statement, key.name) if key is not None else (None, None)


def check_provenance(
    image: str, digest: str, found: Found, rule: ProvenanceRule
) -> tuple[Provenance, str]:
    """The provenance (and its signer) that passes the rule, or raise the closest miss."""
    problems: list[SupplyChainError] = []
    for statement, signer in _provenance_statements(found, digest, rule):
        if statement is None or signer is None:
            problems.append(
                ProvenanceUntrusted(
                    f"{image} has SLSA provenance signed by no trusted builder key "
                    f"(trusted: {_key_names(rule.keys)})"
                )
            )
            continue
        prov = read_provenance(statement.predicate_type, statement.predicate)
        if prov is None:
            problems.append(ProvenanceUntrusted(f"{image}'s provenance names no builder id"))
        elif not builder_allowed(prov.builder_id, rule.builders):
            problems.append(
                ProvenanceBuilderNotAllowed(
                    f"{image} was built by {prov.builder_id}, which this Environment does not "
                    f"allow (allowed builders: {', '.join(rule.builders)})"
                )
            )
        elif not source_allowed(prov.source_repository, rule.source_repositories):
            problems.append(
                ProvenanceSourceNotAllowed(
                    f"{image} was built from {prov.source_repository or 'an unnamed source'}, "
                    "which this Environment does not allow (allowed repositories: "
                    f"{', '.join(rule.source_repositories)})"
                )
            )
        else:
            return prov, signer
    if not problems:
        raise ProvenanceMissing(
            f"{image} carries no SLSA provenance for {digest} (no attestation at tag "
            f"{digest.replace(':', '-')}.att or among its referrers); attest it from the build "
            "(cosign attest --type slsaprovenance1 --key ...)"
        )
    order = (ProvenanceSourceNotAllowed, ProvenanceBuilderNotAllowed, ProvenanceUntrusted)
    for kind in order:  # the miss closest to passing is the most useful to read
        for p in problems:
            if isinstance(p, kind):
                raise p
    raise problems[0]


def check_passports(
    image: str, digest: str, found: Found, rule: PassportRule
) -> tuple[PassportStamp, ...]:
    """Stella's passport of ``digest`` for each required Environment, or raise."""
    atts = [(a.predicate_type, a.envelope) for a in found.attestations]
    stamps = []
    for env in rule.environments:
        stamp = find_passport(atts, digest, env, rule.keys)
        if stamp is None:
            raise PassportMissing(
                f"{image} carries no passport for {env} signed by a trusted Stella evidence key "
                f"(trusted: {_key_names(rule.keys)}); promote it through {env} with "
                "publishPassport: true first"
            )
        stamps.append(stamp)
    return tuple(stamps)


async def check_image(
    client: RegistryClient,
    image: str,
    signatures: SignatureRule | None,
    provenance: ProvenanceRule | None,
    credentials_lookup: CredentialsLookup | None = None,
    passport: PassportRule | None = None,
) -> ImageSupplyChain:
    try:
        ref = parse_pinned(image)
        assert ref.digest is not None
        creds = await credentials_lookup(ref) if credentials_lookup else None
        found = await discover(
            client,
            ref,
            creds,
            signatures=signatures is not None,
            attestations=provenance is not None or passport is not None,
        )
        signer = check_signatures(image, ref.digest, found, signatures) if signatures else None
        prov, prov_signer = (
            check_provenance(image, ref.digest, found, provenance) if provenance else (None, None)
        )
        stamps = check_passports(image, ref.digest, found, passport) if passport else ()
    except SupplyChainError as err:
        return ImageSupplyChain(image, False, err.reason, err.message, refuses=err.refuses)
    except RegistryError as err:
        return ImageSupplyChain(
            image,
            False,
            err.reason,
            f"supply-chain check of {image}: {err.message}",
            refuses=err.halts,
            retry_after=err.retry_after or 15.0,
        )
    except SecretsError as err:
        return ImageSupplyChain(
            image,
            False,
            err.reason,
            f"registry credentials for {image}: {err.message}",
            retry_after=err.retry_after or 15.0,
        )
    parts = []
    if signer:
        parts.append(f"signed by {signer}")
    if prov is not None:
        rev = f"@{prov.source_revision}" if prov.source_revision else ""
        parts.append(f"built by {prov.builder_id} from {prov.source_repository}{rev}")
    if stamps:
        parts.append("passport for " + ", ".join(p.environment for p in stamps))
    return ImageSupplyChain(
        image,
        True,
        VERIFIED,
        "; ".join(parts),
        signer=signer,
        provenance=prov,
        provenance_signer=prov_signer,
        passports=stamps,
    )


async def check_images(
    client: RegistryClient,
    images: Sequence[str],
    signatures: SignatureRule | None,
    provenance: ProvenanceRule | None,
    credentials_lookup: CredentialsLookup | None = None,
    *,
    passport: PassportRule | None = None,
    concurrency: int = 8,
) -> SupplyChainReport:
    """Check every image of a Release, concurrently; a report, never an exception."""
    checks = await gather_limited(
        [
            check_image(client, i, signatures, provenance, credentials_lookup, passport)
            for i in images
        ],
        concurrency,
    )
    return SupplyChainReport(tuple(checks))
