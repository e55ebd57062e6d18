"""Environment and Agent rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from admission_factories import (
    MALLORY,
    OPERATOR_ID,
    POLICY,
    create,
    delete,
    edited,
    environment_body,
    update,
    world,
)

from stella.admission import Verdict, validate


def admit(body: dict[str, Any]) -> Verdict:
    return validate(create("Environment", body, OPERATOR_ID), world(), POLICY)


def test_a_good_environment() -> None:
    verdict = admit(
        environment_body(
            "canary",
            requires=["staging"],
            allowedRegistries=["registry.example.com"],
            registryCredentials="vault:secret/registry/canary#token",
            freezeWindows=[
                {"schedule": "0 18 * * FRI", "duration": "62h", "timeZone": "Europe/Berlin"},
                {"start": "2024-12-20T00:00:00Z", "end": "2025-01-06T00:00:00Z"},
            ],
        )
    )
    assert verdict.allowed and verdict.warnings == ()


def test_no_allowed_registries_warns() -> None:
    verdict = admit(environment_body("canary"))
    assert verdict.allowed and any("any registry" in w for w in verdict.warnings)


@pytest.mark.parametrize(
    ("name", "requires", "cycle"),
    [
        ("dev", ["prod"], "dev -> prod -> staging -> dev"),
        ("dev", ["dev"], "dev -> dev"),
        ("solo", ["solo"], "solo -> solo"),
    ],
)
def test_cycles_in_requires(name: str, requires: list[str], cycle: str) -> None:
    verdict = admit(environment_body(name, requires=requires))
    assert not verdict.allowed and verdict.rule == "environment.cycle"
    assert cycle in verdict.message and "remove one of these requires" in verdict.message


def test_cycle_on_update_considers_the_new_object() -> None:
    view = world()
    old = view.environments["dev"]
    new = edited(old, lambda b: b["spec"].update(requires=["staging"]))
    verdict = validate(update("Environment", old, new, OPERATOR_ID), view, POLICY)
    assert verdict.rule == "environment.cycle"


def test_unknown_requires() -> None:
    verdict = admit(environment_body("canary", requires=["staging", "qa"]))
    assert not verdict.allowed and verdict.rule == "environment.unknown-requires"
    assert "create Environment qa first or fix spec.requires" in verdict.message


def test_an_unrelated_update_is_not_blocked_by_a_stale_requires() -> None:
    """Suspending prod in an emergency works even after staging was deleted."""
    view = world()
    old = view.environments["prod"]
    del view.environments["staging"]
    new = edited(old, lambda b: b["spec"].update(suspended=True))
    assert validate(update("Environment", old, new, MALLORY), view, POLICY).allowed


@pytest.mark.parametrize(
    ("window", "fragment"),
    [
        (
            {"schedule": "0 18 * * FRIDAY", "duration": "62h"},
            "schedule '0 18 * * FRIDAY': 'FRIDAY' is not a day of week (use MON..SUN or 0-6)",
        ),
        ({"schedule": "0 18 * * * *", "duration": "62h"}, "has 6 fields"),
        ({"schedule": "0 18 30 2 *", "duration": "1h"}, "never fires"),
        (
            {"schedule": "0 18 * * FRI", "duration": "62h", "timeZone": "Europe/Berln"},
            "Europe/Berlin",
        ),
        ({"schedule": "0 18 * * FRI", "duration": "0s"}, "longer than 0s"),
        (
            {"schedule": "0 18 * * FRI", "duration": "62h", "timeZone": "Mars/Olympus"},
            "unknown time zone",
        ),
    ],
)
def test_malformed_freeze_windows(window: dict[str, Any], fragment: str) -> None:
    verdict = admit(environment_body("canary", freezeWindows=[window]))
    assert not verdict.allowed and verdict.rule == "environment.freeze-window"
    assert fragment in verdict.message and "spec.freezeWindows[0]" in verdict.message


@pytest.mark.parametrize(
    ("window", "fragment"),
    [
        ({"schedule": "0 18 * * FRI"}, "needs both schedule and duration"),
        ({"start": "2025-01-06T00:00:00Z", "end": "2024-12-20T00:00:00Z"}, "must end after"),
        ({"duration": "zz"}, "freezeWindows[0].duration"),
    ],
)
def test_freeze_window_shape_errors_are_schema_errors(
    window: dict[str, Any], fragment: str
) -> None:
    verdict = admit(environment_body("canary", freezeWindows=[window]))
    assert not verdict.allowed and verdict.rule == "schema"
    assert fragment in verdict.message


@pytest.mark.parametrize(
    "creds",
    [
        "hunter2",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "Basic dXNlcjpwYXNzd29yZA==",
        "VAULT:secret/registry/prod#token",
        "vault:secret/registry/prod",
    ],
)
def test_registry_credentials_must_be_a_vault_reference(creds: str) -> None:
    verdict = admit(environment_body("canary", registryCredentials=creds))
    assert not verdict.allowed and verdict.rule == "environment.literal-secret"
    assert verdict.message.startswith("spec.registryCredentials")
    if not creds.lower().startswith("vault:"):
        assert creds not in verdict.message  # never echo what may be a secret


def test_metadata_only_update_skips_spec_rules() -> None:
    view = world()
    old = environment_body("legacy", freezeWindows=[{"schedule": "bad", "duration": "1h"}])
    new = edited(old, lambda b: b["metadata"].update(finalizers=[]))
    assert validate(update("Environment", old, new, OPERATOR_ID), view, POLICY).allowed


def test_deleting_a_required_environment_warns() -> None:
    verdict = validate(
        delete("Environment", world().environments["staging"], MALLORY), world(), POLICY
    )
    assert verdict.allowed and any("prod requires staging" in w for w in verdict.warnings)


# ---- Agent -------------------------------------------------------------------------------


def _in(hours: int) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def agent(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "eu-1"}, "spec": spec}


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        ({}, "ok"),
        ({"certificateFingerprint": "ab" * 32}, "ok"),
        ({"certificateFingerprint": "AB" * 32}, "agent.fingerprint"),
        ({"certificateFingerprint": ":".join(["ab"] * 32)}, "agent.fingerprint"),
        ({"certificateFingerprint": "ab" * 31}, "agent.fingerprint"),
        ({"certificateFingerprint": 42}, "agent.fingerprint"),
        ({"capabilities": ["root.shell"]}, "schema"),
        ({"enrollment": {"tokenSha256": "ab" * 32, "expiresAt": _in(hours=1)}}, "ok"),
        (
            {"enrollment": {"tokenSha256": "ab" * 32, "expiresAt": _in(hours=48)}},
            "agent.enrollment",
        ),
        ({"enrollment": {"tokenSha256": "token", "expiresAt": _in(hours=1)}}, "schema"),
        ({"allowedNetworks": ["10.0.0.0/8", "fd00::/8"]}, "ok"),
        ({"allowedNetworks": ["10.0.0.0"]}, "schema"),
    ],
)
def test_agent(spec: dict[str, Any], rule: str) -> None:
    verdict = validate(create("Agent", agent(**spec), OPERATOR_ID), world(), POLICY)
    assert verdict.rule == rule
    assert verdict.allowed is (rule == "ok")


@pytest.mark.parametrize("hosts", [None, []])
def test_registry_credentials_need_allowed_registries(hosts: list[str] | None) -> None:
    extra: dict[str, Any] = {"registryCredentials": "vault:secret/registry/canary#token"}
    if hosts is not None:
        extra["allowedRegistries"] = hosts
    verdict = admit(environment_body("canary", **extra))
    assert not verdict.allowed and verdict.rule == "environment.credentials-hosts"
    assert verdict.message == (
        "Environment canary sets registryCredentials but no allowedRegistries: credentials "
        "are sent only to registries listed there; list the registry in spec.allowedRegistries"
    )


def test_an_update_that_empties_allowed_registries_is_refused_an_unrelated_one_is_not() -> None:
    view = world()
    old = environment_body(
        "canary",
        allowedRegistries=["registry.example.com"],
        registryCredentials="vault:secret/registry/canary#token",
    )
    emptied = edited(old, lambda b: b["spec"].update(allowedRegistries=[]))
    verdict = validate(update("Environment", old, emptied, OPERATOR_ID), view, POLICY)
    assert not verdict.allowed and verdict.rule == "environment.credentials-hosts"
    # Stored before the rule: an unrelated edit (suspending it) still goes through.
    legacy = edited(old, lambda b: b["spec"].update(allowedRegistries=[]))
    suspended = edited(legacy, lambda b: b["spec"].update(suspended=True))
    assert validate(update("Environment", legacy, suspended, OPERATOR_ID), view, POLICY).allowed
