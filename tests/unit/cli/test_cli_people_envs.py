"""status, approve, reject and env list; the path order; kubeconfig contexts and namespaces."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml
from cli_fakes import FakeCustomObjects, api_exception, environment, release

from stella.cli import main
from stella.cli.envs import environment_row
from stella.cli.kube import connect, path_order, split_ref
from stella.cli.output import CliError
from stella.cli.people import approval_body, generate_name
from stella.models import ApprovalSpec

# --- env list -------------------------------------------------------------------------------


def names(envs: list[dict[str, object]]) -> list[str]:
    return [e["metadata"]["name"] for e in envs]  # type: ignore[index]


def test_path_order_is_topological_with_ties_by_name() -> None:
    envs = [
        environment("prod", ("staging", "qa")),
        environment("staging", ("dev",)),
        environment("qa", ("dev",)),
        environment("dev"),
        environment("audit"),
    ]
    assert names(path_order(envs)) == ["audit", "dev", "qa", "staging", "prod"]


def test_environments_on_a_cycle_or_behind_one_come_last_by_name() -> None:
    envs = [
        environment("b", ("a",)),
        environment("a", ("b",)),
        environment("c", ("a",)),
        environment("dev"),
        environment("x", ("missing",)),
    ]
    assert names(path_order(envs)) == ["dev", "x", "a", "b", "c"]


def test_environment_row() -> None:
    env = environment(
        "prod",
        ("staging",),
        auto=False,
        currentRelease="shop/shop-1-4-1",
        inFlight="shop/shop-1-4-2",
        conditions=[{"type": "Ready", "status": "False", "reason": "Deploying"}],
    )
    assert environment_row(env) == [
        "prod",
        "staging",
        "manual",
        "shop/shop-1-4-1",
        "shop/shop-1-4-2",
        "-",
        "Deploying",
    ]
    halted = environment("dev", halted={"reason": "DigestMismatch"})
    assert environment_row(halted)[5] == "DigestMismatch"
    suspended = environment("dev", suspended={"by": "alice", "at": "2026-01-01T00:00:00Z"})
    assert environment_row(suspended)[2] == "auto" and environment_row(suspended)[5] == "suspended"


def test_env_list_in_path_order(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.add("environments", environment("qa", ("dev",)))
    assert main(["env", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["ENVIRONMENT", "dev", "qa", "staging", "prod"]
    assert main(["env", "list", "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "List" and names(doc["items"]) == ["dev", "qa", "staging", "prod"]
    assert main(["env", "list", "-o", "yaml"]) == 0
    assert names(yaml.safe_load(capsys.readouterr().out)["items"]) == [
        "dev",
        "qa",
        "staging",
        "prod",
    ]


# --- status ---------------------------------------------------------------------------------


def test_status_not_found_says_which_namespace_and_why(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "shop-9"]) == 1
    assert capsys.readouterr().err == (
        "error: Release shop-9 not found in namespace shop (from your kubeconfig context); "
        "use NS/NAME or -n\n"
    )
    # the namespace was named: repeating "use NS/NAME or -n" would not help; listing does
    assert main(["status", "shop-9", "-n", "web"]) == 1
    assert capsys.readouterr().err == (
        "error: Release shop-9 not found in namespace web (from -n); "
        "`stella status -n web` lists the Releases there\n"
    )
    assert main(["status", "web/shop-9"]) == 1
    assert capsys.readouterr().err == (
        "error: Release shop-9 not found in namespace web (from NS/NAME); "
        "`stella status -n web` lists the Releases there\n"
    )


def test_status_table_and_json(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    rel = cluster.objects[("releases", "shop", "shop-1-4-2")]
    rel["status"] = {
        "conditions": [{"type": "Ready", "status": "False", "reason": "WaitingForApproval"}],
        "environments": [
            {"name": "dev", "phase": "Deployed", "reason": "RolloutComplete"},
            {
                "name": "prod",
                "phase": "WaitingForApproval",
                "reason": "ApprovalsMissing",
                "approvals": [{"approver": "bob", "decision": "Approve"}],
                "message": "1 of 2 approvals",
            },
        ],
    }
    assert main(["status", "shop/shop-1-4-2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "Release shop/shop-1-4-2  version 1.4.2  requested by (not recorded)  "
        "ready=False (WaitingForApproval)"
    )
    # Who asked, from admission's stamp (status.requester is display only and not read).
    rel["metadata"]["annotations"] = {
        "stella.io/requester": '{"groups":[],"uid":"u-a","username":"alice"}'
    }
    rel["status"]["requester"] = "mallory"
    assert main(["status", "shop/shop-1-4-2"]) == 0
    assert "  requested by alice  ready=False" in capsys.readouterr().out.splitlines()[0]
    assert out[3].split()[:4] == ["prod", "WaitingForApproval", "ApprovalsMissing", "bob"]
    assert main(["status", "shop/shop-1-4-2", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["metadata"]["name"] == "shop-1-4-2"
    assert main(["status", "-o", "yaml"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["items"][0]["metadata"]["name"] == "shop-1-4-2"
    assert main(["status", "-n", "empty"]) == 0
    assert capsys.readouterr().out == (
        "no Releases in namespace empty (from -n); `stella status -A` shows every namespace\n"
    )


# --- approve / reject -----------------------------------------------------------------------


def test_approval_body() -> None:
    body = approval_body("shop-1-4-2", "prod", "Approve", "CAB-1")
    assert body["metadata"] == {"generateName": "shop-1-4-2-prod-"}
    ApprovalSpec.model_validate(body["spec"])
    assert (
        generate_name("a" * 60, "prod").endswith("-") and len(generate_name("a" * 60, "prod")) <= 58
    )


def test_approve_creates_an_approval_in_the_release_namespace(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["approve", "shop/shop-1-4-2", "prod", "--comment", "CAB-1"]) == 0
    made = cluster.created[0]
    assert made["kind"] == "Approval" and made["metadata"]["namespace"] == "shop"
    assert made["spec"] == {
        "release": "shop-1-4-2",
        "environment": "prod",
        "decision": "Approve",
        "comment": "CAB-1",
    }
    assert capsys.readouterr().out.startswith("approved shop/shop-1-4-2 for prod (Approval shop/")


def test_an_approve_rbac_refuses_says_which_right_it_takes(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo's first refusal (alice is no approver) was RBAC's sentence alone."""
    cluster.fail_create = api_exception(
        403,
        'approvals.stella.io is forbidden: User "alice" cannot create resource "approvals" in '
        'API group "stella.io" in the namespace "shop"',
    )
    assert main(["approve", "shop/shop-1-4-2", "prod"]) == 1
    assert capsys.readouterr().err == (
        'error: approve refused: approvals.stella.io is forbidden: User "alice" cannot create '
        'resource "approvals" in API group "stella.io" in the namespace "shop"; deciding takes '
        "the right to create approvals.stella.io in shop (ClusterRole stella-approver, which "
        "the chart binds to groups.approvers); `kubectl auth can-i create approvals.stella.io "
        "-n shop` shows yours\n"
    )
    # an admission rule's refusal already says what to do: nothing added
    cluster.fail_create = api_exception(
        403, 'admission webhook "admit-approval.stella.io" denied the request: ask another'
    )
    assert main(["reject", "shop/shop-1-4-2", "prod", "--comment", "no"]) == 1
    assert capsys.readouterr().err.endswith("denied the request: ask another\n")


def test_approving_a_decided_promotion_says_it_will_not_count(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    progress = [{"name": "dev", "phase": "Deployed"}, {"name": "prod", "phase": "Pending"}]
    cluster.add("releases", release("r", "shop", ("dev", "prod"), environments=progress))
    assert main(["approve", "shop/r", "prod"]) == 0
    assert "note:" not in capsys.readouterr().out
    assert main(["approve", "shop/r", "dev"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == (
        "note: dev is already Deployed for this Release: this decision is kept as evidence "
        "but does not count (AlreadyDecided)"
    )
    assert len(cluster.created) == 2  # still created: every decision is evidence


def test_swapped_arguments_get_a_short_message(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["approve", "prod", "shop/shop-1-4-2"]) == 2
    err = capsys.readouterr().err
    assert "looks like a Release, not an Environment" in err and len(err) < 200
    assert main(["approve", "prod", "shop-1-4-2"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: 'prod' is an Environment: write the Release first")
        and len(err) < 200
    )
    assert main(["approve", "Shop_1.4.2", "prod"]) == 2
    err = capsys.readouterr().err
    assert "is not a valid Release name" in err and "^[a-z0-9]" not in err
    assert cluster.created == []


def test_reject_needs_a_comment(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reject", "shop/shop-1-4-2", "prod"]) == 2
    assert "--comment" in capsys.readouterr().err
    assert cluster.created == []


def test_approve_for_an_environment_the_release_skips(cluster: FakeCustomObjects) -> None:
    cluster.add("environments", environment("qa", ("dev",)))
    assert main(["approve", "shop/shop-1-4-2", "qa"]) == 1
    assert cluster.created == []


# --- kubeconfig: contexts and namespaces ----------------------------------------------------


def kubeconfig(tmp_path: Path) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": "alice", "context": {"cluster": "c", "user": "u", "namespace": "shop"}},
            {"name": "bob", "context": {"cluster": "c", "user": "u"}},
        ],
        "current-context": "alice",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_connect_takes_the_namespace_from_the_context(tmp_path: Path) -> None:
    path = str(kubeconfig(tmp_path))
    alice = connect(argparse.Namespace(kubeconfig=path))
    assert (alice.server, alice.context) == ("https://127.0.0.1:6443", "alice")
    assert alice.namespace(None).name == "shop"
    assert alice.namespace("web").source == "from -n"
    bob = connect(argparse.Namespace(kubeconfig=path, context="bob"))
    ns = bob.namespace(None)
    assert (ns.name, ns.source) == ("default", "your kubeconfig context sets none")


def test_an_unknown_context_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(CliError) as err:
        connect(argparse.Namespace(kubeconfig=str(kubeconfig(tmp_path)), context="carol"))
    assert err.value.code == 2
    assert err.value.message == "no context 'carol' in your kubeconfig; contexts: alice, bob"


def test_a_missing_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CliError) as err:
        connect(argparse.Namespace(kubeconfig=str(tmp_path / "nope")))
    assert err.value.code == 2
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(CliError) as err:
        connect(argparse.Namespace())
    assert err.value.code == 3 and "set KUBECONFIG or pass --kubeconfig" in err.value.message


def test_split_ref() -> None:
    assert split_ref("shop/shop-1") == ("shop", "shop-1")
    assert split_ref("shop-1") == (None, "shop-1")
    for bad in ("a/b/c", "/x", "x/"):
        with pytest.raises(CliError):
            split_ref(bad)
