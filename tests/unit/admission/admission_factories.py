"""Bodies, people and snapshots for admission tests (raw dicts, as the API server sends)."""

from __future__ import annotations

import copy
from typing import Any, cast

from stella.admission import AdmissionPolicy, Request
from stella.admission.base import Body
from stella.engine.view import ClusterView
from stella.policy.binding import BINDING_ANNOTATION, binding_of, format_binding
from stella.policy.identity import Identity, format_identity


class Grants:
    """RBAC for tests: everyone holds every verb, except the (user, verb, environment)
    triples in `denied`; `broken` makes every review fail (the API server unreachable)."""

    def __init__(self) -> None:
        self.denied: set[tuple[str, str, str]] = set()
        self.broken = False
        self.asked: list[tuple[str, str, str]] = []

    def may(self, user: Identity, verb: str, environment: str) -> bool | None:
        self.asked.append((user.username, verb, environment))
        if self.broken:
            return None
        return (user.username, verb, environment) not in self.denied


OPERATOR = "system:serviceaccount:stella-system:stella-operator"
GRANTS = Grants()
POLICY = AdmissionPolicy(operator_username=OPERATOR, authorizer=GRANTS)
APPROVERS = "release-approvers"
REGISTRY = "registry.example.com"

ALICE = Identity("alice", "uid-alice", frozenset({"developers", "system:authenticated"}))
BOB = Identity("bob", "uid-bob", frozenset({APPROVERS, "system:authenticated"}))
CAROL = Identity("carol", "uid-carol", frozenset({APPROVERS, "system:authenticated"}))
MALLORY = Identity("mallory", "uid-mallory", frozenset({"system:authenticated"}))
OPERATOR_ID = Identity(OPERATOR, "uid-operator", frozenset({"system:serviceaccounts"}))


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def image(n: int = 1, repo: str = f"{REGISTRY}/shop/web") -> str:
    return f"{repo}@{digest(n)}"


def release_body(
    name: str = "shop-1-4-2",
    namespace: str = "shop",
    *,
    images: tuple[str, ...] = (image(1),),
    environments: tuple[str, ...] = ("dev", "staging", "prod"),
    requester: Identity | None = ALICE,
    phases: dict[str, str] | None = None,
    extra_annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    annotations: dict[str, str] = dict(extra_annotations or {})
    if requester is not None:
        annotations["stella.io/requester"] = format_identity(requester)
    body: dict[str, Any] = {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Release",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "annotations": annotations,
        },
        "spec": {
            "version": "1.4.2",
            "components": [
                {
                    "name": f"c{i}",
                    "image": img,
                    "workload": {"kind": "Deployment", "name": f"c{i}", "container": f"c{i}"},
                }
                for i, img in enumerate(images)
            ],
            "environments": list(environments),
        },
    }
    if phases:
        body["status"] = {"environments": [{"name": e, "phase": p} for e, p in phases.items()]}
    return body


def environment_body(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": name},
        "spec": spec,
    }


def approval_body(
    release: str = "shop-1-4-2",
    environment: str = "prod",
    decision: str = "Approve",
    *,
    name: str | None = None,
    namespace: str = "shop",
    approver: Identity | None = None,
    comment: str = "CAB-1234",
) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": namespace}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = f"{release}-{environment}-"
    if approver is not None:
        # What admission stamps: the approver, and — when it is the Release world() holds —
        # the Release decided on (its UID and spec digest).
        meta["annotations"] = {"stella.io/approver": format_identity(approver)}
        if (namespace, release) == ("shop", "shop-1-4-2"):
            binding = binding_of(release_body(release, namespace))
            assert binding is not None
            meta["annotations"][BINDING_ANNOTATION] = format_binding(binding)
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Approval",
        "metadata": meta,
        "spec": {
            "release": release,
            "environment": environment,
            "decision": decision,
            "comment": comment,
        },
    }


def namespace_body(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def world() -> ClusterView:
    """dev -> staging -> prod; prod needs 1 approval from release-approvers; shop-prod is
    managed and requires approved digests for prod."""
    view = ClusterView()
    view.synced = True
    view.environments["dev"] = environment_body("dev", allowedRegistries=[REGISTRY])
    view.environments["staging"] = environment_body(
        "staging", requires=["dev"], allowedRegistries=[REGISTRY]
    )
    view.environments["prod"] = environment_body(
        "prod",
        requires=["staging"],
        releaseNamespaces={"matchLabels": {"team": "shop"}},
        targets=[{"namespace": "shop-prod"}],
        allowedRegistries=[REGISTRY],
        registryCredentials="vault:secret/data/registry/prod#token",
        approvals={"required": 1, "approverGroups": [APPROVERS], "preventSelfApproval": True},
        freezeWindows=[
            {"schedule": "0 18 * * FRI", "duration": "62h", "timeZone": "Europe/Berlin"}
        ],
        requireApprovedDigests=True,
    )
    view.namespaces["shop"] = namespace_body("shop", team="shop")
    view.namespaces["other"] = namespace_body("other", team="other")
    view.namespaces["shop-prod"] = namespace_body("shop-prod", **{"stella.io/managed": "true"})
    view.namespaces["plain"] = namespace_body("plain")
    view.releases[("shop", "shop-1-4-2")] = release_body()
    return view


def create(kind: str, obj: dict[str, Any], user: Identity, namespace: str | None = None) -> Request:
    meta = obj.get("metadata") or {}
    ns = namespace if namespace is not None else meta.get("namespace")
    return Request("CREATE", kind, ns, meta.get("name"), user, obj, None)


def update(kind: str, old: Body, new: Body, user: Identity) -> Request:
    meta = new.get("metadata") or {}
    return Request("UPDATE", kind, meta.get("namespace"), meta.get("name"), user, new, old)


def delete(kind: str, old: Body, user: Identity) -> Request:
    meta = old.get("metadata") or {}
    return Request("DELETE", kind, meta.get("namespace"), meta.get("name"), user, None, old)


def edited(body: Body, fn: Any) -> dict[str, Any]:
    out = cast(dict[str, Any], copy.deepcopy(body))  # the views' bodies are dicts
    fn(out)
    return out


def apply_patch(doc: dict[str, Any], ops: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """RFC 6902 'add' (all mutate emits), with RFC 6901 pointer unescaping."""
    out = copy.deepcopy(doc)
    for op in ops:
        assert op["op"] == "add"
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
        node = out
        for t in tokens[:-1]:
            node = node[t]
        node[tokens[-1]] = op["value"]
    return out


def admit(kind: str, body: dict[str, Any], user: Identity, view: ClusterView) -> Any:
    """CREATE as the API server runs it: the mutating webhook, its patch, then validation."""
    from stella.admission import mutate, validate

    req = create(kind, body, user)
    stamped = mutate(req, view, POLICY)
    if not stamped.allowed:
        return stamped
    return validate(create(kind, apply_patch(body, stamped.patch), user), view, POLICY)
