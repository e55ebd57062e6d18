"""The passport's statements, and the requirePassport check that reads them back: a VSA
for the digest, for the named Environment, PASSED, by Stella, signed by a trusted key."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

import pytest
from tests.supplychain_support import KeyPair, found

from stella.registry.reference import parse_pinned
from stella.supplychain.check import PassportRule, check_passports
from stella.supplychain.cosign import PREDICATE_ANNOTATION, SIGNATURE_ANNOTATION
from stella.supplychain.discovery import Attestation
from stella.supplychain.errors import PassportMissing
from stella.supplychain.passport import (
    APPROVAL_TYPE,
    VSA_TYPE,
    Approver,
    PassportFacts,
    find_passport,
    passport_layers,
)

DIGEST = "sha256:" + hashlib.sha256(b"web").hexdigest()
IMAGE = f"reg.example/shop/web@{DIGEST}"
AT = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


class Signer:
    def __init__(self, key: KeyPair) -> None:
        self.pair = key
        self.key_id = key.name

    def sign(self, payload: bytes) -> bytes:
        return self.pair.sign(payload)


def facts(environment: str = "staging") -> PassportFacts:
    return PassportFacts(
        environment=environment,
        policy_digest="ab" * 32,
        release="shop/shop-1",
        release_uid="uid-1",
        version="1.0.0",
        spec_digest="sha256:" + "cd" * 32,
        requester="alice",
        approvers=(Approver("bob", "Approve", AT, "shop-1-staging-x"),),
        deployed_at=AT,
        operator_version="0.2.0",
        checks=("digest", "signatures"),
    )


def attestations(key: KeyPair, env: str = "staging", image: str = IMAGE) -> list[Attestation]:
    layers = passport_layers(parse_pinned(image), facts(env), Signer(key))
    return [Attestation(ann[PREDICATE_ANNOTATION], data) for data, _, ann in layers]


def test_two_layers_as_cosign_reads_them_and_deterministic() -> None:
    key = KeyPair.generate("evidence")
    layers = passport_layers(parse_pinned(IMAGE), facts(), Signer(key))
    assert [a[PREDICATE_ANNOTATION] for _, _, a in layers] == [VSA_TYPE, APPROVAL_TYPE]
    assert all(a[SIGNATURE_ANNOTATION] == "" for _, _, a in layers)
    envelope = json.loads(layers[1][0])
    approval = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
    assert approval["approvers"] == [
        {
            "approver": "bob",
            "decision": "Approve",
            "at": "2026-11-30T06:00:00Z",
            "approval": "shop-1-staging-x",
        }
    ]
    # Same facts, same statements: a retried push finds its layers already there.
    again = passport_layers(parse_pinned(IMAGE), facts(), Signer(key))
    assert [json.loads(d)["payload"] for d, _, _ in again] == [
        json.loads(d)["payload"] for d, _, _ in layers
    ]


def test_a_passport_for_the_environment_by_a_trusted_key_is_found() -> None:
    key = KeyPair.generate("evidence")
    stamps = check_passports(
        IMAGE, DIGEST, found(*attestations(key)), PassportRule((key.trusted,), ("staging",))
    )
    assert [(s.environment, s.signer, s.time_verified) for s in stamps] == [
        ("staging", "evidence", "2026-11-30T06:00:00Z")
    ]


@pytest.mark.parametrize("case", ["other-env", "other-key", "other-digest", "none"])
def test_no_passport_is_refused(case: str) -> None:
    key = KeyPair.generate("evidence")
    atts = {
        "other-env": attestations(key, env="dev"),
        "other-key": attestations(KeyPair.generate("mallory")),
        "other-digest": attestations(key, image=f"reg.example/shop/web@sha256:{'0' * 64}"),
        "none": [],
    }[case]
    with pytest.raises(PassportMissing) as err:
        check_passports(IMAGE, DIGEST, found(*atts), PassportRule((key.trusted,), ("staging",)))
    assert "publishPassport" in err.value.message


def test_an_approval_attestation_is_not_a_passport() -> None:
    key = KeyPair.generate("evidence")
    approval_only = [(a.predicate_type, a.envelope) for a in attestations(key)[1:]]
    assert find_passport(approval_only, DIGEST, "staging", [key.trusted]) is None
