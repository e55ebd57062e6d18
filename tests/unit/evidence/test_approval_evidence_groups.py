"""An approval's evidence names the groups that made the person an approver, even when they
belong to more groups than evidence records."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from evidence_fakes import Clock, MemorySigner

from stella.engine.evidence_hooks import EvidenceHooks
from stella.engine.promotion import Promotion
from stella.evidence.recorder import Recorder
from stella.evidence.store_memory import MemoryLog, MemoryStore
from stella.models import EnvironmentSpec, ReleaseSpec
from stella.models.release import EnvironmentProgress
from stella.policy.approvals import groups_for_evidence
from stella.policy.identity import Identity, format_identity

IMAGE = "registry.example.com/shop/web@sha256:" + "a" * 64
# 200 groups that all sort before the one that qualifies the approver.
DIRECTORY = [f"all-staff-{i:03d}" for i in range(200)]


def test_the_qualifying_groups_come_first_then_the_others_each_sorted() -> None:
    groups = ["zz-ops", "release-approvers", "aa-everyone", "cab", "aa-everyone"]
    assert groups_for_evidence(groups, ["release-approvers", "cab"]) == [
        "cab",
        "release-approvers",
        "aa-everyone",
        "zz-ops",
    ]
    assert groups_for_evidence(groups, []) == ["aa-everyone", "cab", "release-approvers", "zz-ops"]
    kept = groups_for_evidence([*DIRECTORY, "release-approvers"], ["release-approvers"])
    assert kept[0] == "release-approvers" and kept[1:] == DIRECTORY[:63]
    assert groups_for_evidence(DIRECTORY, ["nobody"], limit=3) == DIRECTORY[:3]


def _recorded_groups(store: MemoryStore) -> list[str]:
    [packet] = store.list()
    payload = base64.b64decode(json.loads(packet.envelope_json)["payload"])
    [approval] = json.loads(payload)["predicate"]["approvals"]
    return list(approval["groups"])


def test_an_approval_packet_records_the_approver_group_of_a_person_in_200_groups() -> None:
    spec = ReleaseSpec.model_validate(
        {
            "version": "1.0.0",
            "environments": ["prod"],
            "components": [
                {"name": "web", "image": IMAGE, "workload": {"name": "web", "container": "web"}}
            ],
        }
    )
    env = EnvironmentSpec.model_validate(
        {"approvals": {"required": 1, "approverGroups": ["release-approvers"]}}
    )
    body = {"metadata": {"namespace": "shop", "name": "r1", "uid": "u-1"}}
    promo = Promotion(
        ("shop", "r1"), body, spec, {"prod": EnvironmentProgress(name="prod")}, "prod", env
    )
    bob = Identity("bob", groups=frozenset([*DIRECTORY, "release-approvers"]))
    approval: dict[str, Any] = {
        "metadata": {
            "name": "a-bob",
            "uid": "a-1",
            "creationTimestamp": "2026-11-30T12:00:00Z",
            "annotations": {"stella.io/approver": format_identity(bob)},
        },
        "spec": {"release": "r1", "environment": "prod", "decision": "Approve"},
    }
    store = MemoryStore()
    hooks = EvidenceHooks(Recorder(MemorySigner(), MemoryLog(), store, "t", clock=Clock()))
    asyncio.run(hooks.approval(promo, approval, True, "Counted", "bob's approval counts"))
    groups = _recorded_groups(store)
    # Sorted alone, the first 64 would all be all-staff-*: the reason bob counted, lost.
    assert groups[0] == "release-approvers"
    assert len(groups) == 64 and groups[1:] == DIRECTORY[:63]
