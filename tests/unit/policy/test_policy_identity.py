from __future__ import annotations

import pytest

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
