"""Stella's own objects kept in git, as Argo CD would sync them, with the operator and its
admission running: an Environment and a Release applied twice client-side and twice
server-side change nothing and `kubectl diff` shows nothing (what admission stamped is
never fought over); and Argo CD's health.lua checks (docs/argocd.md), run in Lua 5.1 on
the objects the operator itself moved through their phases, say what they should."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import yaml
from kubernetes import client
from tests.argocd_health import health
from tests.e2e.shop import G, Shop, V, operated_shop
from tests.kube_support import eventually, wait_for_release_params

from devenv.controlplane import ControlPlane
from devenv.services import Registry

REQUESTER = "stella.io/requester"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@pytest.fixture(scope="module")
def shop(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
    registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Shop]:
    with operated_shop(
        kube, kube_admin, kube_as, registry, tmp_path_factory.mktemp("gitops"), "git"
    ) as (s, _):
        yield s


def _git_copy(shop: Shop, tmp: Path, image: str) -> tuple[Path, str, str]:
    """An Environment and a Release as a person writes them in git (no status, no stamps)."""
    env, rel = shop.env_name("git"), "rel-git"
    docs = [
        {
            "apiVersion": f"{G}/{V}",
            "kind": "Environment",
            "metadata": {"name": env},
            "spec": {
                "requires": [shop.env_name("dev")],
                "targets": [{"namespace": shop.target_ns("dev")}],
                "allowedRegistries": [shop.registry.host],
                "approvals": {"required": 1, "approverGroups": ["release-approvers"]},
            },
        },
        {
            "apiVersion": f"{G}/{V}",
            "kind": "Release",
            "metadata": {"name": rel, "namespace": shop.release_ns},
            "spec": {
                "version": "2.0.0",
                "environments": [shop.env_name("dev"), env],
                "components": [
                    {
                        "name": "web",
                        "image": image,
                        "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                    }
                ],
            },
        },
    ]
    path = tmp / "git.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    shop.created_envs.append(env)
    return path, env, rel


def _what_git_owns(kube: ControlPlane, env: str, ns: str, rel: str) -> list[object]:
    """Spec, generation, labels and annotations of both objects (not status, which the
    operator keeps writing, nor managedFields and kubectl's last-applied annotation, which
    a first server-side apply takes over: kubectl's bookkeeping, not the object)."""
    out: list[object] = []
    for args in ([f"environment/{env}"], ["-n", ns, f"release/{rel}"]):
        obj = json.loads(kube.kubectl("admin", "get", *args, "-o", "json").stdout)
        meta = obj["metadata"]
        notes = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
        out.append([obj["spec"], meta["generation"], meta.get("labels"), notes])
    return out


def _no_diff(kube: ControlPlane, path: Path, *flags: str) -> None:
    done = kube.kubectl("admin", "diff", *flags, "-f", str(path), check=False)
    assert done.returncode == 0, f"kubectl diff {' '.join(flags)}: {done.stdout}{done.stderr}"


def test_applied_twice_client_and_server_side_nothing_changes(
    kube: ControlPlane, shop: Shop, tmp_path: Path
) -> None:
    shop.environment("dev", replicas=0)
    path, env, rel = _git_copy(shop, tmp_path, shop.image("2.0"))
    ns = shop.release_ns

    # The Environment first, as an Argo CD sync wave would: a Release create is judged by
    # the Environments the operator has published (docs/admission.md).
    env_doc = yaml.safe_dump(next(yaml.safe_load_all(path.read_text())))
    kube.kubectl("admin", "apply", "-f", "-", stdin=env_doc)
    wait_for_release_params(shop.admin, env)
    kube.kubectl("admin", "apply", "-f", str(path))
    stamped = shop.get_release(rel)["metadata"]["annotations"]
    assert REQUESTER in stamped, "admission stamps the requester at CREATE"
    # The operator writes status; wait until it has evaluated both, then compare.
    shop.wait_phase(rel, "git", "WaitingForApproval", timeout=120)
    _no_diff(kube, path)
    before = _what_git_owns(kube, env, ns, rel)
    again = kube.kubectl("admin", "apply", "-f", str(path))
    assert again.stdout.count("unchanged") == 2, again.stdout
    assert _what_git_owns(kube, env, ns, rel) == before

    # Server-side, as Argo CD's ServerSideApply=true does: twice, and a server-side diff.
    for _ in range(2):
        done = kube.kubectl(
            "admin", "apply", "--server-side", "--field-manager=argocd-controller", "-f",
            str(path), check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        _no_diff(kube, path, "--server-side", "--field-manager=argocd-controller")
    assert _what_git_owns(kube, env, ns, rel) == before, "a server-side re-apply changed an object"
    assert shop.get_release(rel)["metadata"]["annotations"][REQUESTER] == stamped[REQUESTER]

    # Putting back a left-out stamp is all the policy does: a git copy that changes one is
    # still refused, and says why.
    forged = yaml.safe_load_all(path.read_text())
    docs = list(forged)
    docs[1]["metadata"]["annotations"] = {REQUESTER: stamped[REQUESTER].replace("admin", "eve")}
    bad = tmp_path / "forged.yaml"
    bad.write_text(yaml.safe_dump(docs[1]))
    done = kube.kubectl(
        "admin", "apply", "--server-side", "--field-manager=argocd-controller", "-f", str(bad),
        check=False,
    )  # fmt: skip
    assert done.returncode != 0 and REQUESTER in done.stderr, done.stderr
    assert shop.get_release(rel)["metadata"]["annotations"][REQUESTER] == stamped[REQUESTER]


def test_health_of_the_objects_the_operator_moves(shop: Shop, kube: ControlPlane) -> None:
    """Argo CD's view, from health.lua on the live objects: the Release waits for an
    approval (Suspended), then is Healthy once deployed everywhere."""
    rel, ns = "rel-git", shop.release_ns
    api = client.CustomObjectsApi(shop.admin)

    def live_release() -> dict[str, object]:
        return cast(dict[str, object], api.get_namespaced_custom_object(G, V, ns, "releases", rel))

    def live_env(stage: str) -> dict[str, object]:
        env = api.get_cluster_custom_object(G, V, "environments", shop.env_name(stage))
        return cast(dict[str, object], env)

    waiting = health("Release", live_release())
    assert waiting["status"] == "Suspended", waiting
    assert "needs 1 approval" in waiting["message"]
    assert health("Environment", live_env("dev")) == {
        "status": "Healthy",
        "message": f"Running {ns}/{rel}",
    }
    shop.approve(rel, "git", "bob")
    eventually(
        lambda: health("Release", live_release())["status"] == "Healthy",
        timeout=120,
        what="the Release Healthy in Argo CD's terms",
    )
    assert health("Environment", live_env("git"))["status"] == "Healthy"

    # Suspending the Environment is Suspended for both; not Degraded.
    api.patch_cluster_custom_object(
        G, V, "environments", shop.env_name("git"), {"spec": {"suspended": True}}
    )
    eventually(
        lambda: health("Environment", live_env("git"))["status"] == "Suspended",
        timeout=60,
        what="the suspended Environment Suspended in Argo CD's terms",
    )
    suspended = health("Environment", live_env("git"))
    assert "spec.suspended" in suspended["message"]
