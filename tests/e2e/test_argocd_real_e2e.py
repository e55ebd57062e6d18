"""A real Argo CD (issue 14): argocd-application-controller and argocd-repo-server (built
from github.com/argoproj/argo-cd/v2 by hack/build-binaries.sh) out of cluster against the
local control plane, Debian's Redis, and a git daemon on loopback serving a kustomize app.
Each Environment deploys through an Application with automated sync and self-heal on;
Stella promotes a Release dev -> prod by setting the Applications' image override and the
operator runs as its own process. Checked: Argo CD deploys the new image (no drift), never
puts the old one back (no revert), syncs once per promotion (its OperationStarted Events),
self-heals a hand edit of the Deployment back to the promoted image, and the evidence
names the git revision Argo CD synced."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from kubernetes import client
from tests.e2e.shop import Shop, operated_shop
from tests.e2e.test_actions_e2e import packets
from tests.kube_support import custom_objects, eventually, install_argocd_crd

from devenv.argocd import ArgoCD, GitRepos, server_secret_key
from devenv.controlplane import ControlPlane
from devenv.services import Registry

A = ("argoproj.io", "v1alpha1")
STAGES = ("dev", "prod")


def deployment(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def kustomize_app(image: str) -> dict[str, str]:
    return {
        "kustomization.yaml": "resources: [deployment.yaml]\n",
        "deployment.yaml": yaml.safe_dump(deployment(image)),
    }


def helm_chart(image: str) -> dict[str, str]:
    """A chart whose parameter web.image is the Deployment's image."""
    template = yaml.safe_dump(deployment("IMAGE")).replace("IMAGE", "{{ .Values.web.image }}")
    return {
        "Chart.yaml": "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
        "values.yaml": yaml.safe_dump({"web": {"image": image}}),
        "templates/deployment.yaml": template,
    }


def kustomize(images: list[str]) -> dict[str, Any]:
    return {"kustomize": {"images": images}}


def helm(image: str) -> dict[str, Any]:
    return {"helm": {"parameters": [{"name": "web.image", "value": image}]}}


@dataclass
class World:
    shop: Shop
    argocd: ArgoCD
    ns: str  # the Applications' namespace (Argo CD's own)
    initial: str
    revision: str  # the git commit the Applications track

    def app(self, stage: str) -> dict[str, Any]:
        api = custom_objects(self.shop.admin)
        return dict(api.get_namespaced_custom_object(*A, self.ns, "applications", f"shop-{stage}"))

    def syncs(self, stage: str) -> int:
        """Sync operations Argo CD started for this Application: its OperationStarted
        Events, one per operation, automated or self-heal (status.history records full
        syncs only, so a self-heal's partial sync — the sign of a fight — is not there)."""
        events = client.CoreV1Api(self.shop.admin).list_namespaced_event(
            self.ns, field_selector=f"involvedObject.name=shop-{stage}"
        )
        return sum(1 for e in events.items if e.reason == "OperationStarted")

    def settled(self, stage: str, want: dict[str, Any]) -> bool:
        """Synced and Healthy after comparing against `want` (part of the source: the
        kustomize override, or the Helm parameters)."""
        self.argocd.check_alive()
        status = self.app(stage).get("status") or {}
        sync, health = status.get("sync") or {}, status.get("health") or {}
        compared = (sync.get("comparedTo") or {}).get("source") or {}
        return (
            sync.get("status") == "Synced"
            and health.get("status") == "Healthy"
            and all(compared.get(k) == v for k, v in want.items())
            and (status.get("operationState") or {}).get("phase") == "Succeeded"
        )


def _argocd_namespace(kube: ControlPlane, admin: client.ApiClient, ns: str) -> None:
    """Argo CD's install ConfigMaps and Secret from its own manifests, and the default
    AppProject (argocd-server would create it; no argocd-server runs here)."""
    from devenv.argocd import MANIFESTS

    core = client.CoreV1Api(admin)
    # Managed: the API server refuses an unpinned override here (application-images).
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=ns, labels={"stella.io/managed": "true"})
        )
    )
    for manifest in sorted((MANIFESTS / "config").glob("argocd-*.yaml")):
        done = kube.kubectl("admin", "apply", "-n", ns, "-f", str(manifest), check=False)
        assert done.returncode == 0, done.stderr
    core.patch_namespaced_secret(
        "argocd-secret", ns, {"stringData": {"server.secretkey": server_secret_key()}}
    )
    project = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "default"},
        "spec": {
            "sourceRepos": ["*"],
            "destinations": [{"server": "*", "namespace": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
        },
    }
    custom_objects(admin).create_namespaced_custom_object(*A, ns, "appprojects", project)


@pytest.fixture(scope="module")
def world(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
    registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    install_argocd_crd(kube)
    workdir = tmp_path_factory.mktemp("argocd-real")
    ns = f"argocd-{uuid.uuid4().hex[:6]}"
    _argocd_namespace(kube, kube_admin, ns)
    git = GitRepos(workdir / "git").start()
    argocd = ArgoCD(workdir / "argocd", kube.kubeconfig_for("admin"), ns)
    try:
        argocd.start()
        with operated_shop(kube, kube_admin, kube_as, registry, workdir / "op", "acdr") as (
            shop,
            _,
        ):
            initial = shop.image("initial")  # what Shop's Deployments run: Argo CD adopts them
            files = {
                f"{stage}/{k}": v for stage in STAGES for k, v in kustomize_app(initial).items()
            }
            files.update({f"chart/{k}": v for k, v in helm_chart(initial).items()})
            revision = git.commit("shop", files, "shop: dev and prod, and a chart")
            api = custom_objects(kube_admin)
            for i, stage in enumerate(STAGES):
                target = [{"application": {"name": f"shop-{stage}", "namespace": ns}}]
                shop.environment(
                    stage,
                    requires=list(STAGES[:i]),
                    replicas=1,
                    targets=target,
                    rollout={"timeout": "300s", "rollbackOnFailure": True},
                )
                api.create_namespaced_custom_object(*A, ns, "applications", {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Application",
                    "metadata": {"name": f"shop-{stage}"},
                    "spec": {
                        "project": "default",
                        "source": {
                            "repoURL": git.url("shop"),
                            "path": stage,
                            "targetRevision": "main",
                            "kustomize": {"images": [initial]},
                        },
                        "destination": {
                            "server": "https://kubernetes.default.svc",
                            "namespace": shop.target_ns(stage),
                        },
                        "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                    },
                })  # fmt: skip
            # An Application of a Helm chart: Stella sets the parameter its target names.
            helm_target = {"name": "shop-helm", "namespace": ns, "helmParameters": [
                {"component": "web", "parameter": "web.image"}
            ]}  # fmt: skip
            shop.environment(
                "helm",
                replicas=1,
                targets=[{"application": helm_target}],
                rollout={"timeout": "300s", "rollbackOnFailure": True},
            )
            api.create_namespaced_custom_object(*A, ns, "applications", {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Application",
                "metadata": {"name": "shop-helm"},
                "spec": {
                    "project": "default",
                    "source": {
                        "repoURL": git.url("shop"), "path": "chart", "targetRevision": "main",
                        **helm(initial),
                    },
                    "destination": {
                        "server": "https://kubernetes.default.svc",
                        "namespace": shop.target_ns("helm"),
                    },
                    "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                },
            })  # fmt: skip
            world = World(shop, argocd, ns, initial, revision)
            eventually(
                lambda: world.settled("helm", helm(initial)),
                timeout=240,
                what="Argo CD's first sync of shop-helm",
            )
            for stage in STAGES:

                def synced(stage: str = stage) -> bool:
                    return world.settled(stage, kustomize([initial]))

                eventually(
                    synced,
                    timeout=240,
                    what=f"Argo CD's first sync of shop-{stage}",
                )
            yield world
    finally:
        argocd.stop()
        git.stop()
        client.CoreV1Api(kube_admin).delete_namespace(ns)


def test_real_argo_cd_promotes_dev_to_prod_once_each_without_a_fight(world: World) -> None:
    shop = world.shop
    before = {stage: world.syncs(stage) for stage in STAGES}
    assert all(n >= 1 for n in before.values()), before
    image = shop.image("1.0")
    shop.release("rel-1", image, list(STAGES))
    for stage in STAGES:
        got = shop.wait_phase("rel-1", stage, "Deployed", timeout=300)
        assert (
            f"Application {world.ns}/shop-{stage} sync Synced, health Healthy at" in got["message"]
        )
    for stage in STAGES:

        def settled(stage: str = stage) -> bool:
            return world.settled(stage, kustomize([image]))

        eventually(
            settled,
            timeout=60,
            what="settled",
        )
    # No drift: Argo CD itself deployed the promoted image; no revert: the override stays.
    time.sleep(10)  # room for a fight, were there one (self-heal acts within seconds)
    for stage in STAGES:
        app = world.app(stage)
        assert app["spec"]["source"]["kustomize"]["images"] == [image]
        assert app["status"]["sync"]["status"] == "Synced"
        assert app["status"]["sync"]["revision"] == world.revision
        assert shop.deployed_image(stage) == image
        # One sync per promotion.
        assert world.syncs(stage) - before[stage] == 1, app["status"].get("history")
    # The evidence names the override change and the git revision Argo CD synced (the
    # authorization, recorded before anything was written, has no revision yet).
    chain = packets(shop.admin, shop.env_name("prod"))
    for kind, revision in (("PromotionAuthorized", ""), ("PromotionDeployed", world.revision)):
        packet = [p for p in chain if p["kind"] == kind][-1]
        assert packet["outcome"]["applications"] == [
            {
                "namespace": world.ns,
                "name": "shop-prod",
                "changes": [{"component": "web", "before": world.initial, "after": image}],
                "revision": revision,
            }
        ], kind


def test_self_heal_puts_back_the_promoted_image_not_the_old_one(world: World) -> None:
    shop = world.shop
    promoted = world.app("dev")["spec"]["source"]["kustomize"]["images"][0]
    syncs = world.syncs("dev")
    # Someone edits the Deployment Argo CD owns by hand (a pinned image, as admission wants).
    client.AppsV1Api(shop.admin).patch_namespaced_deployment(
        "web",
        shop.target_ns("dev"),
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": world.initial}]}}}},
    )
    eventually(
        lambda: world.syncs("dev") > syncs and shop.deployed_image("dev") == promoted,
        timeout=120,
        what="Argo CD's self-heal back to the promoted image",
    )
    assert world.app("dev")["spec"]["source"]["kustomize"]["images"] == [promoted]
    assert shop.phase("rel-1", "dev") == "Deployed"


def test_real_argo_cd_renders_the_helm_parameter_stella_sets(world: World) -> None:
    shop = world.shop
    syncs = world.syncs("helm")
    image = shop.image("1.1")
    shop.release("rel-h1", image, ["helm"])
    shop.wait_phase("rel-h1", "helm", "Deployed", timeout=300)
    eventually(lambda: world.settled("helm", helm(image)), timeout=60, what="settled")
    time.sleep(5)  # room for a fight, were there one
    app = world.app("helm")
    assert app["spec"]["source"]["helm"] == helm(image)["helm"]
    assert app["status"]["sync"]["revision"] == world.revision
    assert shop.deployed_image("helm") == image  # helm template rendered Stella's value
    assert world.syncs("helm") - syncs == 1
