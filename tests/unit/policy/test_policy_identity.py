from __future__ import annotations

import pytest

from stella.models.common import USERNAME_MAX
from stella.policy.identity import (
    IDENTITY_ANNOTATIONS,
    Identity,
    format_identity,
    parse_identity,
    recorded_identity,
)


def _obj(annotations: object) -> dict[str, object]:
    return {"metadata": {"name": "x", "annotations": annotations}}


def test_round_trip_through_the_recorded_form() -> None:
    who = Identity("alice", "u-1", frozenset({"b", "a"}))
    body = _obj({IDENTITY_ANNOTATIONS["approver"]: format_identity(who)})
    assert recorded_identity(body, "approver") == who
    assert recorded_identity(body, "requester") is None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"metadata": None},
        _obj(None),
        _obj({}),
        _obj({"stella.io/requester": 5}),
        _obj({"stella.io/requester": "not json"}),
        _obj({"stella.io/requester": "[]"}),
        _obj({"stella.io/requester": '{"username": ""}'}),
        _obj({"stella.io/requester": '{"username": "  "}'}),
        _obj({"stella.io/requester": '{"username": 3}'}),
        _obj({"stella.io/requester": '{"username": "a", "groups": "admins"}'}),
        _obj({"stella.io/requester": '{"username": "a", "groups": [1]}'}),
        _obj({"stella.io/requester": '{"username": "a", "uid": 7}'}),
    ],
)
def test_anything_malformed_is_no_identity(body: dict[str, object]) -> None:
    assert recorded_identity(body, "requester") is None


def test_minimal_record() -> None:
    assert parse_identity('{"username": "bob"}') == Identity("bob")


def test_same_person_by_username_or_uid() -> None:
    a = Identity("alice", "u1")
    assert a.same_person(Identity("alice", "u2"))
    assert a.same_person(Identity("alice-renamed", "u1"))
    assert not a.same_person(Identity("bob", "u2"))
    assert not Identity("a").same_person(Identity("b"))  # empty uids never match


def test_a_username_longer_than_status_and_evidence_hold_is_no_identity() -> None:
    """Kubernetes sets no length limit. Up to USERNAME_MAX (a service account's 339
    characters fit) the identity is read whole; beyond it there is none (never a name cut
    short, which could be someone else's), and admission refuses to stamp one."""
    account = "system:serviceaccount:ci:" + "d" * 253
    assert parse_identity(format_identity(Identity(account, "u-1"))) == Identity(account, "u-1")
    edge = "x" * USERNAME_MAX
    assert parse_identity(format_identity(Identity(edge))) == Identity(edge)
    assert parse_identity(format_identity(Identity(edge + "x"))) is None


def test_a_group_longer_than_evidence_holds_is_left_out() -> None:
    """approverGroups cannot name it (253 characters at most); the rest stay."""
    huge = "g" * (USERNAME_MAX + 1)
    read = parse_identity(format_identity(Identity("bob", "", frozenset({"sre", huge}))))
    assert read == Identity("bob", "", frozenset({"sre"}))
