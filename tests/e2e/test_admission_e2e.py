"""Issue #4 on the real API server, as the real users of the local control plane.

The operator runs as its own process with its webhooks registered (failurePolicy Fail);
alice (release-requesters), bob and carol (release-approvers), dave (both), admin
(cluster-admin, bypasses RBAC but not admission) and the operator's own identity act
through their own tokens. Every rule is shown admitting and refusing; every refusal says
what to do, is counted in stella_admission_denied_total{rule}, leaves a Kubernetes Event
where there is an object, and security signals are logged as security events. Where RBAC
already refuses a person (alice may not create Approvals, bob may not edit or delete
them), that is shown too, and admission is then proven with admin, whom RBAC lets through.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.conftest import OperatorProcess, running_operator, start_operator
from tests.e2e.shop import Shop
from tests.kube_support import api_client_for, eventually, refused_by_policy

from devenv.controlplane import ControlPlane
from devenv.services import Registry
from devenv.webhooks import register, unregister
from stella.evidence.manifest import DATA_ENVELOPE, L_SEQUENCE, chain_selector
from stella.evidence.packet import Statement

G, V = "stella.io", "v1alpha1"
OPERATOR_CONTEXT = (
    "stella-operator"  # the static-token user system:serviceaccount:stella-system:stella-operator
)
FOREIGN_IMAGE = "registry.evil.example/shop/web@sha256:" + "ab" * 32
NEVER_RELEASED = "sha256:" + "0e" * 32
RELEASE_POLICY = "release-create.stella.io"


# ---- helpers -------------------------------------------------------------------------------
def metric_values(op: OperatorProcess, name: str, label: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{op.url}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[sample.labels[label]] = sample.value
    return out


def denials(op: OperatorProcess) -> dict[str, float]:
    return metric_values(op, "stella_admission_denied_total", "rule")


def signals(op: OperatorProcess) -> dict[str, float]:
    return metric_values(op, "stella_security_events_total", "signal")


def message_of(exc: ApiException) -> str:
    try:
        return str(json.loads(cast(str, exc.body)).get("message", exc.body))
    except (TypeError, ValueError):
        return str(exc.body)


@dataclass
class Ledger:
    """What a test expects the operator to have counted and logged by its end."""

    op: OperatorProcess
    admin: client.ApiClient
    rules: Counter[str] = field(default_factory=Counter)
    signals: Counter[str] = field(default_factory=Counter)
    before_rules: dict[str, float] = field(default_factory=dict)
    before_signals: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.before_rules = denials(self.op)
        self.before_signals = signals(self.op)

    def denied(
        self,
        call: Callable[[], Any],
        rule: str,
        says: tuple[str, ...],
        *,
        webhook: str,
        signal: str | None = None,
        event_on: tuple[str, str] | None = None,  # (namespace, involved object name)
        status: int = 403,
    ) -> str:
        """The call is refused by Stella's webhook `webhook` with a message saying `says`."""
        try:
            call()
        except ApiException as exc:
            msg = message_of(exc)
            assert exc.status == status, (exc.status, msg)
            assert f'admission webhook "{webhook}.stella.io" denied the request' in msg, msg
            for phrase in says:
                assert phrase in msg, f"{phrase!r} not in {msg!r}"
        else:
            raise AssertionError(f"{rule}: the request was admitted")
        self.rules[rule] += 1
        if signal:
            self.signals[signal] += 1
        if event_on is not None:
            reason = signal or "AdmissionDenied"
            namespace, name = event_on
            eventually(
                lambda: self.event(namespace, name, reason, rule if not signal else ""),
                timeout=10,
                what=f"Event {reason} on {name}",
            )
        return msg

    def event(self, namespace: str, name: str, reason: str, contains: str) -> bool:
        events = (
            client.CoreV1Api(self.admin)
            .list_namespaced_event(
                namespace, field_selector=f"involvedObject.name={name},reason={reason}"
            )
            .items
        )
        return any(e.type == "Warning" and contains in (e.message or "") for e in events)

    def check(self) -> None:
        """Every expected denial counted by rule, every signal counted and logged."""
        after_rules, after_signals = denials(self.op), signals(self.op)
        for rule, n in self.rules.items():
            got = after_rules.get(rule, 0.0) - self.before_rules.get(rule, 0.0)
            assert got >= n, (
                f"stella_admission_denied_total{{rule={rule!r}}} rose by {got}, expected {n}"
            )
        for sig, n in self.signals.items():
            got = after_signals.get(sig, 0.0) - self.before_signals.get(sig, 0.0)
            assert got >= n, (
                f"stella_security_events_total{{signal={sig!r}}} rose by {got}, expected {n}"
            )
        logs = self.op.logs()
        for sig in self.signals:
            assert re.search(rf"security event {sig}: .* denied", logs), (
                f"no security event {sig} logged"
            )


def refused_by_rbac(call: Callable[[], Any], verb: str) -> None:
    try:
        call()
    except ApiException as exc:
        assert exc.status == 403, (exc.status, exc.body)
        assert f"cannot {verb} resource" in message_of(exc), message_of(exc)
        assert "admission webhook" not in message_of(exc)
    else:
        raise AssertionError(f"RBAC let the {verb} through")


def refused_by_schema(call: Callable[[], Any], says: tuple[str, ...]) -> str:
    try:
        call()
    except ApiException as exc:
        msg = message_of(exc)
        assert exc.status == 422, (exc.status, msg)
        for phrase in says:
            assert phrase in msg, f"{phrase!r} not in {msg!r}"
        return msg
    raise AssertionError("the API server stored an object its schema should refuse")


def release_body(name: str, image: str, environments: list[str], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Release",
        "metadata": {"name": name, **meta},
        "spec": {
            "version": "1.0.0",
            "environments": environments,
            "components": [
                {
                    "name": "web",
                    "image": image,
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
        },
    }


def approval_body(
    release: str, environment: str, decision: str = "Approve", **meta: Any
) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Approval",
        "metadata": {"generateName": f"{release}-", **meta},
        "spec": {
            "release": release,
            "environment": environment,
            "decision": decision,
            "comment": "CAB-4711",
        },
    }


def deployment(name: str, image: str) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=0,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name=name, image=image)]),
            ),
        ),
    )


# ---- the world: one operator and one shop for every rule test -------------------------------
@dataclass
class World:
    kube: ControlPlane
    op: OperatorProcess
    shop: Shop
    admin: client.ApiClient
    users: dict[str, client.ApiClient]
    outsider_ns: str  # a namespace no Environment lets release (no team=shop label)
    unmanaged_ns: str  # not labelled stella.io/managed

    def crd(self, user: str) -> Any:  # kubernetes 37 types reads object; tests index dicts
        return client.CustomObjectsApi(self.admin if user == "admin" else self.users[user])

    def create_release(
        self, user: str, body: dict[str, Any], ns: str | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        made = self.crd(user).create_namespaced_custom_object(
            G, V, ns or self.shop.release_ns, "releases", body, dry_run="All" if dry_run else None
        )
        return cast(dict[str, Any], made)

    def create_approval(
        self, user: str, body: dict[str, Any], dry_run: bool = False
    ) -> dict[str, Any]:
        made = self.crd(user).create_namespaced_custom_object(
            G, V, self.shop.release_ns, "approvals", body, dry_run="All" if dry_run else None
        )
        return cast(dict[str, Any], made)

    def ledger(self) -> Ledger:
        return Ledger(self.op, self.admin)


@pytest.fixture(scope="module")
def guard(
    kube: ControlPlane, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    with running_operator(
        kube,
        tmp_path_factory.mktemp("admission-e2e"),
        {"STELLA_INSECURE_REGISTRIES": registry.host},
    ) as op:
        yield op


@pytest.fixture(scope="module")
def world(
    guard: OperatorProcess,
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
    registry: Registry,
) -> Iterator[World]:
    core = client.CoreV1Api(kube_admin)
    tag = uuid.uuid4().hex[:6]
    made = []
    for name, labels in (
        (f"a{tag}-shop", {"team": "shop"}),
        (f"a{tag}-outsider", {}),
        (f"a{tag}-plain", {}),
    ):
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
        )
        made.append(name)
    shop = Shop(kube_admin, kube_as, registry, made[0], prefix=f"a{tag}")
    w = World(kube, guard, shop, kube_admin, kube_as, made[1], made[2])
    try:
        # dev: no approvals, deploys by itself; only approved digests may run in its namespace.
        shop.environment("dev", replicas=1, requireApprovedDigests=True)
        # prod: one approver from release-approvers, no self-approval, only team=shop releases.
        shop.environment(
            "prod",
            replicas=1,
            approvals={"required": 1, "approverGroups": ["release-approvers"]},
            releaseNamespaces={"matchLabels": {"team": "shop"}},
        )
        # cab: only the change board decides, a group nobody here is in.
        shop.environment(
            "cab", replicas=1, approvals={"required": 1, "approverGroups": ["change-board"]}
        )
        image = f"{registry.host}/{shop.prefix}/web@sha256:{'1' * 64}"
        # The operator's view has the Environments and namespaces once a dry run is admitted.
        eventually(
            lambda: w.create_release(
                "alice",
                release_body("settle", image, [shop.env_name(s) for s in ("dev", "prod", "cab")]),
                dry_run=True,
            ),
            timeout=30,
            what="the operator's view to know the shop",
        )
        yield w
    finally:
        shop.cleanup()
        for name in made:
            core.delete_namespace(name)


# ---- Releases ------------------------------------------------------------------------------
def test_release_rules(world: World) -> None:
    shop, ledger = world.shop, world.ledger()
    prod = shop.env_name("prod")
    pinned = f"{shop.registry.host}/{shop.prefix}/web@sha256:{'2' * 64}"

    # Allowed: alice's pinned Release from an allowed registry; her identity is recorded.
    made = world.create_release("alice", release_body("r-ok", pinned, [prod]))
    recorded = json.loads(made["metadata"]["annotations"]["stella.io/requester"])
    assert recorded["username"] == "alice" and "release-requesters" in recorded["groups"]

    # A tag instead of a digest: the CRD schema itself refuses, and says how to fix it.
    refused_by_schema(
        lambda: world.create_release(
            "alice", release_body("r-tag", f"{shop.registry.host}/{shop.prefix}/web:1.0", [prod])
        ),
        ("is not pinned by digest", "repo@sha256:<64 hex>"),
    )

    # What needs the Environments is decided by the API server itself (the release-create
    # policy, from the parameter the operator publishes; tests/e2e/test_release_policies_e2e.py
    # has the rest): the API server counts these refusals, not the operator.
    # A registry prod does not allow.
    refused_by_policy(
        lambda: world.create_release("alice", release_body("r-evil", FOREIGN_IMAGE, [prod])),
        RELEASE_POLICY,
        "release.registry-not-allowed",
        "registry.evil.example",
        f"Environment {prod} does not allow",
        "push the image to an allowed registry",
    )

    # A namespace prod's releaseNamespaces does not select.
    refused_by_policy(
        lambda: world.create_release(
            "alice", release_body("r-ns", pinned, [prod]), ns=world.outsider_ns
        ),
        RELEASE_POLICY,
        "release.namespace-not-allowed",
        f"namespace {world.outsider_ns} may not release into Environment {prod}",
        "create the Release in an allowed namespace",
    )

    # An Environment that does not exist.
    refused_by_policy(
        lambda: world.create_release(
            "alice", release_body("r-nowhere", pinned, [f"{shop.prefix}-nope"])
        ),
        RELEASE_POLICY,
        "release.unknown-environment",
        f"Environment {shop.prefix}-nope does not exist",
        "create Environment",
    )

    # alice claims bob requested it: refused, never silently overwritten.
    forged = json.dumps({"username": "bob", "uid": "", "groups": ["release-approvers"]})
    ledger.denied(
        lambda: world.create_release(
            "alice",
            release_body("r-forged", pinned, [prod], annotations={"stella.io/requester": forged}),
        ),
        "identity.forged",
        ("stella.io/requester", "must not be set", "remove it and apply again"),
        webhook="stamp-identity",
        signal="ForgedIdentity",
    )

    # The requester cannot be changed afterwards: alice may not even patch (RBAC), and
    # admin, whom RBAC lets through, is refused by admission (so is the operator: issue 9).
    patch = {"metadata": {"annotations": {"stella.io/requester": forged}}}
    refused_by_rbac(
        lambda: world.crd("alice").patch_namespaced_custom_object(
            G, V, shop.release_ns, "releases", "r-ok", patch
        ),
        "patch",
    )
    ledger.denied(
        lambda: world.crd("admin").patch_namespaced_custom_object(
            G, V, shop.release_ns, "releases", "r-ok", patch
        ),
        "identity.tampering",
        ("never change", "revert the change"),
        webhook="validate-release",
        signal="IdentityTampering",
        event_on=(shop.release_ns, "r-ok"),
    )
    # ... and the spec never changes (the CRD's own rule, before any webhook).
    refused_by_schema(
        lambda: world.crd("admin").patch_namespaced_custom_object(
            G, V, shop.release_ns, "releases", "r-ok", {"spec": {"version": "9.9.9"}}
        ),
        ("a Release is immutable",),
    )
    stored = world.crd("admin").get_namespaced_custom_object(
        G, V, shop.release_ns, "releases", "r-ok"
    )
    assert (
        json.loads(stored["metadata"]["annotations"]["stella.io/requester"])["username"] == "alice"
    )
    ledger.check()


# ---- Approvals -----------------------------------------------------------------------------
def test_approval_rules(world: World) -> None:
    shop, ledger = world.shop, world.ledger()
    prod, cab, ns = shop.env_name("prod"), shop.env_name("cab"), shop.release_ns
    image = f"{shop.registry.host}/{shop.prefix}/web@sha256:{'3' * 64}"
    world.create_release("alice", release_body("r-appr", image, [prod, cab]))
    world.create_release("dave", release_body("r-dave", image, [prod]))
    eventually(
        lambda: world.create_approval("carol", approval_body("r-dave", prod), dry_run=True),
        what="the operator's view to know r-appr and r-dave",
    )

    # Allowed: bob approves alice's Release; his identity is stamped from the API server.
    first = world.create_approval("bob", approval_body("r-appr", prod))
    assert json.loads(first["metadata"]["annotations"]["stella.io/approver"])["username"] == "bob"

    # carol writes an approver annotation claiming to be bob.
    claim = json.dumps({"username": "bob", "uid": "", "groups": ["release-approvers"]})
    ledger.denied(
        lambda: world.create_approval(
            "carol", approval_body("r-appr", prod, annotations={"stella.io/approver": claim})
        ),
        "identity.forged",
        ("stella.io/approver", "must not be set", "stella approve"),
        webhook="admit-approval",
        signal="ForgedIdentity",
        event_on=(ns, "r-appr"),
    )

    # The same claim on a body whose spec is not even an object: refused (403), not a
    # webhook error (it used to be a 500: the glue read spec.release from a bool).
    broken = {
        **approval_body("r-appr", prod, annotations={"stella.io/approver": claim}),
        "spec": True,
    }
    ledger.denied(
        lambda: world.create_approval("carol", broken),
        "identity.forged",
        ("stella.io/approver", "must not be set"),
        webhook="admit-approval",
        signal="ForgedIdentity",
    )

    # Self-approval: alice cannot create Approvals at all (RBAC); dave, who is in both
    # groups, cannot approve the Release he requested (admission).
    refused_by_rbac(lambda: world.create_approval("alice", approval_body("r-appr", prod)), "create")
    ledger.denied(
        lambda: world.create_approval("dave", approval_body("r-dave", prod)),
        "approval.self-approval",
        ("dave requested Release r-dave", "preventSelfApproval", "ask another approver"),
        webhook="admit-approval",
        signal="SelfApproval",
        event_on=(ns, "r-dave"),
    )

    # bob is in none of cab's approver groups.
    ledger.denied(
        lambda: world.create_approval("bob", approval_body("r-appr", cab)),
        "approval.not-approver",
        (
            f"bob is not in an approver group of Environment {cab}",
            "change-board",
            "ask a member of change-board",
        ),
        webhook="admit-approval",
        signal="UnauthorizedApprover",
        event_on=(ns, "r-appr"),
    )

    # bob decides a second time (once the operator's view holds his first decision: a
    # duplicate is judged from that view; test_decisions_sent_at_once_... shows the lag).
    def duplicate_seen(user: str, release: str) -> bool:
        try:
            world.create_approval(user, approval_body(release, prod), dry_run=True)
        except ApiException as exc:
            return "already decided" in message_of(exc)
        return False

    eventually(lambda: duplicate_seen("bob", "r-appr"), what="bob's decision in the view")
    ledger.denied(
        lambda: world.create_approval("bob", approval_body("r-appr", prod)),
        "approval.duplicate",
        ("bob already decided on Release r-appr", "each person decides once", "create a Reject"),
        webhook="admit-approval",
        event_on=(ns, "r-appr"),
    )

    # Nobody edits a decision: bob may not patch (RBAC); the CRD refuses a spec change even
    # for admin; admission refuses admin rewriting who approved.
    name = first["metadata"]["name"]
    refused_by_rbac(
        lambda: world.crd("bob").patch_namespaced_custom_object(
            G, V, ns, "approvals", name, {"spec": {"comment": "changed my mind"}}
        ),
        "patch",
    )
    refused_by_schema(
        lambda: world.crd("admin").patch_namespaced_custom_object(
            G, V, ns, "approvals", name, {"spec": {"decision": "Reject"}}
        ),
        ("an Approval is immutable once made",),
    )
    ledger.denied(
        lambda: world.crd("admin").patch_namespaced_custom_object(
            G,
            V,
            ns,
            "approvals",
            name,
            {"metadata": {"annotations": {"stella.io/approver": claim.replace("bob", "carol")}}},
        ),
        "approval.immutable",
        ("the approver of an Approval is recorded at creation", "create a Reject"),
        webhook="validate-approval",
        signal="ApprovalTampering",
        event_on=(ns, name),
    )

    # Nobody deletes a decision that still binds its Release: not bob (RBAC), not admin
    # (admission), not the operator (no such power since issue 9: RBAC).
    refused_by_rbac(
        lambda: world.crd("bob").delete_namespaced_custom_object(G, V, ns, "approvals", name),
        "delete",
    )
    ledger.denied(
        lambda: world.crd("admin").delete_namespaced_custom_object(G, V, ns, "approvals", name),
        "approval.delete",
        ("cannot be deleted by admin", "create a Reject"),
        webhook="validate-approval",
        signal="ApprovalTampering",
        event_on=(ns, name),
    )
    operator = client.CustomObjectsApi(api_client_for(str(world.kube.kubeconfig), OPERATOR_CONTEXT))
    refused_by_rbac(
        lambda: operator.delete_namespaced_custom_object(G, V, ns, "approvals", name), "delete"
    )

    # Withdrawing consent stays possible: carol approves, then her Reject is admitted
    # (while a second Approve by her is not, once her first is in the operator's view).
    world.create_approval("carol", approval_body("r-dave", prod))
    eventually(lambda: duplicate_seen("carol", "r-dave"), what="carol's decision in the view")
    world.create_approval("carol", approval_body("r-dave", prod, "Reject"), dry_run=True)
    ledger.check()


def decide(world: World, user: str, release: str, decision: str) -> str | None:
    """`user` decides on `release` for the Environment `once`: the Approval's name, or None
    when admission refused it as a duplicate (any other refusal fails the test)."""
    body = approval_body(release, world.shop.env_name("once"), decision)
    try:
        made = world.create_approval(user, body)
    except ApiException as exc:
        assert "already decided" in message_of(exc), message_of(exc)
        return None
    return str(made["metadata"]["name"])


def decide_at_once(world: World, user: str, release: str, decisions: list[str]) -> list[str]:
    """`user` sends `decisions` together (one thread each, released by one barrier), so a
    later one can reach admission before the operator's view holds an earlier one; the
    names of those admitted."""
    gate = threading.Barrier(len(decisions))

    def send(decision: str) -> str | None:
        gate.wait(timeout=30)
        return decide(world, user, release, decision)

    with ThreadPoolExecutor(len(decisions)) as pool:
        admitted = list(pool.map(send, decisions))
    return [name for name in admitted if name is not None]


def packets(world: World, release: str) -> list[Statement]:
    """The evidence packets of the chain of `once` about `release`, in sequence order."""
    items: list[Any] = (  # ConfigMaps with their labels and data set
        client.CoreV1Api(world.admin)
        .list_namespaced_config_map(
            "stella-system", label_selector=chain_selector(world.shop.env_name("once"))
        )
        .items
    )
    out = []
    for cm in sorted(items, key=lambda cm: int(cm.metadata.labels[L_SEQUENCE])):
        envelope = json.loads(cm.data[DATA_ENVELOPE])
        statement = Statement.model_validate_json(base64.b64decode(envelope["payload"]))
        if statement.predicate.release and statement.predicate.release.name == release:
            out.append(statement)
    return out


def test_decisions_sent_at_once_decide_what_one_decision_does(world: World) -> None:
    """Admission judges duplicates from its own view, which lags the API server by the
    watch's delay: a person's second decision sent at the same moment may be admitted.
    Whatever was admitted, the promotion is exactly what one decision gives (issue 12)."""
    shop = world.shop
    image = shop.image("at-once")
    # An Environment of its own: test_approval_rules halts prod (a digest never pushed).
    shop.environment(
        "once", replicas=1, approvals={"required": 1, "approverGroups": ["release-approvers"]}
    )

    # bob approves twice at once: `once` is deployed on his one approval, and the evidence
    # counts him once.
    shop.release("r-once-1", image, ["once"])
    shop.wait_phase("r-once-1", "once", "WaitingForApproval")
    admitted = decide_at_once(world, "bob", "r-once-1", ["Approve", "Approve"])
    assert admitted, "neither of bob's Approvals was admitted"
    progress = shop.wait_phase("r-once-1", "once", "Deployed", timeout=120)
    assert [(a["approver"], a["decision"]) for a in progress["approvals"]] == [("bob", "Approve")]
    assert shop.deployed_image("once") == image
    statements = cast(
        list[Statement],
        eventually(
            lambda: (
                (s := packets(world, "r-once-1"))
                and any(p.predicate.kind == "PromotionDeployed" for p in s)
                and s
            ),
            what="r-once-1's evidence",
        ),
    )
    authorized = [p.predicate for p in statements if p.predicate.kind == "PromotionAuthorized"]
    assert len(authorized) == 1
    assert [(a.approver, a.counted) for a in authorized[0].approvals if a.counted] == [
        ("bob", True)
    ]
    counted = [p.predicate for p in statements if p.predicate.kind == "ApprovalCounted"]
    assert [a.approver for p in counted for a in p.approvals] == ["bob"]

    # The Approval that counted says so; another one, if admitted, never counts: it is
    # marked a duplicate, or AlreadyDecided when the operator met it after the deploy
    # (policy/late_decisions.py), or not yet marked.
    def verdicts() -> list[tuple[bool, str] | None] | None:
        out: list[tuple[bool, str] | None] = []
        for name in admitted:
            a = world.crd("admin").get_namespaced_custom_object(
                G, V, shop.release_ns, "approvals", name
            )
            status = a.get("status") or {}
            out.append((status["counted"], status["conditions"][0]["reason"]) if status else None)
        return out if (True, "Counted") in out else None

    marks = eventually(verdicts, what="bob's counted Approval's status")
    assert marks.count((True, "Counted")) == 1, marks
    assert all(
        m in (None, (True, "Counted"), (False, "Duplicate"), (False, "AlreadyDecided"))
        for m in marks
    ), marks

    # carol rejects, then approves the moment her Reject is stored (a view that lags may
    # admit the Approve): the Reject stops the Release; `once` keeps r-once-1 and nothing
    # authorizes r-once-2. (The other order is always admitted: withdrawing consent.)
    shop.release("r-once-2", shop.image("at-once-2"), ["once"])
    shop.wait_phase("r-once-2", "once", "WaitingForApproval")
    assert decide(world, "carol", "r-once-2", "Reject")
    decide(world, "carol", "r-once-2", "Approve")
    progress = shop.wait_phase("r-once-2", "once", "Rejected", timeout=60)
    assert progress["reason"] == "RejectedByApprover", progress
    assert "carol rejected" in progress["message"], progress
    assert shop.deployed_image("once") == image
    assert not [p for p in packets(world, "r-once-2") if p.predicate.kind == "PromotionAuthorized"]


# ---- Environments --------------------------------------------------------------------------
def test_environment_rules(world: World) -> None:
    ledger, p = world.ledger(), world.shop.prefix
    api = world.crd("admin")

    def env(name: str, **spec: Any) -> Callable[[], Any]:
        body = {
            "apiVersion": f"{G}/{V}",
            "kind": "Environment",
            "metadata": {"name": name},
            "spec": spec,
        }
        return lambda: api.create_cluster_custom_object(G, V, "environments", body)

    made = [f"{p}-qa", f"{p}-uat"]
    try:
        # Allowed: a path qa -> uat, with a recurring freeze and a Vault reference.
        env(
            made[0],
            allowedRegistries=["registry.example.com"],
            registryCredentials="vault:secret/registry/qa#token",
        )()
        env(
            made[1],
            requires=[made[0]],
            allowedRegistries=["registry.example.com"],
            freezeWindows=[
                {"schedule": "0 18 * * FRI", "duration": "62h", "timeZone": "Europe/Berlin"}
            ],
        )()

        # qa requiring uat closes a cycle (once the operator's view has uat).
        def cycle() -> bool:
            try:
                api.patch_cluster_custom_object(
                    G, V, "environments", made[0], {"spec": {"requires": [made[1]]}}, dry_run="All"
                )
            except ApiException as exc:
                return "cycle" in message_of(exc)
            return False

        eventually(cycle, what="uat in the operator's view")
        ledger.denied(
            lambda: api.patch_cluster_custom_object(
                G, V, "environments", made[0], {"spec": {"requires": [made[1]]}}
            ),
            "environment.cycle",
            (f"{made[0]} -> {made[1]} -> {made[0]}", "remove one of these requires"),
            webhook="validate-environment",
            event_on=("default", made[0]),
        )

        ledger.denied(
            env(f"{p}-stage", requires=[f"{p}-nope"]),
            "environment.unknown-requires",
            (f"Environment {p}-nope, which does not exist", "create Environment"),
            webhook="validate-environment",
        )
        ledger.denied(
            env(f"{p}-stage", freezeWindows=[{"schedule": "61 25 * * *", "duration": "1h"}]),
            "environment.freeze-window",
            ("spec.freezeWindows", "schedule"),
            webhook="validate-environment",
        )
        ledger.denied(
            env(
                f"{p}-stage",
                freezeWindows=[
                    {"schedule": "0 18 * * FRI", "duration": "2h", "timeZone": "Mars/Olympus_Mons"}
                ],
            ),
            "environment.freeze-window",
            ("spec.freezeWindows", "Mars/Olympus_Mons"),
            webhook="validate-environment",
        )
        # A Vault reference with no allowedRegistries: it would go to any registry a Release
        # names (T1/T9), so it is refused, saying where to list the registry.
        ledger.denied(
            env(f"{p}-stage", registryCredentials="vault:secret/registry/stage#token"),
            "environment.credentials-hosts",
            (
                f"Environment {p}-stage sets registryCredentials but no allowedRegistries",
                "list the registry in spec.allowedRegistries",
            ),
            webhook="validate-environment",
        )
        # A literal credential: the CRD's own rule refuses it first, naming the vault: form
        # and never repeating the value.
        msg = refused_by_schema(
            env(f"{p}-stage", registryCredentials="hunter2-registry-token"),
            ("registryCredentials must be a Vault reference", "vault:"),
        )
        assert "hunter2-registry-token" not in msg
        ledger.check()
    finally:
        for name in reversed(made):
            with contextlib.suppress(ApiException):
                api.delete_cluster_custom_object(G, V, "environments", name)


# ---- Workloads: judged by the API server's policies, tests/e2e/test_workload_policies_e2e.py


# ---- rate limits, then the webhook server gone ---------------------------------------------
def test_rate_limit_per_identity_then_fail_closed(
    world: World, kube: ControlPlane, registry: Registry, tmp_path: Path
) -> None:
    shop, prod = world.shop, world.shop.env_name("prod")
    image = f"{registry.host}/{shop.prefix}/web@sha256:{'4' * 64}"
    op = start_operator(
        kube,
        tmp_path,
        {
            "STELLA_INSECURE_REGISTRIES": registry.host,
            "STELLA_WEBHOOK_RATE": "2",
            "STELLA_WEBHOOK_BURST": "3",
        },
    )
    try:
        eventually(  # the new operator's view may still be filling
            lambda: world.create_release("alice", release_body("r-rate", image, [prod])),
            what="r-rate admitted by the new operator",
        )
        eventually(
            lambda: world.create_approval("bob", approval_body("r-rate", prod), dry_run=True),
            what="r-rate in the new operator's view",
        )
        time.sleep(2)  # both buckets full again
        before = metric_values(op, "stella_admission_denied_total", "rule").get("ratelimit", 0.0)
        alice: list[int | str] = []
        bob: list[int | str] = []
        started = time.monotonic()
        for i in range(15):
            # A description: only such Releases still reach the webhook (a plain one is
            # judged by the API server's policies alone, within the API server's own limits).
            burst = release_body(f"r-burst-{i}", image, [prod])
            burst["spec"]["description"] = "burst"
            try:
                world.create_release("alice", burst, dry_run=True)
                alice.append(201)
            except ApiException as exc:
                alice.append(exc.status if "slow down" in message_of(exc) else message_of(exc))
            if i % 5 == 4:  # bob, at the same time, is not slowed down by alice
                try:
                    world.create_approval("bob", approval_body("r-rate", prod), dry_run=True)
                    bob.append(201)
                except ApiException as exc:
                    bob.append(message_of(exc))
        elapsed = time.monotonic() - started
        assert bob == [201, 201, 201], bob
        # A full bucket of 3, then at most 2 more per second of the storm.
        assert alice[:3] == [201, 201, 201], alice
        assert set(alice) <= {201, 429}, alice
        assert 3 <= alice.count(201) <= 3 + int(2 * elapsed) + 1, (alice, elapsed)
        assert alice.count(429) >= 1, alice
        after = metric_values(op, "stella_admission_denied_total", "rule").get("ratelimit", 0.0)
        assert after - before == alice.count(429)

        # The webhook server stops; its configurations stay registered (failurePolicy Fail).
        # Workloads in managed namespaces are still judged, by the API server's policies: this
        # digest was never deployed to dev, so it is refused, not waved through.
        op.proc.stop()
        apps = client.AppsV1Api(world.admin)
        try:
            apps.create_namespaced_deployment(shop.target_ns("dev"), deployment("blind", image))
            raise AssertionError("a Deployment in a managed namespace was admitted without Stella")
        except ApiException as exc:
            assert exc.status == 403 and "was never approved" in message_of(exc), message_of(exc)
        apps.create_namespaced_deployment(world.unmanaged_ns, deployment("unchecked", "nginx:1.27"))
        # A plain Release is still judged, by the API server's policies alone; one that
        # needs the webhook (a description) fails closed.
        world.create_release("alice", release_body("r-judged", image, [prod]), dry_run=True)
        refused_by_policy(
            lambda: world.create_release("alice", release_body("r-foreign", FOREIGN_IMAGE, [prod])),
            RELEASE_POLICY,
            "release.registry-not-allowed",
        )
        blind = release_body("r-blind", image, [prod])
        blind["spec"]["description"] = "needs the webhook"
        try:
            world.create_release("alice", blind)
            raise AssertionError("a Release was admitted without Stella")
        except ApiException as exc:
            assert exc.status == 500, message_of(exc)
            assert 'failed calling webhook "validate-release.stella.io"' in message_of(exc), (
                message_of(exc)
            )
    finally:
        op.proc.stop()
        unregister(kube)
        # Hand the webhooks back to the module's operator for any test after this one.
        guard_cert = Path(world.op.env["STELLA_WEBHOOK_CERT"])
        ca = next(guard_cert.parent.glob("*ca*.crt"))
        register(kube, ca, int(world.op.env["STELLA_WEBHOOK_PORT"]))
