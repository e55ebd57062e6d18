"""Rollback as a first-class action, bad specs that say what to fix, and objects deleted
in the middle of a promotion — all against the real API server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import cast

from kubernetes import client
from tests.e2e.conftest import OperatorProcess
from tests.e2e.shop import G, Shop, V
from tests.kube_support import custom_objects, eventually

from devenv.controlplane import ControlPlane

STELLA = str(Path(sys.executable).parent / "stella")


def _stella(kube: ControlPlane, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig_for(user))}
    return subprocess.run([STELLA, *args], env=env, capture_output=True, text=True, check=False)


def test_rollback_repromotes_the_previous_release_through_the_gates(
    stella: OperatorProcess, shop: Shop, kube: ControlPlane
) -> None:
    env = shop.environment(
        "dev", approvals={"required": 1, "approverGroups": ["release-approvers"]}
    )
    old, new = shop.image("6.0"), shop.image("6.1")
    shop.release("rel-a", old, ["dev"])
    shop.approve("rel-a", "dev", "bob")
    shop.wait_phase("rel-a", "dev", "Deployed")
    shop.release("rel-b", new, ["dev"])
    shop.approve("rel-b", "dev", "bob")
    shop.wait_phase("rel-b", "dev", "Deployed")
    assert shop.deployed_image("dev") == new

    out = _stella(kube, "alice", "rollback", env)
    assert out.returncode == 0, out.stderr
    assert f"to {shop.release_ns}/rel-a" in out.stdout
    rb_name = out.stdout.split("as Release ")[1].split()[0].split("/")[1]
    # Same gates: the rollback waits for an approval again (rollbackSkipsApproval is false).
    shop.wait_phase(rb_name, "dev", "WaitingForApproval")
    assert shop.deployed_image("dev") == new
    shop.approve(rb_name, "dev", "carol")
    shop.wait_phase(rb_name, "dev", "Deployed")
    assert shop.deployed_image("dev") == old
    rb = shop.get_release(rb_name)
    assert rb["metadata"]["annotations"]["stella.io/rollback-of"] == f"{shop.release_ns}/rel-a"
    # Nothing earlier to roll back to than... a clear error, exit 1.
    again = _stella(kube, "alice", "rollback", env, "--to", "does-not-exist", "-n", shop.release_ns)
    assert again.returncode == 1 and "never deployed" in again.stderr


def test_missing_workload_says_what_to_fix_and_deploys_nothing(
    stella: OperatorProcess, shop: Shop
) -> None:
    shop.environment("dev")
    image = shop.image("7.0")
    body = shop.release("rel-m", image, ["dev"])
    del body
    # Map the component to a workload that does not exist: a fresh release.
    api = client.CustomObjectsApi(shop.users["alice"])
    api.create_namespaced_custom_object(
        G,
        V,
        shop.release_ns,
        "releases",
        {
            "apiVersion": f"{G}/{V}",
            "kind": "Release",
            "metadata": {"name": "rel-n"},
            "spec": {
                "version": "7.0.1",
                "environments": [shop.env_name("dev")],
                "components": [
                    {
                        "name": "api",
                        "image": image,
                        "workload": {"kind": "Deployment", "name": "api", "container": "api"},
                    }
                ],
            },
        },
    )
    blocked = shop.wait_phase("rel-n", "dev", "Blocked")
    assert blocked["reason"] == "WorkloadNotFound"
    assert f"Deployment {shop.target_ns('dev')}/api does not exist" in blocked["message"]
    assert "create the workload" in blocked["message"]


def test_cycle_in_requires_is_reported_in_environment_status(
    stella: OperatorProcess, shop: Shop, kube_admin: client.ApiClient
) -> None:
    shop.environment("dev")
    api = custom_objects(kube_admin)
    env = api.get_cluster_custom_object(G, V, "environments", shop.env_name("dev"))
    eventually(
        lambda: any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (
                api.get_cluster_custom_object(G, V, "environments", shop.env_name("dev")).get(
                    "status"
                )
                or {}
            ).get("conditions", [])
        ),
        what="dev Ready",
    )
    del env
    # Admission refuses a cycle outright, with the cycle named.
    try:
        api.patch_cluster_custom_object(
            G,
            V,
            "environments",
            shop.env_name("dev"),
            {"spec": {"requires": [shop.env_name("dev")]}},
        )
        raise AssertionError("a self-requiring environment was admitted")
    except client.exceptions.ApiException as exc:
        assert "cycle" in cast(str, exc.body)


def _stuck_deploying(shop: Shop, name: str, tag: str) -> str:
    """A Release Deploying to dev whose rollout cannot finish (its Pods fit no node):
    it holds dev's lock until something ends it. Returns the holder (namespace/name)."""
    shop.environment(
        "dev",
        rollout={"timeout": "5m", "rollbackOnFailure": True},
        node_selector={"stella-test/never": "true"},
        replicas=1,
    )
    shop.release(name, shop.image(tag), ["dev"])
    shop.wait_phase(name, "dev", "Deploying")
    holder = f"{shop.release_ns}/{name}"
    assert shop.environment_status("dev").get("inFlight") == holder
    return holder


def _freed_and_next_deploys(shop: Shop, said: str, name: str, tag: str) -> None:
    """dev's lock is freed, an Event whose message holds `said` says why (posted by a
    background thread: shortly after), and the next Release is not stuck behind it."""
    eventually(lambda: "inFlight" not in shop.environment_status("dev"), what="dev lock freed")
    eventually(
        lambda: any(
            e.reason == "ReleaseDeleted" and said in cast(str, e.message)
            for e in client.CoreV1Api(shop.admin).list_namespaced_event("default").items
        ),
        what="ReleaseDeleted Event",
    )
    shop.release(name, shop.image(tag), ["dev"])
    shop.wait_phase(name, "dev", "Deploying")


def test_release_deleted_mid_promotion_ends_cleanly(stella: OperatorProcess, shop: Shop) -> None:
    _stuck_deploying(shop, "rel-d", "8.0")
    client.CustomObjectsApi(shop.admin).delete_namespaced_custom_object(
        G, V, shop.release_ns, "releases", "rel-d"
    )
    _freed_and_next_deploys(shop, shop.env_name("dev"), "rel-e", "8.1")


def test_release_deleted_while_no_operator_ran_frees_its_lock(
    stella: OperatorProcess, shop: Shop
) -> None:
    """Releases carry no finalizer (issue 12), so one deleted while the operator is down is
    gone at once; the engine frees the lock it held when it starts."""
    holder = _stuck_deploying(shop, "rel-g", "8.2")
    stella.proc.kill()
    api = custom_objects(shop.admin)
    api.delete_namespaced_custom_object(G, V, shop.release_ns, "releases", "rel-g")
    assert not any(
        r["metadata"]["name"] == "rel-g"
        for r in api.list_namespaced_custom_object(G, V, shop.release_ns, "releases")["items"]
    ), "nothing should hold a Release back from deletion"
    assert shop.environment_status("dev").get("inFlight") == holder
    stella.restart()
    _freed_and_next_deploys(shop, holder, "rel-h", "8.3")


def test_a_release_with_the_finalizer_of_an_earlier_version_is_let_go(
    stella: OperatorProcess, shop: Shop
) -> None:
    """Upgrading: Releases an earlier version gave `stella.io/finalizer` lose it (kopf no
    longer watches Releases to take it off), so one deleted mid-promotion goes and frees
    its lock."""
    holder = _stuck_deploying(shop, "rel-k", "8.4")
    api = custom_objects(shop.admin)
    ns = shop.release_ns
    api.patch_namespaced_custom_object(
        G, V, ns, "releases", "rel-k", {"metadata": {"finalizers": ["stella.io/finalizer"]}}
    )
    eventually(
        lambda: (
            not api.get_namespaced_custom_object(G, V, ns, "releases", "rel-k")["metadata"].get(
                "finalizers"
            )
        ),
        what="the earlier version's finalizer taken off",
    )
    api.delete_namespaced_custom_object(G, V, ns, "releases", "rel-k")
    _freed_and_next_deploys(shop, holder, "rel-l", "8.5")


def test_environment_deleted_mid_promotion_ends_cleanly(
    stella: OperatorProcess, shop: Shop
) -> None:
    _stuck_deploying(shop, "rel-x", "9.0")
    client.CustomObjectsApi(shop.admin).delete_cluster_custom_object(
        G, V, "environments", shop.env_name("dev")
    )
    blocked = shop.wait_phase("rel-x", "dev", "Blocked")
    assert blocked["reason"] == "EnvironmentDeleted"
    assert shop.env_name("dev") in blocked["message"]


def test_a_restart_skips_finished_releases_yet_corrects_what_changed_while_down(
    stella: OperatorProcess, shop: Shop
) -> None:
    """A restart reconciles every Release once; a finished one whose status already says
    all there is to say is skipped (stella/engine/settled.py) — but one that became the
    current Release again while no operator ran is reconciled and shows it."""
    env = shop.environment("settle")
    ns = shop.release_ns
    for name, tag in (("set-a", "9.0"), ("set-b", "9.1"), ("set-c", "9.2")):
        shop.release(name, shop.image(tag), ["settle"])
        shop.wait_phase(name, "settle", "Deployed")

    def summary(name: str) -> str:
        return str(shop.get_release(name).get("status", {}).get("summary"))

    eventually(lambda: summary("set-a") == f"{env}=Deployed", what="set-a no longer live")
    eventually(lambda: summary("set-c") == f"{env}=Live", what="set-c live")
    untouched = shop.get_release("set-b")["metadata"]["resourceVersion"]
    stella.proc.kill()
    client.CustomObjectsApi(shop.admin).patch_cluster_custom_object_status(
        G, V, "environments", env, {"status": {"currentRelease": f"{ns}/set-a"}}
    )
    before = len(stella.logs())
    stella.restart()
    eventually(lambda: summary("set-a") == f"{env}=Live", what="set-a shown live again")
    eventually(lambda: summary("set-c") == f"{env}=Deployed", what="set-c no longer live")
    eventually(
        lambda: "first pass over every Release done" in stella.logs()[before:],
        what="the engine's first pass",
    )
    log = stella.logs()[before:]
    assert f"reconciled {ns}/set-a " in log and f"reconciled {ns}/set-c " in log
    assert f"reconciled {ns}/set-b " not in log  # finished, nothing changed: skipped
    assert shop.get_release("set-b")["metadata"]["resourceVersion"] == untouched


def test_a_registry_the_environment_no_longer_allows_is_not_deployed(
    stella: OperatorProcess, shop: Shop
) -> None:
    """Admitted while the Environment allowed its registry; the platform team removes it
    before the approval: the engine checks again right before it deploys, and deploys
    nothing."""
    env = shop.environment(
        "narrow", approvals={"required": 1, "approverGroups": ["release-approvers"]}
    )
    before = shop.deployed_image("narrow")
    shop.release("rel-n", shop.image("9.5"), ["narrow"])
    shop.wait_phase("rel-n", "narrow", "WaitingForApproval")
    client.CustomObjectsApi(shop.admin).patch_cluster_custom_object(
        G, V, "environments", env, {"spec": {"allowedRegistries": ["registry.example.com"]}}
    )
    shop.approve("rel-n", "narrow", "bob")
    p = shop.wait_reason("rel-n", "narrow", "RegistryNotAllowed")
    assert p["phase"] == "Blocked"
    assert shop.registry.host in p["message"] and "no longer allows" in p["message"]
    assert shop.deployed_image("narrow") == before
