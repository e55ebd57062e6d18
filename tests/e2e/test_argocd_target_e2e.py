"""Argo CD Applications as promotion targets when the sync fails (Degraded), through the
kustomize override and a Helm parameter, with the operator as its own process and Argo
CD's own Application CRD in the real API server.

FALLBACK, LABELLED: the happy paths (kustomize and Helm) run against a real Argo CD
(tests/e2e/test_argocd_real_e2e.py). These cases do not, because a real Argo CD cannot be
made to report Degraded for an image here: kwok runs no containers, so every pod of any
image becomes Ready, and a Release changes nothing but the image. `FakeArgoCD` below
writes the status transitions Argo CD would write after a sync — comparedTo = the spec's
source, Synced at a revision, Healthy (or Degraded for an image the test marks bad) — and
counts its syncs. What Stella does is real: it writes the image override or the Helm
parameter into the Application (never the Deployment), waits for Synced + Healthy, puts
the previous override back on Degraded, and records evidence."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from tests.e2e.shop import Shop, operated_shop
from tests.e2e.test_actions_e2e import packets
from tests.kube_support import custom_objects, install_argocd_crd

from devenv.controlplane import ControlPlane
from devenv.services import Registry

A = ("argoproj.io", "v1alpha1")


class FakeArgoCD:
    """Writes what Argo CD's application controller would, for every Application of one
    namespace whose override it has not yet synced. LABELLED TEST DOUBLE (module doc)."""

    def __init__(self, admin: client.ApiClient, namespace: str) -> None:
        self.api = custom_objects(admin)
        self.namespace = namespace
        self.bad: set[str] = set()
        self.syncs: dict[str, int] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                apps = self.api.list_namespaced_custom_object(*A, self.namespace, "applications")
                for app in apps["items"]:
                    self._reconcile(app)
            except Exception as exc:  # the test reads it: a double that dies says why
                self.errors.append(f"{exc!r} {getattr(exc, 'body', '')}"[:2000])

    def _reconcile(self, app: dict[str, Any]) -> None:
        source = app["spec"]["source"]
        status = app.get("status") or {}
        if (status.get("sync") or {}).get("comparedTo", {}).get("source") == source:
            return
        name = app["metadata"]["name"]
        self.syncs[name] = self.syncs.get(name, 0) + 1
        images = (source.get("kustomize") or {}).get("images") or []
        images += [str(p.get("value")) for p in (source.get("helm") or {}).get("parameters") or []]
        healthy = not any(i in self.bad for i in images)
        revision = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        body = {
            "status": {
                "sync": {
                    "status": "Synced",
                    "revision": revision,
                    "comparedTo": {"source": source, "destination": app["spec"]["destination"]},
                },
                "health": {"status": "Healthy"}
                if healthy
                else {"status": "Degraded", "message": "Deployment web: CrashLoopBackOff"},
            }
        }
        self.api.patch_namespaced_custom_object(*A, self.namespace, "applications", name, body)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def application(name: str, images: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name},
        "spec": {
            "project": "default",
            "source": {
                "repoURL": "git://127.0.0.1/shop.git",
                "path": f"overlays/{name}",
                "targetRevision": "main",
                "kustomize": {"images": images},
            },
            "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }


@pytest.fixture(scope="module")
def world(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
    registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Shop, FakeArgoCD, str, str]]:
    install_argocd_crd(kube)
    core = client.CoreV1Api(kube_admin)
    apps_ns = f"argocd-{uuid.uuid4().hex[:6]}"
    # Managed: the API server itself refuses an unpinned override there (slice 4a).
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=apps_ns, labels={"stella.io/managed": "true"})
        )
    )
    argocd = FakeArgoCD(kube_admin, apps_ns)
    try:
        with operated_shop(
            kube, kube_admin, kube_as, registry, tmp_path_factory.mktemp("argocd"), "acd"
        ) as (shop, _):
            initial = shop.image("0.9")
            api = custom_objects(kube_admin)
            for stage in ("dev", "prod"):
                api.create_namespaced_custom_object(
                    *A, apps_ns, "applications", application(f"shop-{stage}", [initial])
                )
            target = [{"application": {"name": "shop-dev", "namespace": apps_ns}}]
            shop.environment("dev", replicas=0, targets=target)
            target = [{"application": {"name": "shop-prod", "namespace": apps_ns}}]
            shop.environment("prod", requires=["dev"], replicas=0, targets=target)
            yield shop, argocd, apps_ns, initial
    finally:
        argocd.stop()
        core.delete_namespace(apps_ns)


def override(admin: client.ApiClient, ns: str, name: str) -> list[str]:
    app = custom_objects(admin).get_namespaced_custom_object(*A, ns, "applications", name)
    return list(app["spec"]["source"]["kustomize"]["images"])


def test_degraded_application_fails_and_its_override_is_put_back(
    world: tuple[Shop, FakeArgoCD, str, str],
) -> None:
    shop, argocd, ns, _ = world
    good = override(shop.admin, ns, "shop-dev")
    bad = shop.image("2.0")
    argocd.bad.add(bad)
    shop.release("rel-2", bad, ["dev", "prod"])
    failed = shop.wait_phase("rel-2", "dev", "Failed", timeout=120)
    assert failed["reason"] == "ApplicationDegraded"
    assert "CrashLoopBackOff" in failed["message"]
    assert "image overrides were put back" in failed["message"]
    assert override(shop.admin, ns, "shop-dev") == good
    shop.wait_phase("rel-2", "prod", "Blocked", timeout=60)
    rolled = [
        p for p in packets(shop.admin, shop.env_name("dev")) if p["kind"] == "PromotionRolledBack"
    ]
    assert rolled and rolled[-1]["outcome"]["reason"] == "ApplicationDegraded"


def test_a_degraded_helm_application_gets_its_old_parameter_value_back(
    world: tuple[Shop, FakeArgoCD, str, str],
) -> None:
    """The Helm parameter a target names, the other parameters kept; a Degraded sync puts
    the old value back (the real Argo CD test shows the parameter rendered and synced)."""
    shop, argocd, ns, initial = world
    api = custom_objects(shop.admin)
    body = application("shop-helm", [])
    source = body["spec"]["source"]
    del source["kustomize"]
    source["helm"] = {
        "parameters": [{"name": "replicas", "value": "2"}, {"name": "web.image", "value": initial}]
    }
    api.create_namespaced_custom_object(*A, ns, "applications", body)
    target = {
        "name": "shop-helm",
        "namespace": ns,
        "helmParameters": [{"component": "web", "parameter": "web.image"}],
    }
    shop.environment("helm", replicas=0, targets=[{"application": target}])
    bad = shop.image("3.1")

    def params() -> list[dict[str, Any]]:
        app = api.get_namespaced_custom_object(*A, ns, "applications", "shop-helm")
        return list(app["spec"]["source"]["helm"]["parameters"])

    argocd.bad.add(bad)
    shop.release("rel-h2", bad, ["helm"])
    failed = shop.wait_phase("rel-h2", "helm", "Failed", timeout=90)
    assert failed["reason"] == "ApplicationDegraded"
    assert params() == [{"name": "replicas", "value": "2"}, {"name": "web.image", "value": initial}]
    rolled = [
        p for p in packets(shop.admin, shop.env_name("helm")) if p["kind"] == "PromotionRolledBack"
    ]
    assert rolled[-1]["outcome"]["applications"][0]["changes"] == [
        {"component": "web", "before": initial, "after": bad}
    ]
