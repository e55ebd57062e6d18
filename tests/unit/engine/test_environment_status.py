"""Environment status as a pure function: path, cycles, halts, suspension."""

from __future__ import annotations

from typing import Any

from stella.engine.environments import OWNED, desired_status


def env(
    name: str, requires: list[str], status: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 3},
        "spec": {"requires": requires, **spec},
        "status": status or {},
    }


def ready(status: dict[str, Any]) -> tuple[str, str]:
    c = next(c for c in status["conditions"] if c["type"] == "Ready")
    return c["status"], c["reason"]


def test_path_and_ready() -> None:
    graph = {"dev": [], "staging": ["dev"], "prod": ["staging"]}
    st = desired_status(env("prod", ["staging"]), graph)
    assert st["path"] == ["dev", "staging", "prod"]
    assert ready(st) == ("True", "Ready")
    assert st["observedGeneration"] == 3
    assert set(st) <= set(OWNED), "the lock and history belong to the engine's locked writes"


def test_cycle_and_unknown_names_are_reported() -> None:
    st = desired_status(env("a", ["b"]), {"a": ["b"], "b": ["a"]})
    assert ready(st)[1] == "RequiresCycle"
    st = desired_status(env("a", ["ghost"]), {"a": ["ghost"]})
    assert ready(st)[1] == "UnknownEnvironment"


def test_halted_and_suspended_are_not_ready_and_say_what_to_do() -> None:
    halted = env(
        "prod",
        [],
        {"halted": {"reason": "DigestMismatch", "message": "m", "since": "2026-01-01T00:00:00Z"}},
    )
    st = desired_status(halted, {"prod": []})
    status, reason = ready(st)
    assert (status, reason) == ("False", "Halted")
    assert "stella env clear prod" in next(
        c["message"] for c in st["conditions"] if c["type"] == "Ready"
    )
    assert ready(desired_status(halted, {"prod": []}, cleared=True)) == ("True", "Ready")
    assert ready(desired_status(env("prod", [], suspended=True), {"prod": []}))[1] == "Suspended"


def test_a_suspension_by_a_person_is_shown_and_not_ready() -> None:
    from datetime import UTC, datetime

    from stella.models.environment import Suspension

    who = Suspension(by="frank", at=datetime(2026, 11, 28, tzinfo=UTC), reason="INC-7")
    st = desired_status(env("prod", []), {"prod": []}, suspension=who)
    assert st["suspended"]["by"] == "frank"
    status, reason = ready(st)
    assert (status, reason) == ("False", "Suspended")
    # No suspension is written as null, so a merge patch removes an old one.
    assert desired_status(env("prod", []), {"prod": []})["suspended"] is None


def test_degraded_while_halted_or_misconfigured_not_while_suspended() -> None:
    def degraded(st: dict[str, Any]) -> tuple[str, str]:
        c = next(c for c in st["conditions"] if c["type"] == "Degraded")
        return c["status"], c["reason"]

    halted = env(
        "prod",
        [],
        {"halted": {"reason": "DigestMismatch", "message": "m", "since": "2026-01-01T00:00:00Z"}},
    )
    assert degraded(desired_status(halted, {"prod": []})) == ("True", "Halted")
    assert degraded(desired_status(halted, {"prod": []}, cleared=True))[0] == "False"
    assert degraded(desired_status(env("a", ["b"]), {"a": ["b"], "b": ["a"]})) == (
        "True",
        "RequiresCycle",
    )
    suspended = desired_status(env("prod", [], suspended=True), {"prod": []})
    assert degraded(suspended) == ("False", "NoFailures")


def test_requires_is_one_readable_line_for_kubectl_get_env() -> None:
    """`kubectl get env` printed spec.requires as JSON (["staging"]); a printer column
    cannot join a list, so the status carries it as one line, and none when it is empty."""
    graph = {"dev": [], "qa": [], "staging": ["dev", "qa"], "prod": ["staging"]}
    assert desired_status(env("prod", ["staging"]), graph)["requires"] == "staging"
    assert desired_status(env("staging", ["dev", "qa"]), graph)["requires"] == "dev,qa"
    # No prerequisites: written as null, so a merge patch removes an old line.
    old = env("dev", [], {"requires": "qa"})
    assert desired_status(old, graph)["requires"] is None
