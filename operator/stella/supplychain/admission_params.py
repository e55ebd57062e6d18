"""A cluster without Stella can require Stella's approvals: the digests that carry a
passport for an Environment, as the parameter object of Stella's own workload-digests
ValidatingAdmissionPolicy (charts/stella/files/admission-policies.yaml), bound in that
cluster with docs/supply-chain/passport-binding.yaml. The API server then refuses every
Pod whose image digest has no passport — no webhook, no Stella there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stella.policy.digest_buckets import digest_buckets
from stella.registry.client import RegistryClient, gather_limited
from stella.registry.errors import RegistryError
from stella.registry.reference import parse_pinned
from stella.supplychain.discovery import discover
from stella.supplychain.keys import TrustedKey
from stella.supplychain.passport import find_passport

PARAMS_NAME = "stella-passport-digests"


@dataclass(frozen=True)
class PassportLookup:
    image: str
    digest: str
    passport: bool
    why: str  # for people: passported at, or what is missing


async def lookup_passports(
    client: RegistryClient,
    images: Sequence[str],
    environment: str,
    keys: Sequence[TrustedKey],
) -> list[PassportLookup]:
    async def one(image: str) -> PassportLookup:
        ref = parse_pinned(image)
        assert ref.digest is not None
        try:
            found = await discover(client, ref, signatures=False)
        except RegistryError as err:
            return PassportLookup(image, ref.digest, False, err.message)
        atts = [(a.predicate_type, a.envelope) for a in found.attestations]
        stamp = find_passport(atts, ref.digest, environment, keys)
        if stamp is None:
            return PassportLookup(image, ref.digest, False, f"no passport for {environment}")
        return PassportLookup(
            image, ref.digest, True, f"passport for {environment} of {stamp.time_verified}"
        )

    return list(await gather_limited([one(i) for i in images], 8))


def params_configmap(
    environment: str, found: Sequence[PassportLookup], namespace: str | None = None
) -> dict[str, Any]:
    """The ConfigMap the policy reads: only digests whose passport verified."""
    digests = sorted({f.digest for f in found if f.passport})
    meta: dict[str, Any] = {
        "name": PARAMS_NAME,
        "labels": {"app.kubernetes.io/part-of": "stella"},
    }
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {"environments": f"{environment} (Stella passport)", **digest_buckets(digests)},
    }
