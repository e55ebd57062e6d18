"""Stamping identities at CREATE, refusing forged ones, and refusing changes afterwards."""

from __future__ import annotations

import json
from typing import Any

import pytest
from admission_factories import (
    ALICE,
    BOB,
    MALLORY,
    OPERATOR_ID,
    POLICY,
    apply_patch,
    approval_body,
    create,
    edited,
    release_body,
    update,
    world,
)

from stella.admission import Request, mutate, validate
from stella.models.common import USERNAME_MAX
from stella.policy.identity import Identity, format_identity, recorded_identity


def unstamped_release() -> dict[str, Any]:
    return release_body(requester=None)


@pytest.mark.parametrize(
    "metadata",
    [
        {"name": "r", "namespace": "shop"},  # no annotations map at all
        {"name": "r", "namespace": "shop", "annotations": None},
        {"name": "r", "namespace": "shop", "annotations": {"team": "shop"}},
    ],
)
def test_release_create_stamps_requester(metadata: dict[str, Any]) -> None:
    body = unstamped_release()
    body["metadata"] = metadata
    verdict = mutate(create("Release", body, ALICE), world(), POLICY)
    assert verdict.allowed and verdict.rule == "ok"
    stamped = apply_patch(body, verdict.patch)
    assert recorded_identity(stamped, "requester") == ALICE
    if metadata.get("annotations"):
        assert verdict.patch[0]["path"] == "/metadata/annotations/stella.io~1requester"
        assert stamped["metadata"]["annotations"]["team"] == "shop"


def test_release_without_metadata_gets_metadata() -> None:
    body: dict[str, Any] = {"spec": {}}
    verdict = mutate(Request("CREATE", "Release", "shop", None, ALICE, body, None), world(), POLICY)
    assert recorded_identity(apply_patch(body, verdict.patch), "requester") == ALICE


def test_approval_create_stamps_approver() -> None:
    body = approval_body()
    verdict = mutate(create("Approval", body, BOB), world(), POLICY)
    assert verdict.allowed
    stamped = apply_patch(body, verdict.patch)
    assert recorded_identity(stamped, "approver") == BOB
    assert json.loads(stamped["metadata"]["annotations"]["stella.io/approver"])["username"] == "bob"


def test_same_value_from_same_user_is_fine_and_not_rewritten() -> None:
    body = approval_body(approver=BOB)
    verdict = mutate(create("Approval", body, BOB), world(), POLICY)
    # Only what was judged is added (admission.approval.admit_approval); the approver stays.
    assert verdict.allowed and [op["path"] for op in verdict.patch] == [
        "/metadata/annotations/stella.io~1judged"
    ]


def test_same_person_differently_formatted_is_rewritten_canonically() -> None:
    body = approval_body()
    body["metadata"]["annotations"] = {
        "stella.io/approver": json.dumps(
            {"username": "bob", "uid": "uid-bob", "groups": sorted(BOB.groups)}, indent=2
        )
    }
    verdict = mutate(create("Approval", body, BOB), world(), POLICY)
    assert verdict.allowed
    assert apply_patch(body, verdict.patch)["metadata"]["annotations"][
        "stella.io/approver"
    ] == format_identity(BOB)


FORGERIES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "Approval",
        "bob forged on mallory's request",
        {"annotations": {"stella.io/approver": format_identity(BOB)}},
    ),
    ("Approval", "garbage approver", {"annotations": {"stella.io/approver": "bob"}}),
    (
        "Approval",
        "requester annotation on an approval",
        {"annotations": {"stella.io/requester": format_identity(MALLORY)}},
    ),
    ("Approval", "identity in a label", {"labels": {"stella.io/approver": "bob"}}),
    (
        "Release",
        "someone else as requester",
        {"annotations": {"stella.io/requester": format_identity(BOB)}},
    ),
    (
        "Release",
        "approver annotation on a release",
        {"annotations": {"stella.io/approver": format_identity(MALLORY)}},
    ),
    (
        "Release",
        "same name, other groups",
        {
            "annotations": {
                "stella.io/requester": format_identity(
                    Identity("mallory", "uid-mallory", frozenset({"release-approvers"}))
                )
            }
        },
    ),
]


@pytest.mark.parametrize(("kind", "case", "meta"), FORGERIES, ids=[f[1] for f in FORGERIES])
def test_forged_identity_is_refused_by_mutate_and_validate(
    kind: str, case: str, meta: dict[str, Any]
) -> None:
    body = approval_body() if kind == "Approval" else unstamped_release()
    body["metadata"].pop("annotations", None)
    body["metadata"].update(meta)
    req = create(kind, body, MALLORY)
    for verdict in (mutate(req, world(), POLICY), validate(req, world(), POLICY)):
        assert not verdict.allowed
        assert verdict.rule == "identity.forged"
        assert verdict.security_signal == "ForgedIdentity"
        assert "recorded by Stella" in verdict.message
        assert "must not be set" in verdict.message
        assert verdict.patch == ()


def test_the_operator_may_not_supply_anyone_elses_identity() -> None:
    """Issue 9: the operator never creates Releases on anyone's behalf, so its identity is
    no master key: a requester it writes is a forgery like anyone's."""
    body = release_body(requester=ALICE)
    verdict = mutate(create("Release", body, OPERATOR_ID), world(), POLICY)
    assert not verdict.allowed and verdict.rule == "identity.forged"
    assert verdict.security_signal == "ForgedIdentity"


def test_validate_refuses_an_unstamped_create() -> None:
    """Defence in depth: if the mutating webhook did not run, nothing is admitted."""
    verdict = validate(create("Release", unstamped_release(), ALICE), world(), POLICY)
    assert not verdict.allowed and verdict.rule == "identity.unstamped"
    assert "MutatingWebhookConfiguration" in verdict.message


@pytest.mark.parametrize("op", ["UPDATE", "DELETE", "CONNECT"])
def test_mutate_only_stamps_on_create(op: str) -> None:
    body = release_body()
    req = Request(op, "Release", "shop", "shop-1-4-2", MALLORY, body, body)  # type: ignore[arg-type]
    verdict = mutate(req, world(), POLICY)
    assert verdict.allowed and verdict.patch == ()


@pytest.mark.parametrize("kind", ["Environment", "Agent", "Pod", "Deployment"])
def test_mutate_leaves_other_kinds_alone(kind: str) -> None:
    verdict = mutate(create(kind, {"metadata": {"name": "x"}}, MALLORY), world(), POLICY)
    assert verdict.allowed and verdict.patch == ()


def _set_requester(identity: Identity) -> Any:
    def fn(b: dict[str, Any]) -> None:
        b["metadata"]["annotations"]["stella.io/requester"] = format_identity(identity)

    return fn


def _drop_requester(b: dict[str, Any]) -> None:
    del b["metadata"]["annotations"]["stella.io/requester"]


def _label_requester(b: dict[str, Any]) -> None:
    b["metadata"]["labels"] = {"stella.io/requester": "mallory"}


@pytest.mark.parametrize(
    ("change", "user", "allowed"),
    [
        (_set_requester(MALLORY), MALLORY, False),
        (_set_requester(MALLORY), ALICE, False),  # not even the requester
        (_drop_requester, ALICE, False),
        (_label_requester, MALLORY, False),
        (_set_requester(BOB), OPERATOR_ID, False),  # not even the operator
        (_drop_requester, OPERATOR_ID, False),
    ],
)
def test_nobody_changes_a_requester(change: Any, user: Identity, allowed: bool) -> None:
    old = release_body()
    verdict = validate(update("Release", old, edited(old, change), user), world(), POLICY)
    assert verdict.allowed is allowed
    if not allowed:
        assert verdict.rule == "identity.tampering"
        assert verdict.security_signal == "IdentityTampering"
        assert "never change" in verdict.message


LONG = Identity("x" * (USERNAME_MAX + 1), "u-long", frozenset({"release-approvers"}))
ACCOUNT = Identity("system:serviceaccount:ci:" + "d" * 253, "u-bot")  # 278: Kubernetes allows it


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("Release", unstamped_release()),
        ("Approval", approval_body()),
        (
            "Action",
            {
                "metadata": {"name": "a"},
                "spec": {"action": "Suspend", "environment": "prod", "reason": "INC-1"},
            },
        ),
    ],
)
def test_a_username_longer_than_stella_records_is_refused_at_create(
    kind: str, body: dict[str, Any]
) -> None:
    """Never stamped cut short (a cut name could be someone else's), and never left to fail
    later in the engine's status and evidence writes; a long service account's name fits."""
    for verdict in (
        mutate(create(kind, body, LONG), world(), POLICY),
        validate(create(kind, body, LONG), world(), POLICY),
    ):
        assert not verdict.allowed and verdict.rule == "identity.too-long"
        assert f"your username is {USERNAME_MAX + 1} characters long" in verdict.message
        assert "shorter name" in verdict.message
    stamped = mutate(create(kind, body, ACCOUNT), world(), POLICY)
    assert stamped.rule != "identity.too-long"
    if stamped.allowed:
        role = {"Release": "requester", "Approval": "approver", "Action": "actor"}[kind]
        assert recorded_identity(apply_patch(body, stamped.patch), role) == ACCOUNT  # type: ignore[arg-type]
