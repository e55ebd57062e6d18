"""Promotions driven like people would, against the real API server, with the operator
as its own process: dev deploys on its own, staging waits for an approval that alice
cannot give herself, prod needs bob and carol, freezes hold, failures roll back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from kubernetes import client
from tests.e2e.conftest import OperatorProcess
from tests.e2e.shop import Shop
from tests.kube_support import eventually

from devenv.controlplane import ControlPlane


def test_dev_auto_staging_waits_self_approval_ignored_prod_needs_two(
    stella: OperatorProcess, shop: Shop, kube: ControlPlane
) -> None:
    shop.environment("dev")
    shop.environment(
        "staging",
        requires=["dev"],
        approvals={"required": 1, "approverGroups": ["release-approvers"]},
    )
    shop.environment(
        "prod",
        requires=["staging"],
        approvals={"required": 2, "approverGroups": ["release-approvers"]},
    )
    image = shop.image("1.0")
    shop.release("rel-1", image, ["dev", "staging", "prod"])

    # dev: no approvals required, deploys by itself, through a real rollout.
    shop.wait_phase("rel-1", "dev", "Deployed")
    assert shop.deployed_image("dev") == image
    d = shop.deployment("dev")
    assert d.status.available_replicas == 2
    assert shop.environment_status("dev")["currentRelease"] == f"{shop.release_ns}/rel-1"

    # staging waits for an approval; alice (the requester, also an approver via dave? no:
    # alice is only a requester) cannot approve, and the API server says why.
    waiting = shop.wait_phase("rel-1", "staging", "WaitingForApproval")
    assert "needs 1 approval" in waiting["message"]
    try:
        shop.approve("rel-1", "staging", "alice")
        raise AssertionError("alice's approval of her own release was admitted")
    except client.exceptions.ApiException as exc:
        assert exc.status in (403, 422)
    # dave is in both groups: he requests rel-2 and cannot approve it himself.
    assert shop.phase("rel-1", "staging") == "WaitingForApproval"
    assert shop.deployed_image("staging") != image

    # bob approves through the CLI, with his own credentials.
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig_for("bob"))}
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "stella"),
            "approve",
            "rel-1",
            shop.env_name("staging"),
            "-n",
            shop.release_ns,
            "--comment",
            "CAB-1",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"approved {shop.release_ns}/rel-1" in out.stdout
    shop.wait_phase("rel-1", "staging", "Deployed")
    assert shop.deployed_image("staging") == image

    # prod: one approval is not enough; bob and carol together open it.
    shop.approve("rel-1", "prod", "bob")
    waiting = shop.wait_phase("rel-1", "prod", "WaitingForApproval")
    eventually(
        lambda: "has 1 (bob)" in shop.progress("rel-1", "prod").get("message", ""),
        what="prod message naming bob",
    )
    assert shop.deployed_image("prod") != image
    shop.approve("rel-1", "prod", "carol")
    deployed = shop.wait_phase("rel-1", "prod", "Deployed")
    assert sorted(a["approver"] for a in deployed["approvals"]) == ["bob", "carol"]
    # Ready follows once the engine has summarised the last environment.
    eventually(
        lambda: (
            (r := shop.get_release("rel-1"))
            and any(
                c["type"] == "Ready" and c["status"] == "True" for c in r["status"]["conditions"]
            )
            and r
        ),
        what="Ready=True on rel-1",
    )
    # rel-1 is what runs in all three now: Live (issue 11), once each Environment's
    # currentRelease names it.
    eventually(
        lambda: (
            shop.get_release("rel-1")["status"]["summary"]
            == " ".join(f"{shop.env_name(s)}=Live" for s in ("dev", "staging", "prod"))
        ),
        what="rel-1 Live everywhere",
    )

    # `stella status` reads like a table.
    status = subprocess.run(
        [str(Path(sys.executable).parent / "stella"), "status", "rel-1", "-n", shop.release_ns],
        env={**os.environ, "KUBECONFIG": str(kube.kubeconfig_for("erin"))},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    prod_line = next(line for line in status.splitlines() if line.startswith(shop.env_name("prod")))
    # Approvers in decision order; two decisions in the same second may list either first.
    assert "Deployed" in prod_line and {"bob", "carol"} <= set(prod_line.replace(",", " ").split())
    assert status.splitlines()[1].split()[:4] == ["ENVIRONMENT", "PHASE", "REASON", "APPROVED"]


def test_self_approval_by_someone_in_both_groups_does_not_count(
    stella: OperatorProcess, shop: Shop
) -> None:
    shop.environment("dev", approvals={"required": 1, "approverGroups": ["release-approvers"]})
    image = shop.image("2.0")
    shop.release("rel-2", image, ["dev"], as_user="dave")
    shop.wait_phase("rel-2", "dev", "WaitingForApproval")
    try:
        shop.approve("rel-2", "dev", "dave")
        raise AssertionError("dave's approval of his own release was admitted")
    except client.exceptions.ApiException as exc:
        assert "requested" in cast(str, exc.body)
    shop.approve("rel-2", "dev", "carol")
    shop.wait_phase("rel-2", "dev", "Deployed")


def test_freeze_window_blocks_then_releases(stella: OperatorProcess, shop: Shop) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    end = now + timedelta(seconds=20)
    shop.environment(
        "dev",
        freezeWindows=[
            {
                "name": "release-freeze",
                "start": (now - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
                "end": end.isoformat().replace("+00:00", "Z"),
            }
        ],
    )
    image = shop.image("3.0")
    shop.release("rel-3", image, ["dev"])
    frozen = shop.wait_phase("rel-3", "dev", "Frozen")
    assert "release-freeze" in frozen["message"]
    assert shop.deployed_image("dev") != image
    shop.wait_phase("rel-3", "dev", "Deployed", timeout=90)
    assert datetime.now(UTC) >= end
    assert shop.deployed_image("dev") == image


def test_rollout_that_never_becomes_available_fails_and_rolls_back(
    stella: OperatorProcess, shop: Shop
) -> None:
    # No node carries this label: new pods never schedule, so the rollout never completes.
    shop.environment(
        "dev",
        rollout={"timeout": "15s", "rollbackOnFailure": True},
        node_selector={"stella-test/never": "true"},
        replicas=1,
    )
    before = shop.deployed_image("dev")
    image = shop.image("4.0")
    shop.release("rel-4", image, ["dev"])
    failed = shop.wait_phase("rel-4", "dev", "Failed", timeout=90)
    assert failed["reason"] == "RolloutTimeout"
    assert "rolled back" in failed["message"]
    assert shop.deployed_image("dev") == before
    # The lock and history are released right after the Release status is written.
    history = eventually(lambda: shop.environment_status("dev").get("history"), what="dev history")
    assert history[0]["outcome"] == "RolledBack" and history[0]["release"].endswith("/rel-4")
    assert "inFlight" not in shop.environment_status("dev")


def test_sigkill_mid_promotion_finishes_exactly_once(
    kube: ControlPlane, shop: Shop, tmp_path: Path, registry: object
) -> None:
    from tests.e2e.conftest import start_operator

    from devenv.webhooks import unregister

    # Pods can only run on a node carrying this label: the rollout stays in flight until the
    # test says so, so the kill lands mid-promotion every time.
    gate = {"stella-test/sigkill": shop.prefix}
    image = shop.image("5.0")
    core = client.CoreV1Api(shop.admin)
    # The operator first: it writes the managed namespace's approved-digests parameter,
    # without which the API server's policy admits no workload there (fails closed).
    op = start_operator(kube, tmp_path, {"STELLA_INSECURE_REGISTRIES": shop.registry.host})
    try:
        shop.environment(
            "dev",
            replicas=1,
            node_selector=gate,
            rollout={"timeout": "5m", "rollbackOnFailure": True},
        )
        generation_before = shop.deployment("dev").metadata.generation
        shop.release("rel-5", image, ["dev"])
        shop.wait_phase("rel-5", "dev", "Deploying", timeout=60)
        os.killpg(op.proc.pid, signal.SIGKILL)
        op.proc.popen.wait(5)  # type: ignore[union-attr]
        op.proc.popen = None
        op.restart()
        core.patch_node("kwok-node-0", {"metadata": {"labels": gate}})
        shop.wait_phase("rel-5", "dev", "Deployed", timeout=180)
    finally:
        op.proc.stop()
        unregister(kube)
        core.patch_node("kwok-node-0", {"metadata": {"labels": {"stella-test/sigkill": None}}})
    # Exactly one template change: the image patch was applied once (re-applying is a no-op).
    assert shop.deployment("dev").metadata.generation == generation_before + 1
    assert shop.deployed_image("dev") == image
    # Exactly one authorization and one outcome packet for this promotion.
    cms: list[Any] = (  # evidence ConfigMaps: their labels are set
        client.CoreV1Api(shop.admin)
        .list_namespaced_config_map(
            "stella-system", label_selector=f"stella.io/environment={shop.env_name('dev')}"
        )
        .items
    )
    kinds = sorted(cm.metadata.labels.get("stella.io/kind") for cm in cms)
    assert kinds.count("PromotionAuthorized") == 1, kinds
    assert kinds.count("PromotionDeployed") == 1, kinds
    history = shop.environment_status("dev")["history"]
    assert [h["outcome"] for h in history] == ["Deployed"]
