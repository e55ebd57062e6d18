"""An Approval made after its promotion was decided says so (issue 27b): counted false,
reason AlreadyDecided, a message naming the decision and when — written once, after its
evidence (ApprovalRefused) is stored. Before, it kept an empty status forever: the engine
judged Approvals only while the promotion was being decided, and skipped a finished
Release on its Approvals' events."""

from __future__ import annotations

import time
from typing import Any, cast

from kubernetes import client
from tests.e2e.conftest import OperatorProcess
from tests.e2e.shop import G, Shop, V
from tests.e2e.test_actions_e2e import packets, stella_as
from tests.kube_support import eventually

from devenv.controlplane import ControlPlane


def _approval(shop: Shop, name: str) -> dict[str, Any]:
    approval = client.CustomObjectsApi(shop.admin).get_namespaced_custom_object(
        G, V, shop.release_ns, "approvals", name
    )
    return cast(dict[str, Any], approval)


def _verdict(shop: Shop, name: str) -> dict[str, Any] | None:
    """The Approval's Counted condition, once the engine wrote it."""
    st = _approval(shop, name).get("status") or {}
    return next((c for c in st.get("conditions") or [] if c.get("type") == "Counted"), None)


def _late(
    shop: Shop, release: str, as_user: str, decision: str = "Approve", name: str = ""
) -> dict[str, Any]:
    """`as_user`'s decision on a decided promotion (made here, or already as `name`): the
    Approval once the engine wrote its verdict."""
    name = name or shop.approve(release, "prod", as_user, decision)["metadata"]["name"]
    eventually(lambda: _verdict(shop, name) is not None, timeout=30, what=f"{name}'s verdict")
    approval = _approval(shop, name)
    assert approval["status"]["counted"] is False
    assert approval["status"]["approver"] == as_user  # as admission stamped it
    # Written once: the write's own event (and any later one) finds the verdict there.
    rv = approval["metadata"]["resourceVersion"]
    time.sleep(3)
    assert _approval(shop, name)["metadata"]["resourceVersion"] == rv
    return approval


def test_an_approval_after_the_deploy_says_it_came_too_late(
    stella: OperatorProcess, shop: Shop, kube: ControlPlane
) -> None:
    prod = shop.environment(
        "prod", approvals={"required": 1, "approverGroups": ["release-approvers"]}
    )
    shop.release("r-late", shop.image("7.0"), ["prod"])
    shop.wait_phase("r-late", "prod", "WaitingForApproval", timeout=90)
    bob = shop.approve("r-late", "prod", "bob")["metadata"]["name"]
    deployed = shop.wait_phase("r-late", "prod", "Deployed", timeout=90)
    eventually(lambda: _verdict(shop, bob) is not None, timeout=30, what="bob's verdict")
    assert (_verdict(shop, bob) or {})["reason"] == "Counted"

    carol = _late(shop, "r-late", "carol")
    cond = next(c for c in carol["status"]["conditions"] if c["type"] == "Counted")
    assert (cond["status"], cond["reason"]) == ("False", "AlreadyDecided")
    assert cond["message"].startswith(f"{prod} was already Deployed at ")
    assert cond["message"].endswith("this approval was not needed and does not count")
    assert f"at {deployed['since'][:19]}Z for" in cond["message"]  # when prod was decided
    # A late rejection, through the CLI, which says at once that it will not count; it
    # does not stop what was deployed, and its status says how to undo it.
    out = stella_as(
        kube, "dave", "reject", f"{shop.release_ns}/r-late", prod, "--comment", "too late"
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert f"note: {prod} is already Deployed for this Release" in out.stdout
    made = out.stdout.split(f"(Approval {shop.release_ns}/", 1)[1].split(")", 1)[0]
    dave = _late(shop, "r-late", "dave", name=made)
    cond = next(c for c in dave["status"]["conditions"] if c["type"] == "Counted")
    assert cond["reason"] == "AlreadyDecided" and "stella rollback" in cond["message"]
    assert shop.phase("r-late", "prod") == "Deployed"

    # Every decision as signed evidence: the late ones are refused, with the reason.
    refused = [p for p in packets(shop.admin, prod) if p["kind"] == "ApprovalRefused"]
    late = {p["actor"]: p for p in refused if p["outcome"]["reason"] == "AlreadyDecided"}
    assert sorted(late) == ["carol", "dave"]
    assert late["carol"]["approvals"][0]["counted"] is False
    # bob's verdict was written once, at the decision, and is untouched.
    assert (_verdict(shop, bob) or {})["reason"] == "Counted"
    # A verdict the decision counted but that never reached the API (an operator crash
    # between its evidence and its status; here erased by the cluster admin) is written
    # again as the decision recorded it, not as a late one.
    erased = client.CustomObjectsApi(shop.admin).patch_namespaced_custom_object_status(
        G, V, shop.release_ns, "approvals", bob, {"status": None}
    )
    assert not cast(dict[str, Any], erased).get("status")
    eventually(lambda: _verdict(shop, bob) is not None, timeout=30, what="bob's verdict again")
    again = _approval(shop, bob)["status"]
    assert again["counted"] is True and again["approver"] == "bob"
    assert (_verdict(shop, bob) or {})["reason"] == "Counted"


def test_an_approval_after_a_rejection_says_it_came_too_late(
    stella: OperatorProcess, shop: Shop
) -> None:
    prod = shop.environment(
        "prod", approvals={"required": 2, "approverGroups": ["release-approvers"]}
    )
    shop.release("r-rej", shop.image("8.0"), ["prod"])
    shop.wait_phase("r-rej", "prod", "WaitingForApproval", timeout=90)
    shop.approve("r-rej", "prod", "bob", "Reject")
    shop.wait_phase("r-rej", "prod", "Rejected", timeout=90)

    carol = _late(shop, "r-rej", "carol")
    cond = next(c for c in carol["status"]["conditions"] if c["type"] == "Counted")
    assert (cond["status"], cond["reason"]) == ("False", "AlreadyDecided")
    assert cond["message"].startswith(f"this Release was already Rejected for {prod} at ")
    assert cond["message"].endswith("to try again, create a new Release")
    assert shop.phase("r-rej", "prod") == "Rejected"
    refused = [p for p in packets(shop.admin, prod) if p["kind"] == "ApprovalRefused"]
    assert [p["actor"] for p in refused if p["outcome"]["reason"] == "AlreadyDecided"] == ["carol"]
