"""The shipped health.lua of each kind against every case of its health_test.yaml, in a
Lua 5.1 interpreter; the testdata's conditions are what the operator's own functions
compute from the same status (so the cases cannot drift from the code); the argocd-cm
snippet in docs/argocd.md is the shipped scripts, byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from tests.argocd_health import KINDS, HealthCase, cases, health, kind_dir

from stella.engine.environments import desired_status
from stella.models.release import EnvironmentProgress
from stella.policy import degraded, ready

DOC = Path(__file__).resolve().parents[3] / "docs" / "argocd.md"
ALL = cases()


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_health_case(case: HealthCase) -> None:
    assert health(case.kind, case.obj()) == {"status": case.status, "message": case.message}


def test_every_health_status_is_covered() -> None:
    for kind in KINDS:
        seen = {c.status for c in cases(kind)}
        assert seen == {"Healthy", "Progressing", "Suspended", "Degraded"}, kind
    phases = {
        e["phase"]
        for c in cases("Release")
        for e in (c.obj().get("status") or {}).get("environments", [])
    }
    # Every phase a Release can show somewhere in the cases.
    assert phases >= {
        "Pending", "WaitingForPrerequisites", "WaitingForApproval", "Frozen", "Deploying",
        "Verifying", "Deployed", "Failed", "Rejected", "Superseded", "Halted", "Blocked",
    }  # fmt: skip


def _conditions(obj: dict[str, object]) -> dict[str, tuple[str, str, str]]:
    status = obj.get("status") or {}
    assert isinstance(status, dict)
    return {
        c["type"]: (c["status"], c["reason"], c["message"]) for c in status.get("conditions", [])
    }


@pytest.mark.parametrize("case", cases("Release"), ids=[c.id for c in cases("Release")])
def test_release_testdata_is_what_the_operator_writes(case: HealthCase) -> None:
    obj = case.obj()
    conds = _conditions(obj)
    if not conds:
        return
    progress = [EnvironmentProgress.model_validate(e) for e in obj["status"]["environments"]]
    path = obj["spec"]["environments"]
    for type_, c in (("Ready", ready(progress, path)), ("Degraded", degraded(progress, path))):
        assert conds[type_] == (c.status, c.reason, c.message), type_


GRAPH = {"dev": [], "staging": ["dev"], "prod": ["staging"]}


@pytest.mark.parametrize("case", cases("Environment"), ids=[c.id for c in cases("Environment")])
def test_environment_testdata_is_what_the_operator_writes(case: HealthCase) -> None:
    obj = case.obj()
    conds = _conditions(obj)
    if not conds:
        return
    graph = dict(GRAPH)
    if conds["Ready"][1] == "RequiresCycle":
        graph["staging"] = ["prod"]
    generation = obj["metadata"]["generation"]
    observed = obj["status"]["observedGeneration"]
    obj["metadata"]["generation"] = observed  # what the operator saw when it wrote this
    suspension = None
    if obj["status"].get("suspended"):
        from stella.models.environment import Suspension

        suspension = Suspension.model_validate(obj["status"]["suspended"])
    want = _conditions({"status": desired_status(obj, graph, suspension=suspension)})
    assert conds == want
    assert generation >= observed


def test_the_docs_snippet_is_the_shipped_scripts() -> None:
    """docs/argocd.md's argocd-cm snippet carries each health.lua unchanged."""
    text = DOC.read_text()
    block = re.search(r"```yaml\n(# argocd-cm.*?)```", text, re.S)
    assert block, "docs/argocd.md has no argocd-cm block"
    cm = yaml.safe_load(block.group(1))
    for kind in KINDS:
        key = f"resource.customizations.health.stella.io_{kind}"
        assert cm["data"][key] == (kind_dir(kind) / "health.lua").read_text(), key
