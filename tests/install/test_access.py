"""Least privilege, proven against the real API server: each persona the chart binds
(requester, approver, platform, auditor, operator, admission) may do exactly what the documented
matrix says (tests/install/access.yaml, shown in docs/install.md), no more, no less."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from tests.install.access import EXPECTED, markdown, matrix
from tests.install.conftest import Install

ROOT = Path(__file__).resolve().parents[2]


def test_each_persona_holds_exactly_the_documented_access(installed: Install) -> None:
    got = matrix(installed.admin)
    if os.environ.get("STELLA_ACCESS_WRITE"):  # regenerate, then review the diff by hand
        header = "".join(line for line in EXPECTED.read_text().splitlines(True) if line[0] == "#")
        EXPECTED.write_text(
            header + yaml.safe_dump(got, sort_keys=False, default_flow_style=None, width=200)
        )
    want = yaml.safe_load(EXPECTED.read_text())
    for persona in want:
        assert got[persona] == want[persona], (
            f"{persona}: the API server grants\n{yaml.safe_dump(got[persona])}"
            f"the documented matrix says\n{yaml.safe_dump(want[persona])}"
        )
    assert set(got) == set(want)
    # docs/install.md shows the same matrix.
    assert markdown(want) in (ROOT / "docs" / "install.md").read_text()


# What no persona may ever hold, whatever access.yaml says (so the matrix cannot be
# "updated" into a grant of these): persona -> [(resource@scope, verb)].
NEVER: dict[str, list[tuple[str, str]]] = {
    "operator": [
        *(("core/configmaps@stella-system", v) for v in ("update", "patch", "delete")),
        *((f"core/secrets@{ns}", v) for ns in ("stella-system", "shop") for v in ("get", "list")),
        ("rbac.authorization.k8s.io/clusterroles@cluster", "escalate"),
        ("rbac.authorization.k8s.io/clusterroles@cluster", "bind"),
        ("stella.io/releases@shop", "create"),
        ("stella.io/releases@shop", "update"),
        ("stella.io/approvals@shop", "create"),
        ("stella.io/approvals@shop", "delete"),
        ("stella.io/actions@cluster", "create"),
        ("core/users@cluster", "impersonate"),
        ("core/serviceaccounts/token@stella-system", "create"),
        ("admissionregistration.k8s.io/validatingwebhookconfigurations@cluster", "update"),
    ],
    # Admission judges; it never writes what it judges, nor anything the engine acts on.
    "admission": [
        *(
            (f"stella.io/{r}@{scope}", v)
            for r, scope in (
                ("releases", "shop"),
                ("approvals", "shop"),
                ("environments", "cluster"),
                ("actions", "cluster"),
            )
            for v in ("create", "update", "patch", "delete")
        ),
        ("stella.io/releases/status@shop", "patch"),
        ("stella.io/environments/status@cluster", "update"),
        *(
            (f"core/configmaps@{ns}", v)
            for ns in ("stella-system", "shop")
            for v in ("create", "get")
        ),
        *((f"core/secrets@{ns}", v) for ns in ("stella-system", "shop") for v in ("get", "list")),
        ("apps/deployments@shop", "patch"),
        ("coordination.k8s.io/leases@stella-system", "create"),
    ],
    **{
        p: [
            ("stella.io/approvals@shop", "delete"),
            ("stella.io/approvals@shop", "update"),
            ("stella.io/releases@shop", "update"),
            ("core/configmaps@stella-system", "delete"),
            ("core/secrets@stella-system", "get"),
            ("stella.io/environments/status@cluster", "patch"),
        ]
        for p in ("requester", "approver", "platform", "auditor")
    },
}


def test_no_persona_holds_a_forbidden_verb(installed: Install) -> None:
    got = matrix(installed.admin)
    for persona, pairs in NEVER.items():
        held = [(k, v) for k, v in pairs if v in got[persona].get(k, [])]
        assert not held, f"{persona} may {held}"
