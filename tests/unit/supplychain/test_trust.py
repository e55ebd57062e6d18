"""Trust material for the policies: missing or malformed is a configuration error (fail
closed, retried), never an empty set of trusted keys."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from tests.supplychain_support import BUILDER, REPO, KeyPair

from stella.models.supply_chain import PassportPolicy, ProvenancePolicy, SignaturePolicy
from stella.supplychain.errors import TrustConfigError
from stella.supplychain.trust import passport_rule, provenance_rule, signature_rule


def reader(data: dict[str, dict[str, str]]):  # type: ignore[no-untyped-def]
    async def read(name: str) -> Mapping[str, str] | None:
        return data.get(name)

    return read


def test_keys_from_a_configmap_are_named_by_entry() -> None:
    ci = KeyPair.generate()
    policy = SignaturePolicy(configMap="trust")
    rule = asyncio.run(
        signature_rule(policy, None, reader({"trust": {"ci.pem": ci.public_pem, "notes": "x"}}))
    )
    assert [k.name for k in rule.keys] == ["trust/ci.pem"]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({}, "does not exist"),
        ({"trust": {"readme.txt": "x"}}, "no *.pem key"),
        ({"trust": {"ci.pem": "not a key"}}, "not a PEM public key"),
    ],
)
def test_missing_or_malformed_configmap_trust_fails_closed(
    data: dict[str, dict[str, str]], words: str
) -> None:
    policy = ProvenancePolicy(configMap="trust", builders=[BUILDER], sourceRepositories=[REPO])
    with pytest.raises(TrustConfigError) as err:
        asyncio.run(provenance_rule(policy, None, reader(data)))
    assert words in err.value.message and not err.value.refuses


def test_vault_keys_without_vault_fail_closed() -> None:
    policy = SignaturePolicy(keys=["vault:secret/cosign/ci#pub"])
    with pytest.raises(TrustConfigError) as err:
        asyncio.run(signature_rule(policy, None, reader({})))
    assert "STELLA_VAULT_ADDR" in err.value.message


def test_a_policy_must_name_some_trust() -> None:
    with pytest.raises(ValueError, match="name the trusted keys"):
        SignaturePolicy()


def test_passports_default_to_this_operators_evidence_keys() -> None:
    evidence = KeyPair.generate()
    rule = asyncio.run(
        passport_rule(
            PassportPolicy(environments=["staging"]), None, {"local:ab": evidence.public_pem}
        )
    )
    assert [k.name for k in rule.keys] == ["evidence key local:ab"]
    with pytest.raises(TrustConfigError):
        asyncio.run(passport_rule(PassportPolicy(environments=["staging"]), None, {}))
