"""The access matrix of each persona the chart binds, asked of the real API server.

A fixed list of (resource, scope) x verbs is put to the API server as SubjectAccessReviews
for each persona's identity (user and groups, as the token file or the ServiceAccount token
authenticates them); the answer is {persona: {"group/resource@scope": [allowed verbs]}}.
tests/install/test_access.py compares it to the documented matrix (access.yaml, shown in
docs/install.md): a role that grants more, or less, fails the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

EXPECTED = Path(__file__).with_name("access.yaml")
OPERATOR_NS = "stella-system"
# A namespace where Releases and Approvals live and a target namespace with workloads.
TEAM_NS = "shop"

CRUD = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
WRITE = ["create", "update", "patch", "delete"]
STATUS = ["get", "update", "patch"]

# (group, resource, subresource, scope) -> verbs asked. scope: a namespace, or "cluster".
CHECKS: list[tuple[str, str, str, str, list[str]]] = [
    ("stella.io", "releases", "", TEAM_NS, CRUD),
    ("stella.io", "releases", "status", TEAM_NS, STATUS),
    ("stella.io", "approvals", "", TEAM_NS, CRUD),
    ("stella.io", "approvals", "status", TEAM_NS, STATUS),
    (
        "stella.io",
        "environments",
        "",
        "cluster",
        [*CRUD, "approve", "promote", "rollback", "clear-halt", "suspend"],
    ),
    ("stella.io", "environments", "status", "cluster", STATUS),
    ("stella.io", "actions", "", "cluster", CRUD),
    ("stella.io", "actions", "status", "cluster", STATUS),
    ("stella.io", "agents", "", "cluster", CRUD),
    ("stella.io", "agents", "status", "cluster", STATUS),
    ("stella.io", "plugins", "", "cluster", [*CRUD, "reenable"]),
    ("stella.io", "plugins", "status", "cluster", STATUS),
    ("stella.io", "pluginpublishers", "", "cluster", CRUD),
    ("stella.io", "receivers", "", TEAM_NS, CRUD),
    ("stella.io", "agenttasks", "", OPERATOR_NS, CRUD),
    ("stella.io", "agenttasks", "status", OPERATOR_NS, STATUS),
    ("", "configmaps", "", OPERATOR_NS, CRUD),
    ("", "configmaps", "", TEAM_NS, ["get", "list", *WRITE]),
    ("", "secrets", "", OPERATOR_NS, ["get", "list", "watch", *WRITE]),
    ("", "secrets", "", TEAM_NS, ["get", "list", "watch"]),
    ("", "serviceaccounts", "token", OPERATOR_NS, ["create"]),
    ("", "events", "", TEAM_NS, ["get", "list", "watch", "create", "patch", "delete"]),
    ("", "namespaces", "", "cluster", ["get", "list", "watch", *WRITE]),
    ("", "pods", "", TEAM_NS, ["get", "list", "create", "delete"]),
    ("", "pods", "exec", TEAM_NS, ["create"]),
    ("apps", "deployments", "", TEAM_NS, ["get", "list", "watch", *WRITE]),
    ("apps", "statefulsets", "", TEAM_NS, ["get", "list", "watch", "patch", "update"]),
    ("apps", "daemonsets", "", TEAM_NS, ["get", "list", "watch", "patch", "update"]),
    ("coordination.k8s.io", "leases", "", OPERATOR_NS, ["get", "create", "update"]),
    ("authorization.k8s.io", "subjectaccessreviews", "", "cluster", ["create"]),
    (
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "",
        "cluster",
        ["get", "list", "watch", *WRITE],
    ),
    (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        "",
        "cluster",
        ["get", *WRITE],
    ),
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        "",
        "cluster",
        ["get", *WRITE],
    ),
    (
        "rbac.authorization.k8s.io",
        "clusterroles",
        "",
        "cluster",
        ["get", *WRITE, "bind", "escalate"],
    ),
    ("rbac.authorization.k8s.io", "rolebindings", "", TEAM_NS, ["create", "update"]),
    ("", "users", "", "cluster", ["impersonate"]),
    ("", "serviceaccounts", "", "cluster", ["impersonate"]),
    ("kopf.dev", "clusterkopfpeerings", "", "cluster", ["get", "list", "patch"]),
]

# (group, resource, scope, object name) -> verbs asked about that one object: where a role
# grants by resourceNames (the operator's approved-digests ConfigMaps in target namespaces).
NAMED_CHECKS: list[tuple[str, str, str, str, list[str]]] = [
    ("", "configmaps", TEAM_NS, "stella-approved-digests", ["get", *WRITE]),
]

# Who each persona is, as the API server authenticates them (system:authenticated included:
# what every logged-in identity may do is part of what the persona may do).
PERSONAS: dict[str, tuple[str, list[str]]] = {
    "requester": ("alice", ["release-requesters"]),
    "approver": ("bob", ["release-approvers"]),
    "platform": ("frank", ["platform-engineers"]),
    "auditor": ("erin", ["auditors"]),
    "operator": (
        f"system:serviceaccount:{OPERATOR_NS}:stella-operator",
        ["system:serviceaccounts", f"system:serviceaccounts:{OPERATOR_NS}"],
    ),
    "admission": (
        f"system:serviceaccount:{OPERATOR_NS}:stella-admission",
        ["system:serviceaccounts", f"system:serviceaccounts:{OPERATOR_NS}"],
    ),
}


def key(group: str, resource: str, sub: str, scope: str, name: str = "") -> str:
    what = f"{group or 'core'}/{resource}" + (f"/{sub}" if sub else "")
    return what + (f"[{name}]" if name else "") + f"@{scope}"


def matrix(admin: client.ApiClient) -> dict[str, dict[str, list[str]]]:
    api = client.AuthorizationV1Api(admin)
    out: dict[str, dict[str, list[str]]] = {}
    for persona, (user, groups) in PERSONAS.items():
        rows: dict[str, list[str]] = {}
        asked = [(g, r, sub, scope, "", verbs) for g, r, sub, scope, verbs in CHECKS]
        asked += [(g, r, "", scope, name, verbs) for g, r, scope, name, verbs in NAMED_CHECKS]
        for group, resource, sub, scope, obj, verbs in asked:
            allowed = []
            for verb in verbs:
                attrs: dict[str, Any] = {
                    "group": group,
                    "resource": resource,
                    "verb": verb,
                    "subresource": sub or None,
                    "namespace": None if scope == "cluster" else scope,
                    "name": obj or None,
                }
                review = api.create_subject_access_review(
                    client.V1SubjectAccessReview(
                        spec=client.V1SubjectAccessReviewSpec(
                            user=user,
                            groups=[*groups, "system:authenticated"],
                            resource_attributes=client.V1ResourceAttributes(**attrs),
                        )
                    )
                )
                assert review.status is not None
                if review.status.allowed:
                    allowed.append(verb)
            if allowed:
                rows[key(group, resource, sub, scope, obj)] = allowed
        out[persona] = rows
    return out


def expected() -> dict[str, dict[str, list[str]]]:
    return yaml.safe_load(EXPECTED.read_text())  # type: ignore[no-any-return]


def markdown(m: dict[str, dict[str, list[str]]]) -> str:
    """The matrix as docs/install.md shows it."""
    lines = ["| persona | resource@scope | verbs |", "|---|---|---|"]
    for persona, rows in m.items():
        for k, verbs in rows.items():
            lines.append(f"| {persona} | `{k}` | {', '.join(verbs)} |")
    return "\n".join(lines)
