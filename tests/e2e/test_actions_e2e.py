"""Issue 9: every human action is an authorized, identity-stamped, evidenced request.

Each bypass is tried as the hostile person would (real API server, the operator as its
own process, people from the token file or impersonated by admin) and must be refused
with a clear message, change nothing, and count a security signal; the honest path for
each action works through `stella` as a person holding only the chart's role for it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from tests.e2e.conftest import OperatorProcess
from tests.e2e.shop import G, Shop, V
from tests.kube_support import api_client_for, eventually

from devenv.controlplane import OPERATOR_USER, ControlPlane
from stella.admission.configuration import APPROVE_VERB_CEL

STELLA = str(Path(sys.executable).parent / "stella")
NS = "stella-system"
RBAC = "rbac.authorization.k8s.io"


# ---- helpers -------------------------------------------------------------------------------
def stella_as(kube: ControlPlane, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig_for(user))}
    return subprocess.run(
        [STELLA, *args], env=env, capture_output=True, text=True, timeout=90, check=False
    )


def refused(fn: Any) -> str:
    """The API server's message of a refused request (403), asserting it was refused."""
    try:
        fn()
    except client.exceptions.ApiException as exc:
        assert exc.status in (403, 422), (exc.status, exc.body)
        return str(json.loads(cast(str, exc.body)).get("message", exc.body))
    raise AssertionError("the request was admitted")


def packets(admin: client.ApiClient, env: str, selector: str = "") -> list[dict[str, Any]]:
    """Every evidence predicate of an Environment's chain, oldest first (or, with
    selector, of the packets those labels pick)."""
    labels = selector or f"stella.io/environment={env}"
    cms = (
        client.CoreV1Api(admin)
        .list_namespaced_config_map(NS, label_selector=f"stella.io/evidence=packet,{labels}")
        .items
    )
    out = []
    for cm in cms:
        assert cm.data is not None
        envelope = json.loads(cm.data["envelope.json"])
        statement = json.loads(base64.b64decode(envelope["payload"]))
        out.append(statement["predicate"])
    return sorted(out, key=lambda p: p["sequence"])


def action(api: client.ApiClient, kind: str, env: str, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": f"{G}/{V}",
        "kind": "Action",
        "metadata": {"generateName": f"{kind.lower()}-"},
        "spec": {"action": kind, "environment": env, **spec},
    }
    made = client.CustomObjectsApi(api).create_cluster_custom_object(G, V, "actions", body)
    return cast(dict[str, Any], made)


def get_action(admin: client.ApiClient, name: str) -> dict[str, Any]:
    return cast(
        dict[str, Any],
        client.CustomObjectsApi(admin).get_cluster_custom_object(G, V, "actions", name),
    )


def impersonating(kube: ControlPlane, user: str, group: str | None = None) -> client.ApiClient:
    api = api_client_for(str(kube.kubeconfig), "admin")
    api.set_default_header("Impersonate-User", user)  # type: ignore[no-untyped-call]
    if group:
        api.set_default_header("Impersonate-Group", group)  # type: ignore[no-untyped-call]
    return api


def halt(admin: client.ApiClient, env: str) -> None:
    """What the engine writes on a digest mismatch (the e2e of issue 6 drives the real
    one); here the point is who may lift it."""
    client.CustomObjectsApi(admin).patch_cluster_custom_object_status(
        G,
        V,
        "environments",
        env,
        {
            "status": {
                "halted": {
                    "reason": "DigestMismatch",
                    "message": "test halt",
                    "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            }
        },
    )


def rel_body(name: str, image: str, envs: list[str], **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Release",
        "metadata": {"name": name, "annotations": dict(annotations)},
        "spec": {
            "version": "2.0.0",
            "environments": envs,
            "components": [
                {
                    "name": "web",
                    "image": image,
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
        },
    }


# ---- rollback ------------------------------------------------------------------------------
def test_a_fresh_release_cannot_pose_as_a_rollback(
    stella: OperatorProcess, shop: Shop, kube: ControlPlane
) -> None:
    dev = shop.environment("dev")
    staging = shop.environment("staging", requires=["dev"])
    prod = shop.environment("prod", requires=["staging"])
    good = shop.image("1.0")
    shop.release("rel-1", good, ["dev", "staging", "prod"])
    shop.wait_phase("rel-1", "prod", "Deployed", timeout=90)
    alice: Any = client.CustomObjectsApi(shop.users["alice"])  # its reads: dicts
    before = stella.metric("stella_security_events_total", signal="UnauthorizedAction")

    # alice's fresh image for [prod] only, posing as a rollback of rel-1: refused, because
    # its components are not rel-1's; posing as one of a release never deployed: refused.
    evil = shop.image("evil")
    msg = refused(
        lambda: alice.create_namespaced_custom_object(
            G,
            V,
            shop.release_ns,
            "releases",
            rel_body(
                "evil-1", evil, [prod], **{"stella.io/rollback-of": f"{shop.release_ns}/rel-1"}
            ),
        )
    )
    assert "a rollback re-deploys exactly what ran before" in msg
    msg = refused(
        lambda: alice.create_namespaced_custom_object(
            G,
            V,
            shop.release_ns,
            "releases",
            rel_body(
                "evil-2", good, [prod], **{"stella.io/rollback-of": f"{shop.release_ns}/nope"}
            ),
        )
    )
    assert "was never Deployed in" in msg and f"{shop.release_ns}/rel-1" in msg
    # Writing the stamp itself is a forgery.
    msg = refused(
        lambda: alice.create_namespaced_custom_object(
            G,
            V,
            shop.release_ns,
            "releases",
            rel_body("evil-3", evil, [prod], **{"stella.io/rollback": '{"of":"x"}'}),
        )
    )
    assert "was set by the client" in msg
    # The stamp can never be added afterwards either (admin included).
    shop.release("rel-2", shop.image("2.0"), ["dev", "staging", "prod"])
    admin = client.CustomObjectsApi(shop.admin)
    msg = refused(
        lambda: admin.patch_namespaced_custom_object(
            G,
            V,
            shop.release_ns,
            "releases",
            "rel-2",
            {"metadata": {"annotations": {"stella.io/rollback-of": f"{shop.release_ns}/rel-1"}}},
        )
    )
    assert "never change" in msg
    assert stella.metric("stella_security_events_total", signal="UnauthorizedAction") >= before + 2
    names = {
        r["metadata"]["name"]
        for r in alice.list_namespaced_custom_object(G, V, shop.release_ns, "releases")["items"]
    }
    assert not names & {"evil-1", "evil-2", "evil-3"}
    assert shop.deployed_image("prod") == good
    del dev, staging

    # Only someone with the `rollback` verb on prod: bob (an approver) may not even create
    # Releases (RBAC, one line); ivan, who may create Releases but holds no `rollback`
    # verb there, is refused by admission with what he needs.
    shop.wait_phase("rel-2", "prod", "Deployed", timeout=90)
    out = stella_as(kube, "bob", "rollback", prod, "--to", f"{shop.release_ns}/rel-1")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out
    assert out.stderr.startswith("error: rollback refused:"), out
    rbac: Any = client.RbacAuthorizationV1Api(shop.admin)  # dict bodies, sent as they are
    role = f"{shop.prefix}-creates-releases"
    rbac.create_cluster_role(
        {
            "metadata": {"name": role},
            "rules": [{"apiGroups": [G], "resources": ["releases"], "verbs": ["create", "get"]}],
        }
    )
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": role},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "User", "name": "ivan", "apiGroup": RBAC}],
        }
    )
    try:
        ivan = client.CustomObjectsApi(impersonating(kube, "ivan"))
        source = shop.get_release("rel-1")
        msg = refused(
            lambda: ivan.create_namespaced_custom_object(
                G,
                V,
                shop.release_ns,
                "releases",
                {
                    "apiVersion": f"{G}/{V}",
                    "kind": "Release",
                    "metadata": {
                        "name": "rb-ivan",
                        "annotations": {"stella.io/rollback-of": f"{shop.release_ns}/rel-1"},
                    },
                    "spec": {**source["spec"], "environments": [prod]},
                },
            )
        )
        assert f"`rollback` verb on environments/{prod}" in msg
    finally:
        rbac.delete_cluster_role_binding(role)
        rbac.delete_cluster_role(role)
    # alice, a requester (the chart's role carries `rollback`), rolls prod back honestly.
    out = stella_as(kube, "alice", "rollback", prod, "--to", f"{shop.release_ns}/rel-1")
    assert out.returncode == 0, out
    rb = out.stdout.split("as Release ")[1].split()[0].split("/")[1]
    shop.wait_phase(rb, "prod", "Deployed", timeout=90)
    assert shop.deployed_image("prod") == good
    stamp = json.loads(shop.get_release(rb)["metadata"]["annotations"]["stella.io/rollback"])
    assert stamp["of"] == f"{shop.release_ns}/rel-1" and stamp["environment"] == prod


# ---- promote -------------------------------------------------------------------------------
def test_promote_is_an_authorized_action_that_names_who_promoted(
    stella: OperatorProcess, shop: Shop, kube: ControlPlane
) -> None:
    dev = shop.environment("dev", autoPromote=False)
    image = shop.image("3.0")
    # A requester writing the old annotation at create time is refused, and told the way.
    before = stella.metric("stella_security_events_total", signal="ForgedIdentity")
    alice: Any = client.CustomObjectsApi(shop.users["alice"])  # its reads: dicts
    msg = refused(
        lambda: alice.create_namespaced_custom_object(
            G,
            V,
            shop.release_ns,
            "releases",
            rel_body("rel-x", image, [dev], **{"stella.io/promote": dev}),
        )
    )
    assert "stella promote" in msg
    assert stella.metric("stella_security_events_total", signal="ForgedIdentity") > before
    alice.create_namespaced_custom_object(
        G, V, shop.release_ns, "releases", rel_body("rel-p", image, [dev])
    )
    eventually(lambda: shop.progress("rel-p", "dev").get("reason") == "AwaitingPromotion")
    time.sleep(3)
    assert shop.phase("rel-p", "dev") == "Pending"
    assert shop.deployed_image("dev") != image

    # alice holds no `promote` verb (nor may she create Actions): refused.
    out = stella_as(kube, "alice", "promote", f"{shop.release_ns}/rel-p", dev)
    assert out.returncode == 1, out
    # A misspelled Environment is refused before anything is created.
    out = stella_as(kube, "bob", "promote", f"{shop.release_ns}/rel-p", dev + "x")
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr

    # bob, an approver, promotes: the Action is Done and the release deploys.
    out = stella_as(kube, "bob", "promote", f"{shop.release_ns}/rel-p", dev, "--wait")
    assert out.returncode == 0, out.stderr + out.stdout
    shop.wait_phase("rel-p", "dev", "Deployed")
    authorized = [p for p in packets(shop.admin, dev) if p["kind"] == "PromotionAuthorized"]
    assert len(authorized) == 1
    assert authorized[0]["actor"] == "bob"
    assert authorized[0]["policy"]["inputs"]["requester"] == "alice"
    assert authorized[0]["policy"]["inputs"]["promotedBy"] == ["bob"]
    requested = [p for p in packets(shop.admin, dev) if p["kind"] == "PromotionRequested"]
    assert requested and requested[0]["actor"] == "bob"
    assert requested[0]["release"]["specDigest"].startswith("sha256:")

    # Promoting where the Environment promotes by itself is refused, nothing created.
    auto = shop.environment("auto")
    shop.release("rel-q", shop.image("3.1"), ["auto"])
    msg = refused(
        lambda: action(shop.users["bob"], "Promote", auto, release=f"{shop.release_ns}/rel-q")
    )
    assert "promotes automatically" in msg


# ---- approvals bind to one Release ----------------------------------------------------------
def test_a_recreated_release_needs_fresh_approvals(stella: OperatorProcess, shop: Shop) -> None:
    shop.environment("dev")
    staging = shop.environment(
        "staging",
        requires=["dev"],
        approvals={"required": 2, "approverGroups": ["release-approvers"]},
    )
    shop.release("rel-r", shop.image("4.0"), ["dev", "staging"])
    shop.wait_phase("rel-r", "staging", "WaitingForApproval", timeout=90)
    old_approval = shop.approve("rel-r", "staging", "bob")  # 1 of 2
    # The Release is deleted and re-created under its name with other images.
    _delete_release(shop, "rel-r")
    two = shop.image("4.1")
    shop.release("rel-r", two, ["dev", "staging"])
    shop.wait_phase("rel-r", "staging", "WaitingForApproval", timeout=90)
    shop.approve("rel-r", "staging", "carol")  # bob's old word + carol would be 2
    time.sleep(4)
    assert shop.phase("rel-r", "staging") == "WaitingForApproval"
    assert shop.deployed_image("staging") != two
    name = old_approval["metadata"]["name"]
    eventually(
        lambda: any(
            c.get("reason") == "ReleaseReplaced"
            for c in (
                cast(
                    dict[str, Any],
                    client.CustomObjectsApi(shop.admin).get_namespaced_custom_object(
                        G, V, shop.release_ns, "approvals", name
                    ),
                ).get("status")
                or {}
            ).get("conditions", [])
        ),
        what="the old approval says it does not count",
    )
    # A fresh decision on the new content counts, and its evidence names the digest.
    shop.approve("rel-r", "staging", "dave")
    shop.wait_phase("rel-r", "staging", "Deployed")
    counted = [p for p in packets(shop.admin, staging) if p["kind"] == "ApprovalCounted"]
    new_uid = shop.get_release("rel-r")["metadata"]["uid"]
    fresh = [p for p in counted if p["release"]["uid"] == new_uid]
    assert sorted(p["actor"] for p in fresh) == ["carol", "dave"]
    assert all(p["release"]["specDigest"].startswith("sha256:") for p in fresh)
    authorized = [p for p in packets(shop.admin, staging) if p["kind"] == "PromotionAuthorized"]
    assert sorted(a["approver"] for a in authorized[-1]["approvals"] if a["counted"]) == [
        "carol",
        "dave",
    ]


def _delete_release(shop: Shop, name: str) -> None:
    api: Any = client.CustomObjectsApi(shop.admin)  # its reads: dicts
    api.delete_namespaced_custom_object(G, V, shop.release_ns, "releases", name)
    eventually(
        lambda: (
            name
            not in {
                r["metadata"]["name"]
                for r in api.list_namespaced_custom_object(G, V, shop.release_ns, "releases")[
                    "items"
                ]
            }
        ),
        what=f"{name} deleted",
    )


# ---- halts and suspension ------------------------------------------------------------------
def test_only_a_person_with_clear_halt_lifts_a_halt_and_evidence_names_them(
    stella: OperatorProcess, shop: Shop, kube: ControlPlane
) -> None:
    env = shop.environment("dev")
    halt(shop.admin, env)
    eventually(lambda: shop.environment_status("dev").get("halted"), what="halted")
    admin = client.CustomObjectsApi(shop.admin)
    # The old way, a client-chosen time in the future and a claimed clearer: refused, even
    # for admin, whom RBAC lets patch Environments.
    msg = refused(
        lambda: admin.patch_cluster_custom_object(
            G,
            V,
            "environments",
            env,
            {
                "metadata": {
                    "annotations": {
                        "stella.io/clear-halt": "2099-01-01T00:00:00Z forged",
                        "stella.io/cleared-by": "bob",
                    }
                }
            },
        )
    )
    assert "stella env clear" in msg
    assert shop.environment_status("dev").get("halted")
    # bob (an approver) holds no `clear-halt`: refused and counted.
    before = stella.metric("stella_security_events_total", signal="UnauthorizedAction")
    out = stella_as(kube, "bob", "env", "clear", env, "--reason", "trust me")
    assert out.returncode == 1 and "clear-halt" in out.stderr, out
    assert stella.metric("stella_security_events_total", signal="UnauthorizedAction") > before
    assert shop.environment_status("dev").get("halted")

    # frank, a platform engineer with only the chart's platform role, clears it. The API
    # server's clock has seconds: a clear must come after the halt (HaltIsNewer otherwise).
    time.sleep(1.1)
    out = stella_as(kube, "frank", "env", "clear", env, "--reason", "INC-9 investigated", "--wait")
    assert out.returncode == 0, out.stderr + out.stdout
    eventually(lambda: "halted" not in shop.environment_status("dev"), what="halt lifted")
    cleared = [p for p in packets(shop.admin, env) if p["kind"] == "EnvironmentCleared"]
    assert len(cleared) == 1 and cleared[0]["actor"] == "frank"
    assert "INC-9 investigated" in cleared[0]["outcome"]["message"]
    # A second clear has nothing to do: refused in its status, nothing else changes.
    out = stella_as(kube, "frank", "env", "clear", env, "--reason", "again", "--wait")
    assert out.returncode == 1 and "not halted" in (out.stdout + out.stderr)


def test_suspend_and_resume_are_actions_of_a_platform_engineer(
    stella: OperatorProcess, shop: Shop, kube: ControlPlane
) -> None:
    env = shop.environment("dev")
    out = stella_as(kube, "alice", "env", "suspend", env, "--reason", "no")
    assert out.returncode == 1
    out = stella_as(
        kube, "frank", "env", "suspend", env, "--reason", "INC-10 db migration", "--wait"
    )
    assert out.returncode == 0, out.stderr + out.stdout
    eventually(
        lambda: (shop.environment_status("dev").get("suspended") or {}).get("by") == "frank",
        what="suspended by frank",
    )
    image = shop.image("5.0")
    shop.release("rel-s", image, ["dev"])
    halted = shop.wait_phase("rel-s", "dev", "Halted")
    assert "suspended by frank" in halted["message"]
    out = stella_as(kube, "frank", "env", "resume", env, "--wait")
    assert out.returncode == 0, out.stderr + out.stdout
    shop.wait_phase("rel-s", "dev", "Deployed")
    kinds = [p["kind"] for p in packets(shop.admin, env)]
    assert "EnvironmentSuspended" in kinds and "EnvironmentResumed" in kinds


# ---- RBAC verbs by name --------------------------------------------------------------------
def test_a_grant_of_approve_on_prod_alone_lets_grace_approve_prod_not_staging(
    stella: OperatorProcess, shop: Shop, kube: ControlPlane
) -> None:
    shop.environment("dev")
    staging = shop.environment("staging", requires=["dev"], approvals={"required": 1})
    prod = shop.environment("prod", requires=["staging"], approvals={"required": 1})
    rbac: Any = client.RbacAuthorizationV1Api(shop.admin)  # dict bodies, sent as they are
    role = f"{shop.prefix}-approve-prod"
    rbac.create_cluster_role(
        {
            "metadata": {"name": role},
            "rules": [
                {"apiGroups": [G], "resources": ["approvals"], "verbs": ["create", "get"]},
                {
                    "apiGroups": [G],
                    "resources": ["environments"],
                    "resourceNames": [prod],
                    "verbs": ["approve"],
                },
            ],
        }
    )
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": role},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [
                {"kind": "User", "name": "grace", "apiGroup": "rbac.authorization.k8s.io"}
            ],
        }
    )
    try:
        shop.release("rel-g", shop.image("6.0"), ["dev", "staging", "prod"])
        grace = shop.users.copy()
        grace["grace"] = impersonating(kube, "grace")
        shop.users.update(grace)
        msg = refused(lambda: shop.approve("rel-g", "staging", "grace"))
        assert "needs the `approve` verb on environments/" + staging in msg
        # admit-approval asked no SubjectAccessReview: the API server's own authorizer,
        # in validate-approval's matchCondition, sent her Approval to be refused there.
        assert 'admission webhook "validate-approval.stella.io" denied' in msg, msg
        made = shop.approve("rel-g", "prod", "grace")
        assert made["metadata"]["annotations"]["stella.io/approver"].startswith('{"groups"')
        refused_under_an_older_configuration(stella, shop, "staging")
    finally:
        rbac.delete_cluster_role_binding(role)
        rbac.delete_cluster_role(role)


def refused_under_an_older_configuration(stella: OperatorProcess, shop: Shop, stage: str) -> None:
    """A chart rolled back while newer admission pods still answer: the webhook
    configuration of before has no authorizer in validate-approval's matchCondition and
    rebuilds the judged stamp without `v2:`. admit-approval still asks for no verb; the
    stamp it writes no longer matches, so validate-approval is called and refuses grace."""
    env = shop.env_name(stage)
    reg = client.AdmissionregistrationV1Api(shop.admin)
    saved = reg.read_validating_webhook_configuration("stella.io")
    older = reg.read_validating_webhook_configuration("stella.io")
    hook = next(w for w in older.webhooks or [] if w.name == "validate-approval.stella.io")
    cond = (hook.match_conditions or [])[0]
    cond.expression = cond.expression.replace("'v2:' + ", "").replace(
        " || !" + APPROVE_VERB_CEL, ""
    )
    assert "authorizer" not in cond.expression and "v2:" not in cond.expression
    reg.replace_validating_webhook_configuration("stella.io", older)
    bob = client.CustomObjectsApi(shop.users["bob"])
    decision = {
        "apiVersion": f"{G}/{V}",
        "kind": "Approval",
        "metadata": {"generateName": "rel-g-older-"},
        "spec": {"release": "rel-g", "environment": env, "decision": "Approve"},
    }

    def in_force() -> bool:  # bob's judged Approval reaches validate-approval only there
        before = stella.metric("stella_admission_review_seconds_count", hook="validate-approval")
        bob.create_namespaced_custom_object(
            G, V, shop.release_ns, "approvals", decision, dry_run="All"
        )
        after = stella.metric("stella_admission_review_seconds_count", hook="validate-approval")
        return after > before

    try:
        eventually(in_force, what="the older webhook configuration in force")
        msg = refused(lambda: shop.approve("rel-g", stage, "grace"))
        assert 'admission webhook "validate-approval.stella.io" denied' in msg, msg
        assert "needs the `approve` verb on environments/" + env in msg
    finally:
        current = reg.read_validating_webhook_configuration("stella.io")
        current.webhooks = saved.webhooks
        reg.replace_validating_webhook_configuration("stella.io", current)


# ---- the operator's identity is no master key -----------------------------------------------
def test_the_operators_identity_cannot_forge_or_erase_decisions(
    stella: OperatorProcess, shop: Shop, kube: ControlPlane
) -> None:
    shop.environment("dev", approvals={"required": 1})
    shop.release("rel-o", shop.image("7.0"), ["dev"])
    approval = shop.approve("rel-o", "dev", "bob")
    op = client.CustomObjectsApi(api_client_for(str(kube.kubeconfig_for(OPERATOR_USER)), None))
    alice = json.dumps({"groups": ["release-requesters"], "uid": "", "username": "alice"})
    body = rel_body("forged", shop.image("7.1"), [shop.env_name("dev")])
    body["metadata"]["annotations"]["stella.io/requester"] = alice
    msg = refused(
        lambda: op.create_namespaced_custom_object(G, V, shop.release_ns, "releases", body)
    )
    assert "set by the client" in msg or "forbidden" in msg
    msg = refused(
        lambda: op.delete_namespaced_custom_object(
            G, V, shop.release_ns, "approvals", approval["metadata"]["name"]
        )
    )
    assert "cannot be deleted" in msg or "forbidden" in msg


# ---- exactly once across a crash ------------------------------------------------------------
def test_a_clear_requested_while_the_operator_dies_takes_effect_once(
    stella: OperatorProcess, shop: Shop, kube: ControlPlane
) -> None:
    env = shop.environment("dev")
    halt(shop.admin, env)
    eventually(lambda: shop.environment_status("dev").get("halted"), what="halted")
    time.sleep(1.1)  # the API server's clock has seconds: a clear must come after the halt
    made = action(shop.users["frank"], "ClearHalt", env, reason="INC-11")
    os.killpg(stella.proc.pid, signal.SIGKILL)
    stella.proc.kill()
    stella.restart()
    eventually(lambda: "halted" not in shop.environment_status("dev"), what="halt lifted")
    eventually(
        lambda: (
            get_action(shop.admin, made["metadata"]["name"]).get("status", {}).get("phase")
            == "Done"
        ),
        what="action done",
    )
    stella.proc.stop()
    stella.restart()
    time.sleep(4)
    cleared = [p for p in packets(shop.admin, env) if p["kind"] == "EnvironmentCleared"]
    assert len(cleared) == 1 and cleared[0]["actor"] == "frank"


@pytest.fixture(autouse=True)
def _frank_in_users(shop: Shop, kube_as: dict[str, client.ApiClient]) -> None:
    shop.users.setdefault("frank", kube_as["frank"])
