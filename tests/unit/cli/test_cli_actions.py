"""promote, env clear|suspend|resume, rollback, action list: the bodies they build (pure),
the checks made before anything is created, and what each command creates — or not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cli_fakes import FakeCustomObjects, api_exception, environment, release

from stella.cli import main
from stella.cli.actions import (
    action_body,
    action_rows,
    check_clear,
    check_one_environment,
    check_promote,
    check_reason,
    wait_for_action,
)
from stella.cli.kube import Kube
from stella.cli.output import CliError
from stella.models import ActionSpec
from stella.policy.rollback import rollback_body

# --- bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "kwargs", "prefix", "spec"),
    [
        (
            "Promote",
            {"release": "shop/shop-1-4-2", "reason": "CAB-2"},
            "promote-prod-",
            {
                "action": "Promote",
                "environment": "prod",
                "release": "shop/shop-1-4-2",
                "reason": "CAB-2",
            },
        ),
        (
            "ClearHalt",
            {"reason": "INC-42 fixed"},
            "clear-halt-prod-",
            {"action": "ClearHalt", "environment": "prod", "reason": "INC-42 fixed"},
        ),
        (
            "Suspend",
            {"reason": "migration"},
            "suspend-prod-",
            {"action": "Suspend", "environment": "prod", "reason": "migration"},
        ),
        ("Resume", {}, "resume-prod-", {"action": "Resume", "environment": "prod"}),
    ],
)
def test_each_action_body(
    action: str, kwargs: dict[str, Any], prefix: str, spec: dict[str, Any]
) -> None:
    body = action_body(action, "prod", **kwargs)
    assert body == {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Action",
        "metadata": {"generateName": prefix},
        "spec": spec,
    }
    ActionSpec.model_validate(body["spec"])  # what the CRD schema comes from accepts it


def test_a_long_environment_name_still_makes_a_valid_generate_name() -> None:
    name = "a" * 50 + "." + "b" * 12
    prefix = action_body("ClearHalt", name, reason="x")["metadata"]["generateName"]
    assert len(prefix) <= 58 and prefix.endswith("-") and not prefix.endswith(".-")


def test_rollback_body_copies_the_spec_into_one_environment() -> None:
    source = release("shop-1-4-1", "shop", ("dev", "staging", "prod"))
    source["spec"]["components"] = [{"name": "web", "image": "r/web@sha256:" + "a" * 64}]
    body = rollback_body(
        source, "prod", "shop/shop-1-4-1", datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    )
    assert body["metadata"] == {
        "name": "shop-1-4-1-rb-20260301120005",
        "namespace": "shop",
        "annotations": {"stella.io/rollback-of": "shop/shop-1-4-1"},
    }
    assert body["spec"]["environments"] == ["prod"]
    assert body["spec"]["components"] == source["spec"]["components"]
    long = rollback_body(release("x" * 63, "shop", ("prod",)), "prod", "shop/x", datetime.now(UTC))
    assert len(long["metadata"]["name"]) <= 63


# --- checks --------------------------------------------------------------------------------


def test_promote_checks() -> None:
    rel = release("shop-1-4-2", "shop", ("dev", "prod"))
    check_promote(environment("prod", auto=False), rel)  # fine
    with pytest.raises(CliError) as err:
        check_promote(environment("prod"), rel)
    assert err.value.code == 1
    assert err.value.message.startswith("prod promotes automatically; nothing to promote")
    with pytest.raises(CliError, match="promotes automatically"):
        check_promote(environment("prod", auto=True), rel)
    with pytest.raises(CliError) as err:
        check_promote(environment("staging", auto=False), rel)
    assert (
        err.value.code == 1
        and "does not go to staging (its environments: dev, prod)" in err.value.message
    )


def test_one_environment_per_call_and_reasons() -> None:
    assert check_one_environment("prod") == "prod"
    for bad in ("qa,prod", "qa prod"):
        with pytest.raises(CliError) as err:
            check_one_environment(bad)
        assert err.value.code == 2 and "one Environment per call" in err.value.message
    with pytest.raises(CliError) as err:
        check_reason("  ", "env clear", "INC-1")
    assert err.value.code == 2 and "--reason" in err.value.message
    assert check_reason(" INC-1 ", "env clear", "x") == "INC-1"


def test_clear_needs_a_halt() -> None:
    check_clear(environment("prod", halted={"reason": "DigestMismatch"}))
    with pytest.raises(CliError, match="prod is not halted; nothing to clear"):
        check_clear(environment("prod"))


# --- commands against the stand-in ---------------------------------------------------------


def test_promote_creates_one_promote_action(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["promote", "shop/shop-1-4-2", "prod", "--reason", "CAB-2"]) == 0
    assert [c["spec"] for c in cluster.created] == [
        {
            "action": "Promote",
            "environment": "prod",
            "release": "shop/shop-1-4-2",
            "reason": "CAB-2",
        }
    ]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Action promote-prod-x0001 created: promote shop/shop-1-4-2 into prod"
    assert out[1].startswith("next: ")


def test_promote_takes_the_namespace_from_the_context(cluster: FakeCustomObjects) -> None:
    assert main(["promote", "shop-1-4-2", "prod"]) == 0
    assert cluster.created[0]["spec"]["release"] == "shop/shop-1-4-2"


def test_promote_refuses_a_misspelled_environment_and_creates_nothing(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["promote", "shop/shop-1-4-2", "prood"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: no Environment 'prood' (did you mean 'prod'?); Environments: dev, staging, prod\n"
    )
    assert cluster.created == []


def test_promote_refuses_where_promotion_is_automatic(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["promote", "shop/shop-1-4-2", "staging"]) == 1
    assert capsys.readouterr().err.startswith(
        "error: staging promotes automatically; nothing to promote"
    )
    assert cluster.created == []


def test_promote_of_a_missing_release_says_where_it_looked(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["promote", "shop-9", "prod"]) == 1
    assert capsys.readouterr().err == (
        "error: Release shop-9 not found in namespace shop (from your kubeconfig context); "
        "use NS/NAME or -n\n"
    )
    assert cluster.created == []


def test_promote_of_several_environments_is_usage(cluster: FakeCustomObjects) -> None:
    assert main(["promote", "shop/shop-1-4-2", "staging,prod"]) == 2
    assert cluster.created == []


def test_a_refusal_by_the_api_server_is_one_line_exit_1(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.fail_create = api_exception(
        403,
        'actions.stella.io is forbidden: User "alice" cannot create resource "actions" in '
        'API group "stella.io" at the cluster scope',
    )
    assert main(["promote", "shop/shop-1-4-2", "prod"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "error: promote shop/shop-1-4-2 into prod refused: "
        'actions.stella.io is forbidden: User "alice"'
    )
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "spec"),
    [
        (
            ["env", "clear", "prod", "--reason", "INC-42"],
            {"action": "ClearHalt", "environment": "prod", "reason": "INC-42"},
        ),
        (
            ["env", "suspend", "prod", "--reason", "migration"],
            {"action": "Suspend", "environment": "prod", "reason": "migration"},
        ),
        (["env", "resume", "prod"], {"action": "Resume", "environment": "prod"}),
        (
            ["env", "resume", "prod", "--reason", "done"],
            {"action": "Resume", "environment": "prod", "reason": "done"},
        ),
    ],
)
def test_env_actions_create_their_action(
    cluster: FakeCustomObjects, argv: list[str], spec: dict[str, Any]
) -> None:
    cluster.objects[("environments", None, "prod")]["status"]["halted"] = {
        "reason": "DigestMismatch"
    }
    assert main(argv) == 0
    assert [c["spec"] for c in cluster.created] == [spec]
    assert cluster.created[0]["kind"] == "Action"


@pytest.mark.parametrize("command", ["clear", "suspend"])
def test_clear_and_suspend_need_a_reason(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    assert main(["env", command, "prod"]) == 2
    assert "--reason" in capsys.readouterr().err
    assert cluster.created == []


def test_clear_where_nothing_is_halted_is_refused(cluster: FakeCustomObjects) -> None:
    assert main(["env", "clear", "prod", "--reason", "x"]) == 1
    assert cluster.created == []


def finish_with(cluster: FakeCustomObjects, phase: str, message: str, after: int = 2) -> None:
    """The operator, as seen by polling: the Action's phase is set on the n-th read."""
    reads = {"n": 0}

    def on_get(obj: dict[str, Any]) -> None:
        if obj.get("kind") == "Action":
            reads["n"] += 1
            if reads["n"] >= after:
                obj["status"] = {
                    "phase": phase,
                    "reason": "Test",
                    "message": message,
                    "actor": "alice",
                }

    cluster.on_get = on_get


def test_wait_prints_the_outcome(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("time.sleep", lambda s: None)
    finish_with(cluster, "Done", "shop/shop-1-4-2 may now enter prod")
    assert main(["promote", "shop/shop-1-4-2", "prod", "--wait"]) == 0
    assert "Done: shop/shop-1-4-2 may now enter prod" in capsys.readouterr().out


def test_wait_on_a_refused_action_exits_1(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("time.sleep", lambda s: None)
    finish_with(cluster, "Refused", "the Release no longer exists")
    assert main(["env", "suspend", "prod", "--reason", "x", "--wait"]) == 1
    assert capsys.readouterr().err == (
        "error: Action suspend-prod-x0001 refused (Test): the Release no longer exists\n"
    )


def test_wait_gives_up_after_the_timeout() -> None:
    fake = FakeCustomObjects()
    fake.add("actions", {"kind": "Action", "metadata": {"name": "a"}, "spec": {}, "status": {}})
    now = {"t": 0.0}

    def sleep(s: float) -> None:
        now["t"] += s

    kube = Kube(None, "https://x", _custom=fake)
    assert wait_for_action(kube, "a", 5.0, clock=lambda: now["t"], sleep=sleep) is None
    assert now["t"] == pytest.approx(5.0)


def test_wait_timeout_exits_1_with_what_to_look_at(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("time.sleep", lambda s: None)
    assert main(["env", "resume", "prod", "--wait", "--timeout", "0"]) == 1
    err = capsys.readouterr().err
    assert "still Pending after 0s" in err and "kubectl get action resume-prod-x0001" in err


def test_action_list(cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["action", "list"]) == 0
    assert capsys.readouterr().out == "no Actions\n"
    main(["promote", "shop/shop-1-4-2", "prod"])
    cluster.objects[("environments", None, "prod")]["status"]["halted"] = {"reason": "X"}
    main(["env", "clear", "prod", "--reason", "INC-1"])
    cluster.created[0]["status"] = {"phase": "Done", "actor": "alice", "reason": "Promoted"}
    cluster.created[1]["metadata"]["creationTimestamp"] = "2026-01-01T00:00:01Z"
    capsys.readouterr()
    assert main(["action", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "NAME", "ACTION", "ENVIRONMENT", "RELEASE", "ACTOR", "PHASE", "REASON", "AGE"
    ]  # fmt: skip
    assert lines[1].split()[:7] == [
        "promote-prod-x0001",
        "Promote",
        "prod",
        "shop/shop-1-4-2",
        "alice",
        "Done",
        "Promoted",
    ]
    assert lines[2].split()[:6] == [
        "clear-halt-prod-x0002",
        "ClearHalt",
        "prod",
        "-",
        "-",
        "Pending",
    ]
    assert main(["action", "list", "-e", "dev", "-o", "json"]) == 0
    assert '"items": []' in capsys.readouterr().out


def test_action_rows_show_age() -> None:
    rows = action_rows(
        [
            {
                "metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"action": "Resume", "environment": "dev"},
            }
        ],
        now=datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
    )
    assert rows == [["a", "Resume", "dev", "-", "-", "Pending", "-", "5m"]]


def test_rollback_dry_run_prints_the_release(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.add("releases", release("shop-1-4-1", "shop", ("dev", "staging", "prod")))
    prod = cluster.objects[("environments", None, "prod")]
    prod["status"] = {
        "currentRelease": "shop/shop-1-4-2",
        "history": [
            {
                "release": "shop/shop-1-4-2",
                "version": "1.4.2",
                "outcome": "Deployed",
                "at": "2026-01-02T00:00:00Z",
            },
            {
                "release": "shop/shop-1-4-1",
                "version": "1.4.1",
                "outcome": "Deployed",
                "at": "2026-01-01T00:00:00Z",
            },
        ],
    }
    assert main(["rollback", "prod", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert '"stella.io/rollback-of": "shop/shop-1-4-1"' in out and '"prod"' in out
    assert cluster.created == []
    assert main(["rollback", "prod", "--to", "shop-1-4-1"]) == 0
    made = cluster.created[0]
    assert made["metadata"]["namespace"] == "shop" and made["spec"]["environments"] == ["prod"]


def test_rollback_of_an_unknown_environment_is_usage(cluster: FakeCustomObjects) -> None:
    assert main(["rollback", "prdo"]) == 2
    assert cluster.created == []
