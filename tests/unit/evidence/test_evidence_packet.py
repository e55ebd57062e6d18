from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from evidence_fakes import DIGEST_A, Clock, promotion_event

from stella.evidence.canonical import canonical_json, is_canonical, sha256_digest
from stella.evidence.errors import MalformedPacket
from stella.evidence.packet import (
    CLUSTER_CHAIN,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    OperatorInfo,
    PolicyEvidence,
    Statement,
    assert_no_secrets,
    chain_of,
    image_subject,
    packet_id,
    parse_statement,
)
from stella.evidence.recorder import build_statement


def _statement(seq: int = 1, prev: str | None = None) -> Statement:
    return build_statement(
        promotion_event(),
        sequence=seq,
        previous_digest=prev,
        recorded_at=datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        operator=OperatorInfo(version="0.1.0"),
    )


def test_canonical_json_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": ["ü", {"d": None, "c": True}]}) == (
        '{"a":["ü",{"c":true,"d":null}],"b":1}'.encode()
    )
    assert is_canonical(b'{"a":1}')
    assert not is_canonical(b'{"a": 1}')
    assert not is_canonical(b'{"b":1,"a":2}')
    assert not is_canonical(b"not json")


def test_statement_is_in_toto_v1_with_stella_predicate() -> None:
    st = _statement()
    doc = json.loads(st.payload())
    assert doc["_type"] == STATEMENT_TYPE == "https://in-toto.io/Statement/v1"
    assert doc["predicateType"] == PREDICATE_TYPE
    assert doc["subject"][0] == {
        "name": "registry.example.com/shop/web",
        "digest": {"sha256": DIGEST_A},
    }
    assert doc["subject"][1]["name"] == "registry.example.com/shop/api:1.2"
    pred = doc["predicate"]
    assert pred["release"] == {
        "namespace": "shop",
        "name": "shop-1",
        "uid": "uid-1",
        "version": "1.1.0",
    }
    assert pred["environment"] == "prod" and pred["chain"] == "prod"
    assert pred["approvals"][0]["approver"] == "alice@example.com"
    assert pred["approvals"][0]["groups"] == ["release-approvers"]
    assert pred["approvals"][0]["at"] == "2026-03-01T11:00:00Z"
    assert pred["policy"]["outcome"] == "Allowed"
    assert pred["operator"] == {"version": "0.1.0"}
    assert pred["sequence"] == 1 and "previousDigest" not in pred
    # second precision, UTC, one way only
    assert pred["recordedAt"] == "2026-03-01T12:00:00Z"


def test_same_packet_same_bytes_same_digest() -> None:
    a, b = _statement(), _statement()
    assert a.payload() == b.payload()
    assert a.digest() == b.digest() == sha256_digest(a.payload())
    assert is_canonical(a.payload())
    # parse and re-serialize: identical bytes
    assert parse_statement(a.payload()).payload() == a.payload()


def test_chain_fields_change_the_digest() -> None:
    first = _statement()
    second = _statement(2, first.digest())
    assert second.predicate.previous_digest == first.digest()
    assert second.digest() != first.digest()


def test_packet_id_is_deterministic_per_event() -> None:
    assert packet_id("prod", "PromotionDeployed", "e1") == packet_id(
        "prod", "PromotionDeployed", "e1"
    )
    assert packet_id("prod", "PromotionDeployed", "e1") != packet_id(
        "prod", "PromotionFailed", "e1"
    )
    assert packet_id("prod", "PromotionDeployed", "e1") != packet_id(
        "staging", "PromotionDeployed", "e1"
    )


def test_cluster_chain_for_agent_events() -> None:
    assert chain_of(None) == CLUSTER_CHAIN
    assert chain_of("prod") == "prod"


def test_image_subject_requires_digest() -> None:
    with pytest.raises(MalformedPacket):
        image_subject("registry.example.com/shop/web:1.0")


@pytest.mark.parametrize(
    "inputs",
    [
        {"registryPassword": "hunter2"},
        {"nested": {"token": "s.abcdef"}},
        {"list": [{"apiKey": "xyz"}]},
        {"pem": "-----BEGIN EC PRIVATE KEY-----\nMHc..."},
    ],
)
def test_secrets_are_refused(inputs: dict[str, Any]) -> None:
    with pytest.raises(MalformedPacket):
        assert_no_secrets({"policy": {"inputs": inputs}})


def test_vault_references_are_fine() -> None:
    assert_no_secrets({"registryCredentials": "vault:secret/data/registry/prod#token"})


def test_event_with_secret_cannot_be_built() -> None:
    ev = promotion_event()
    ev.policy = PolicyEvidence(inputs={"registryToken": "ghp_abc"}, outcome="Allowed")
    with pytest.raises(MalformedPacket):
        build_statement(
            ev,
            sequence=1,
            previous_digest=None,
            recorded_at=Clock()(),
            operator=OperatorInfo(version="x"),
        )


def test_unknown_fields_are_refused() -> None:
    doc = json.loads(_statement().payload())
    doc["predicate"]["extra"] = 1
    with pytest.raises(MalformedPacket):
        parse_statement(canonical_json(doc))
