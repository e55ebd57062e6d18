"""Issue 10, `helm upgrade` from the previous chart version with a promotion in flight.

0.1.0 (charts/stella at e508e61) is installed with `helm install` — its webhook
configurations pointed at loopback by a post-renderer (previous_chart.py), the one change
to its output — and its own operator code (git archive of that commit, run as the chart's
ServiceAccount with its Deployment's env as a host process: no 0.1.0 image is built here)
takes a Release into dev and leaves it waiting for approval in staging. Then what the chart
README's upgrade section says: the current CRDs applied server-side, `helm upgrade
--reset-then-reuse-values` to the current chart, the operator restarted as the new version
(from the image under runc when one is built, else a host process). The promotion then
finishes exactly once: one authorization and one outcome packet per environment, dev not
deployed again, every evidence ConfigMap and the PostgreSQL log kept, verify passes."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from tests.e2e.shop import Shop
from tests.install import previous_chart
from tests.install.conftest import (
    CHART,
    NS,
    PEOPLE,
    RELEASE,
    STELLA,
    Install,
    chart_values,
    control_plane,
    helm,
    prepare_namespace,
    runtime,
    shop_path,
    start_operator_as_chart,
)
from tests.install.test_chart_install import evidence_configmaps, packets
from tests.kube_support import api_client_for, eventually

from devenv.controlplane import ControlPlane
from devenv.proc import free_port


@pytest.fixture(scope="module")
def upgrade_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A bare control plane of its own (with kwok, so rollouts finish)."""
    with control_plane(tmp_path_factory.mktemp("upgrade-cluster")) as cp:
        yield cp


def install_previous(
    kube: ControlPlane, registry: Any, postgres: Any, workdir: Path
) -> tuple[Install, Path]:
    """`helm install` of 0.1.0 with the values a platform engineer would have given it."""
    tree = previous_chart.extract(workdir / "previous")
    ca, dsn, pg_password = prepare_namespace(kube, postgres, workdir)
    webhook_port = free_port()
    values = chart_values(ca, dsn, webhook_port, registry.host)
    args = ["install", RELEASE, str(tree / "charts" / "stella"), "-n", NS, "--wait=false"]
    args += ["--post-renderer", str(previous_chart.post_renderer(workdir))]
    args += ["--post-renderer-args", f"https://127.0.0.1:{webhook_port}"]
    for k, v in values.items():
        args += ["--set", f"{k}={v}"]
    t0 = time.monotonic()
    helm(kube, *args)
    admin = api_client_for(str(kube.kubeconfig), "admin")
    inst = Install(
        kube, admin, values, ca, webhook_port, 0, t0, time.monotonic() - t0, workdir, pg_password
    )
    return inst, tree


def webhook_urls(kube: ControlPlane) -> list[str]:
    urls = []
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        cfg = json.loads(kube.kubectl("admin", "get", kind, "stella.io", "-o", "json").stdout)
        for hook in cfg["webhooks"]:
            assert "service" not in hook["clientConfig"], hook["name"]
            urls.append(hook["clientConfig"]["url"])
    return urls


def chart_version(kube: ControlPlane) -> str:
    out = json.loads(helm(kube, "list", "-n", NS, "-o", "json").stdout)
    return str(next(r for r in out if r["name"] == RELEASE)["chart"])


def promotion_kinds(admin: client.ApiClient, env: str) -> list[str]:
    return [p["kind"] for p in packets(admin, env) if p["kind"].startswith("Promotion")]


def approval_status(admin: client.ApiClient, ns: str, name: str) -> dict[str, Any] | None:
    obj = client.CustomObjectsApi(admin).get_namespaced_custom_object(
        "stella.io", "v1alpha1", ns, "approvals", name
    )
    return cast(dict[str, Any], obj).get("status")


def log_rows(postgres: Any, dsn: str, password: str) -> int:
    import psycopg

    with psycopg.connect(dsn, password=password) as conn:
        row = conn.execute("SELECT count(*) FROM stella.evidence_log").fetchone()
    return int(row[0]) if row else 0


def test_upgrade_from_the_previous_chart_finishes_an_in_flight_promotion_once(
    upgrade_kube: ControlPlane, registry: Any, postgres: Any, tmp_path: Path
) -> None:
    kube = upgrade_kube
    inst, tree = install_previous(kube, registry, postgres, tmp_path)
    admin = inst.admin
    assert chart_version(kube) == "stella-0.1.0"
    assert all(u.startswith(f"https://127.0.0.1:{inst.webhook_port}/") for u in webhook_urls(kube))
    # The previous operator: its own code, the Deployment's env (its fixed http port 8080
    # moved to a free one: other tests share this host's network).
    old_port = free_port()
    op = start_operator_as_chart(
        inst,
        "operator-0.1.0",
        program=previous_chart.operator_program(tree),
        overrides={"STELLA_HTTP_PORT": str(old_port), "STELLA_HTTP_HOST": "127.0.0.1"},
    )
    people = {u: api_client_for(str(kube.kubeconfig), u) for u in PEOPLE}
    ns = f"t-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(admin).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels={"team": "shop"}))
    )
    shop = Shop(admin, people, registry, ns)
    try:
        dev, staging, prod = shop_path(shop)
        image = shop.image("1.0")
        shop.release("rel-1", image, ["dev", "staging", "prod"])
        shop.wait_phase("rel-1", "dev", "Deployed", timeout=90)
        shop.wait_phase("rel-1", "staging", "WaitingForApproval", timeout=60)
        # In flight: bob's decision for prod is given under 0.1.0, carol's comes after.
        old_approval = shop.approve("rel-1", "prod", "bob")["metadata"]["name"]
        eventually(
            lambda: promotion_kinds(admin, dev) == ["PromotionAuthorized", "PromotionDeployed"],
            timeout=30,
            what="dev's packets from 0.1.0",
        )
        dev_generation = shop.deployment("dev").metadata.generation
        evidence_before = evidence_configmaps(admin)
        rows_before = log_rows(postgres, inst.values["evidence.log"], inst.pg_password)
        assert rows_before >= 2

        # The upgrade, as the chart README says: CRDs first (Helm never upgrades crds/),
        # then the chart with the new defaults under the values given before.
        kube.kubectl(
            "admin", "apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds")
        )
        kube.kubectl(
            "admin", "wait", "--for=condition=Established", "--timeout=60s", "crd/actions.stella.io"
        )
        new_port = free_port()
        helm(
            kube,
            "upgrade",
            RELEASE,
            str(CHART),
            "-n",
            NS,
            "--reset-then-reuse-values",
            "--set",
            f"webhook.url=https://127.0.0.1:{inst.webhook_port}",
            "--set",
            f"httpPort={new_port}",
            "--set",  # admission's own Deployment (new since 0.2.0) beside it on this host
            f"admission.httpPort={free_port()}",
        )
        assert chart_version(kube) == "stella-0.2.0"
        assert all(
            u.startswith(f"https://127.0.0.1:{inst.webhook_port}/") for u in webhook_urls(kube)
        )
        # The pod is replaced (one replica; both would bind the same host port).
        op.stop()
        inst.runtime = runtime()
        inst.operator = start_operator_as_chart(inst, "operator-0.2.0")
        print(f"[install] upgraded operator as {inst.runtime}")

        shop.approve("rel-1", "staging", "bob")
        shop.wait_phase("rel-1", "staging", "Deployed", timeout=90)
        shop.approve("rel-1", "prod", "carol")
        # 0.1.0 stamped no binding (Release UID + spec digest) on bob's Approval, so 0.2.0
        # cannot tell which content he approved and does not count it (fail closed); as it
        # decides nothing, it does not stop bob from deciding again, now bound to rel-1, as
        # the chart README's upgrade section says. prod waits till then.
        status = cast(
            dict[str, Any],
            eventually(
                lambda: (
                    (approval_status(admin, ns, old_approval) or {}).get("counted") is False
                    and approval_status(admin, ns, old_approval)
                ),
                timeout=60,
                what="bob's 0.1.0 Approval marked as not counted",
            ),
        )
        assert status["conditions"][0]["status"] == "False", status
        shop.wait_phase("rel-1", "prod", "WaitingForApproval", timeout=30)
        shop.approve("rel-1", "prod", "bob")
        shop.wait_phase("rel-1", "prod", "Deployed", timeout=90)
        for stage in ("dev", "staging", "prod"):
            assert shop.deployed_image(stage) == image, (
                stage,
                shop.progress("rel-1", stage),
                shop.environment_status(stage),
                inst.operator.logs()[-6000:],
            )

        # Exactly once: one authorization and one outcome per environment, dev's from
        # 0.1.0 and not repeated, dev's Deployment not patched again.
        for env in (dev, staging, prod):

            def authorized_and_deployed(env: str = env) -> bool:
                return promotion_kinds(admin, env) == ["PromotionAuthorized", "PromotionDeployed"]

            eventually(
                authorized_and_deployed,
                timeout=30,
                what=f"one authorization and one outcome packet in {env}",
            )
        time.sleep(5)  # a resync or two of the new operator: nothing more appears
        for env in (dev, staging, prod):
            assert promotion_kinds(admin, env) == ["PromotionAuthorized", "PromotionDeployed"]
        assert shop.deployment("dev").metadata.generation == dev_generation
        # Evidence kept: every ConfigMap of 0.1.0 as it was, the log grew and agrees.
        after = evidence_configmaps(admin)
        assert {k: after.get(k) for k in evidence_before} == evidence_before
        assert log_rows(postgres, inst.values["evidence.log"], inst.pg_password) > rows_before
        verify = subprocess.run(
            [STELLA, "evidence", "verify", "-n", NS, "--log", inst.values["evidence.log"]],
            env={
                **os.environ,
                "KUBECONFIG": str(kube.kubeconfig_for("erin")),
                "PGPASSWORD": inst.pg_password,
            },
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        op.stop()
        if inst.operator:
            inst.operator.stop()
            if os.environ.get("STELLA_TEST_SHOW_LOGS"):
                print(inst.operator.logs())
        shop.cleanup()
        client.CoreV1Api(admin).delete_namespace(ns)
