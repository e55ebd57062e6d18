"""Receiver admission: only Environments that exist and that the Receiver's namespace may
release into; refused when written, with what to do."""

from __future__ import annotations

from typing import Any

from admission_factories import ALICE, POLICY, create, edited, update, world

from stella.admission import validate
from stella.admission.base import (
    NOT_SYNCED,
    OK,
    RECEIVER_NAMESPACE_NOT_ALLOWED,
    RECEIVER_UNKNOWN_ENVIRONMENT,
    SCHEMA,
)


def receiver(namespace: str = "shop", *environments: str) -> dict[str, Any]:
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Receiver",
        "metadata": {"name": "ci", "namespace": namespace},
        "spec": {
            "secret": "vault:secret/data/hooks/ci#hmac",
            "serviceAccountName": "stella-receiver-ci",
            "environments": list(environments or ("dev", "prod")),
            "components": [
                {
                    "name": "web",
                    "repository": "registry.example.com/shop/web",
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
        },
    }


def test_a_receiver_for_existing_environments_its_namespace_may_release_into_is_admitted() -> None:
    assert validate(create("Receiver", receiver(), ALICE), world(), POLICY).rule == OK


def test_an_environment_that_does_not_exist_is_refused_with_what_to_do() -> None:
    verdict = validate(create("Receiver", receiver("shop", "dev", "qa"), ALICE), world(), POLICY)
    assert not verdict.allowed and verdict.rule == RECEIVER_UNKNOWN_ENVIRONMENT
    assert "Environment qa does not exist" in verdict.message
    assert "could never create a Release" in verdict.message
    assert "spec.environments" in verdict.message


def test_a_namespace_the_environment_does_not_allow_is_refused() -> None:
    view = world()  # prod: releaseNamespaces team=shop
    verdict = validate(create("Receiver", receiver("other", "prod"), ALICE), view, POLICY)
    assert not verdict.allowed and verdict.rule == RECEIVER_NAMESPACE_NOT_ALLOWED
    assert "namespace other may not release into Environment prod" in verdict.message
    assert "put the Receiver in an allowed namespace" in verdict.message
    unknown = validate(create("Receiver", receiver("new-ns", "prod"), ALICE), view, POLICY)
    assert unknown.rule == RECEIVER_NAMESPACE_NOT_ALLOWED and "not known" in unknown.message


def test_an_update_is_checked_again_and_only_a_spec_change_counts() -> None:
    view, old = world(), receiver("shop", "dev")
    moved = edited(old, lambda r: r["spec"].update(environments=["gone"]))
    assert validate(update("Receiver", old, moved, ALICE), view, POLICY).rule == (
        RECEIVER_UNKNOWN_ENVIRONMENT
    )
    labelled = edited(old, lambda r: r["metadata"].update(labels={"team": "shop"}))
    del view.environments["dev"]  # the spec did not change: nothing to re-judge
    assert validate(update("Receiver", old, labelled, ALICE), view, POLICY).allowed


def test_an_unsynced_view_decides_nothing_and_a_bad_spec_is_a_schema_refusal() -> None:
    view = world()
    view.synced = False
    assert validate(create("Receiver", receiver(), ALICE), view, POLICY).rule == NOT_SYNCED
    bad = edited(receiver(), lambda r: r["spec"].update(environments="dev"))
    assert validate(create("Receiver", bad, ALICE), world(), POLICY).rule == SCHEMA
