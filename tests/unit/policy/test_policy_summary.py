from __future__ import annotations

import json
from typing import Any

from stella.models.common import USERNAME_MAX
from stella.models.release import EnvironmentProgress, ReleaseStatus
from stella.policy.summary import (
    SUMMARY_MAX,
    ReadyStatus,
    ready,
    requester_shown,
    summary_line,
)

PATH = ["dev", "staging", "prod"]


def progress(**phases: str) -> list[EnvironmentProgress]:
    return [EnvironmentProgress(name=n, phase=p, reason=p) for n, p in phases.items()]


def test_summary_line_in_path_order() -> None:
    got = summary_line(progress(prod="Pending", dev="Deployed", staging="WaitingForApproval"), PATH)
    assert got == "dev=Deployed staging=WaitingForApproval prod=Pending"
    assert summary_line([], PATH) == "dev=Pending staging=Pending prod=Pending"


def test_summary_line_fits_the_field() -> None:
    path = [f"environment-with-a-rather-long-name-{i:02d}" for i in range(40)]
    line = summary_line([], path)
    assert len(line) <= SUMMARY_MAX
    assert line.endswith(")") and "…(+" in line


def test_ready_when_deployed_everywhere() -> None:
    assert ready(progress(dev="Deployed", staging="Deployed", prod="Deployed"), PATH) == (
        ReadyStatus("True", "Deployed", "deployed to dev, staging, prod")
    )


def test_not_ready_names_the_first_blocking_environment() -> None:
    envs = [
        EnvironmentProgress(name="dev", phase="Deployed", reason="Deployed"),
        EnvironmentProgress(
            name="staging",
            phase="WaitingForApproval",
            reason="ApprovalsMissing",
            message="needs 1 approval; has 0",
        ),
        EnvironmentProgress(name="prod", phase="WaitingForPrerequisites", reason="X"),
    ]
    assert ready(envs, PATH) == ReadyStatus(
        "False", "ApprovalsMissing", "staging: WaitingForApproval: needs 1 approval; has 0"
    )


def test_not_ready_when_not_evaluated_or_reason_unusable() -> None:
    assert ready([], PATH).reason == "Pending"
    bad = [EnvironmentProgress(name="dev", phase="Failed", reason="not a reason!")]
    assert ready(bad, ["dev"]) == ReadyStatus("False", "Failed", "dev: Failed")
    assert ready([], []).status == "False"


def test_the_release_running_in_an_environment_is_live_there() -> None:
    """Issue 11: ten Releases Deployed to dev, one of them runs there: that one is Live."""
    envs = progress(dev="Deployed", staging="Deployed", prod="WaitingForApproval")
    assert summary_line(envs, PATH, live={"staging"}) == (
        "dev=Deployed staging=Live prod=WaitingForApproval"
    )
    # Live only where it is Deployed (a stale currentRelease never makes a waiting one Live).
    assert "prod=WaitingForApproval" in summary_line(envs, PATH, live={"prod"})


def test_degraded_names_the_first_environment_a_person_must_act_on() -> None:
    from stella.policy.summary import degraded

    fine = progress(dev="Deployed", staging="WaitingForApproval", prod="Superseded")
    assert degraded(fine, PATH).status == "False"
    for phase in ("Failed", "Rejected", "Blocked", "Halted"):
        got = degraded(progress(dev="Deployed", staging=phase, prod=phase), PATH)
        assert (got.status, got.reason) == ("True", phase)
        assert got.message.startswith(f"staging: {phase}")
    # A suspended Environment is a wait a person chose, not a fault.
    suspended = [EnvironmentProgress(name="dev", phase="Halted", reason="EnvironmentSuspended")]
    assert degraded(suspended, ["dev"]).status == "False"
    halted = [EnvironmentProgress(name="dev", phase="Halted", reason="EnvironmentHalted")]
    assert degraded(halted, ["dev"]).reason == "EnvironmentHalted"
    # Only the targeted path counts.
    assert degraded(progress(other="Failed"), PATH).status == "False"


def stamped(raw: str | None) -> dict[str, Any]:
    annotations = {} if raw is None else {"stella.io/requester": raw}
    return {"metadata": {"name": "r", "annotations": annotations}}


def test_the_requester_column_shows_the_stamped_username() -> None:
    """kubectl get rel's REQUESTER: the username of admission's JSON stamp, which a printer
    column cannot parse; nothing when there is no usable stamp."""
    alice = '{"groups":["release-requesters"],"uid":"u-1","username":"alice"}'
    assert requester_shown(stamped(alice)) == "alice"
    assert requester_shown(stamped(None)) is None
    assert requester_shown(stamped('{"username": ""}')) is None
    assert requester_shown(stamped("alice")) is None  # not the JSON admission writes
    # A service account's username reaches 339 characters: shown whole, and it fits.
    account = "system:serviceaccount:ci:" + "d" * 253
    shown = requester_shown(stamped(json.dumps({"username": account})))
    assert shown == account
    ReleaseStatus(requester=shown)  # fits the field the API server validates
    # Longer than status and evidence hold: no usable stamp (admission refuses to make one).
    assert requester_shown(stamped(json.dumps({"username": "x" * (USERNAME_MAX + 1)}))) is None
