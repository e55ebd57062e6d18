"""The pieces the promotion's stages share, pure, no cluster: the Promotion context, how a
stage moves an Environment's phase, the approvals a Release's status lists, and which
workloads or containers a namespace target lacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stella.engine.approvals import approval_records
from stella.engine.namespace_promotion import describe, missing_workloads
from stella.engine.promotion import Promotion, move
from stella.engine.workloads import ImageUpdate
from stella.models import EnvironmentSpec, ReleaseSpec
from stella.models.environment import ApprovalPolicy
from stella.models.release import EnvironmentProgress
from stella.policy import ApprovalFact, tally
from stella.policy.identity import Identity

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
IMAGE = "registry.example.com/shop/web@sha256:" + "a" * 64


def _promotion(body: dict[str, Any]) -> Promotion:
    spec = ReleaseSpec.model_validate(
        {
            "version": "1.0.0",
            "environments": ["dev", "prod"],
            "components": [
                {"name": "web", "image": IMAGE, "workload": {"name": "web", "container": "web"}}
            ],
        }
    )
    progress = {e: EnvironmentProgress(name=e) for e in spec.environments}
    return Promotion(("shop", "r1"), body, spec, progress, "prod", EnvironmentSpec())


def test_the_context_reads_its_own_environment_lock_holder_and_uid() -> None:
    promo = _promotion({"metadata": {"namespace": "shop", "name": "r1", "uid": "u-1"}})
    assert promo.p is promo.progress["prod"]
    promo.p.attempt = 3  # edited in place: the Release status the stages write
    assert promo.progress["prod"].attempt == 3 and promo.progress["dev"].attempt == 0
    assert promo.holder == "shop/r1"
    assert promo.uid == "u-1"
    assert _promotion({"metadata": {}}).uid == ""


def test_move_stamps_since_only_on_a_new_phase_and_bounds_what_it_keeps() -> None:
    p = EnvironmentProgress(name="prod", phase="Pending", since=T0)
    move(p, "Pending", "InFlight", "waiting")
    assert p.since == T0 and p.reason == "InFlight" and p.message == "waiting"
    move(p, "Deploying", "R" * 500, "m" * 10_000)
    assert p.phase == "Deploying" and p.since is not None and p.since > T0
    assert len(p.reason) == 128 and len(p.message) == 4096


def _fact(name: str, who: str | None, decision: str, minutes: int) -> ApprovalFact:
    ident = Identity(who, groups=frozenset({"release-approvers"})) if who else None
    return ApprovalFact(name, ident, decision, T0 + timedelta(minutes=minutes))  # type: ignore[arg-type]


def test_the_status_lists_counted_approvals_then_rejections_of_known_people() -> None:
    policy = ApprovalPolicy(required=2, approver_groups=["release-approvers"])
    facts = [
        _fact("a-bob", "bob", "Approve", 1),
        _fact("a-unknown", None, "Approve", 2),  # no stamped identity: refused, not listed
        _fact("a-carol", "carol", "Reject", 3),
        _fact("a-dave", "dave", "Approve", 4),
    ]
    t = tally(policy, Identity("alice"), facts)
    records = approval_records(t, facts)
    assert [(r.approver, r.decision, r.approval) for r in records] == [
        ("bob", "Approve", "a-bob"),
        ("dave", "Approve", "a-dave"),
        ("carol", "Reject", "a-carol"),
    ]


def test_the_status_lists_at_most_32_approvals() -> None:
    policy = ApprovalPolicy(required=1)
    facts = [_fact(f"a-{i}", f"person-{i}", "Approve", i) for i in range(40)]
    assert len(approval_records(tally(policy, Identity("alice"), facts), facts)) == 32


def _update(name: str, container: str) -> ImageUpdate:
    return ImageUpdate("shop", "Deployment", name, container, IMAGE, container)


def test_missing_workloads_and_containers_are_named() -> None:
    updates = [_update("web", "web"), _update("web", "sidecar"), _update("api", "api")]
    current = {
        ("shop", "Deployment", "web"): {
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "x"}]}}}
        }
    }
    assert missing_workloads(updates, current) == [
        "Deployment shop/web has no container sidecar",
        "Deployment shop/api does not exist",
    ]
    assert missing_workloads(updates[:1], current) == []
    assert describe(updates[:1]) == "Deployment shop/web (web)"
