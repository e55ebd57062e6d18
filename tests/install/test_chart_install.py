"""Issue 10, the chart: `helm install` into a real API server as a user would, then the
operator as the chart's ServiceAccount (TokenRequest token, only the chart's RBAC, the
Deployment's env and mounts) promotes dev -> staging -> prod with approvals and evidence."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from typing import Any, cast

import yaml
from kubernetes import client
from tests.e2e.shop import Shop
from tests.install.conftest import (
    CHART,
    NS,
    SA,
    STELLA,
    Install,
    OperatorInPod,
    helm,
    run_pod_once,
    shop_path,
    start_operator_as_chart,
)
from tests.kube_support import eventually, evidence_packets

from devenv.controlplane import ControlPlane, binaries


def manifest(kube: ControlPlane) -> list[dict[str, Any]]:
    out = helm(kube, "get", "manifest", "stella", "-n", NS)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_every_object_of_the_chart_is_accepted(installed: Install) -> None:
    kube = installed.kube
    docs = manifest(kube)
    kinds = {d["kind"] for d in docs}
    assert {
        "Deployment",
        "Service",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "NetworkPolicy",
    } <= kinds, kinds
    for d in docs:  # each one is in the API server, as rendered
        ns = d["metadata"].get("namespace")
        args = [
            "get",
            f"{d['kind']}.{d['apiVersion'].split('/')[0]}" if "/" in d["apiVersion"] else d["kind"],
            d["metadata"]["name"],
            "-o",
            "name",
        ]
        if ns:
            args += ["-n", ns]
        assert kube.kubectl("admin", *args, check=False).returncode == 0, d["metadata"]
    # The CRDs come from the chart's crds/ and are established.
    for plural in ("releases", "environments", "approvals", "actions", "agents"):
        kube.kubectl(
            "admin",
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            f"crd/{plural}.stella.io",
        )
    # From the first moment every webhook calls loopback, never the Service's ClusterIP.
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        cfg = json.loads(kube.kubectl("admin", "get", kind, "stella.io", "-o", "json").stdout)
        for wh in cfg["webhooks"]:
            assert "service" not in wh["clientConfig"], wh["name"]
            assert wh["clientConfig"]["url"].startswith(
                f"https://127.0.0.1:{installed.webhook_port}/"
            ), wh["clientConfig"]["url"]
            assert wh["clientConfig"]["caBundle"] == installed.values["webhook.caBundle"]
    status = json.loads(helm(kube, "status", "stella", "-n", NS, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    # NOTES.txt tells the next step, and what webhook.url means until the operator answers.
    assert "kubectl -n stella-system rollout status deployment/stella-operator" in installed.notes
    assert f"https://127.0.0.1:{installed.webhook_port}/<hook-id>" in installed.notes


def operator_may(admin: client.ApiClient, verb: str, resource: str, namespace: str) -> bool:
    review = client.AuthorizationV1Api(admin).create_subject_access_review(
        client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=f"system:serviceaccount:{NS}:{SA}",
                groups=["system:serviceaccounts", f"system:serviceaccounts:{NS}"],
                resource_attributes=client.V1ResourceAttributes(
                    group="apps", resource=resource, verb=verb, namespace=namespace
                ),
            )
        )
    )
    assert review.status is not None
    return bool(review.status.allowed)


def packets(admin: client.ApiClient, env: str) -> list[dict[str, Any]]:
    return evidence_packets(admin, env, NS)


def test_operator_as_the_charts_service_account_promotes_dev_staging_prod(
    installed: Install,
    operator_as_chart: OperatorInPod,
    people: dict[str, client.ApiClient],
    registry: Any,
    postgres: Any,
) -> None:
    op, kube, admin = operator_as_chart, installed.kube, installed.admin
    # It runs with what the Deployment says, nothing added but the ServiceAccount's token.
    assert op.env["STELLA_SERVICE_ACCOUNT"] == f"system:serviceaccount:{NS}:{SA}"
    assert op.env["STELLA_NAMESPACE"] == NS
    # The evidence log only over TLS verified against the CA of evidence.logCA.
    assert op.env["PGSSLMODE"] == "verify-full"
    assert op.env["PGSSLROOTCERT"].endswith("/ca.crt")
    whoami = json.loads(
        subprocess.run(
            [
                str(binaries()["kubectl"]),
                f"--server={kube.server}",
                f"--certificate-authority={kube.ca_file}",
                f"--token={op.token}",
                "auth",
                "whoami",
                "-o",
                "json",
            ],
            env={**os.environ, "KUBECONFIG": "/dev/null"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{NS}:{SA}"

    ns = f"t-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(admin).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels={"team": "shop"}))
    )
    shop = Shop(admin, people, registry, ns)
    narrowed = False
    try:
        dev, staging, prod = shop_path(shop, preventSelfApproval=True)
        # The platform engineer names the target namespaces: the operator may patch
        # workloads there and nowhere else (a RoleBinding each; reads stay cluster-wide).
        targets = [shop.target_ns(st) for st in ("dev", "staging", "prod")]
        helm(
            kube,
            "upgrade",
            "stella",
            str(CHART),
            "-n",
            NS,
            "--reuse-values",
            "--set",
            "targetNamespaces={" + ",".join(targets) + "}",
        )
        narrowed = True
        for target in targets:
            assert operator_may(admin, "patch", "deployments", target)
        for other in (ns, "default", NS):
            assert not operator_may(admin, "patch", "deployments", other), other
            assert operator_may(admin, "get", "deployments", other), other
        image = shop.image("1.0")
        shop.release("rel-1", image, ["dev", "staging", "prod"])  # alice, a requester
        shop.wait_phase("rel-1", "dev", "Deployed", timeout=90)
        assert shop.deployed_image("dev") == image
        shop.wait_phase("rel-1", "staging", "WaitingForApproval", timeout=60)
        try:  # admission (the operator's webhook, on loopback) refuses a self-approval
            shop.approve("rel-1", "staging", "alice")
            raise AssertionError("alice's approval of her own release was admitted")
        except client.exceptions.ApiException as exc:
            assert exc.status in (403, 422)
        shop.approve("rel-1", "staging", "bob")
        shop.wait_phase("rel-1", "staging", "Deployed", timeout=90)
        shop.approve("rel-1", "prod", "bob")
        shop.approve("rel-1", "prod", "carol")
        deployed = shop.wait_phase("rel-1", "prod", "Deployed", timeout=90)
        assert sorted(a["approver"] for a in deployed["approvals"]) == ["bob", "carol"]
        assert shop.deployed_image("prod") == image

        # Evidence: an authorization and an outcome packet per environment, immutable
        # ConfigMaps the operator created; the PostgreSQL log agrees (stella evidence
        # verify as erin, an auditor, with the chart's evidence-reader role).
        for env in (dev, staging, prod):

            def authorized_and_deployed(env: str = env) -> bool:
                return [
                    p["kind"] for p in packets(admin, env) if p["kind"].startswith("Promotion")
                ] == ["PromotionAuthorized", "PromotionDeployed"]

            eventually(
                authorized_and_deployed,
                timeout=30,
                what=f"authorization and outcome packets of {env}",
            )
        verify_env = {
            **os.environ,
            "KUBECONFIG": str(kube.kubeconfig_for("erin")),
            "PGPASSWORD": installed.pg_password,
            "PGSSLMODE": "verify-full",
            "PGSSLROOTCERT": str(postgres.ca_file),
        }
        verify = subprocess.run(
            [STELLA, "evidence", "verify", "-n", NS, "--log", installed.values["evidence.log"]],
            env=verify_env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr

        # A pod restart (a new emptyDir, a new token): the chains go on where they were,
        # because the log is PostgreSQL (evidence.log is required by the chart).
        op.stop()
        installed.operator = start_operator_as_chart(installed)
        shop.release("rel-2", shop.image("1.1"), ["dev"])
        shop.wait_phase("rel-2", "dev", "Deployed", timeout=90)
        chain = cast(
            list[dict[str, Any]],
            eventually(
                lambda: (
                    (ps := [p for p in packets(admin, dev) if p["kind"].startswith("Promotion")])
                    and len(ps) == 4
                    and ps
                ),
                timeout=30,
                what="the dev chain after the restart",
            ),
        )
        assert [p["kind"] for p in chain] == ["PromotionAuthorized", "PromotionDeployed"] * 2
        seqs = [p["sequence"] for p in packets(admin, dev)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        again = subprocess.run(
            verify.args, env=verify_env, capture_output=True, text=True, check=False, timeout=120
        )
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        if narrowed:  # the target namespaces go with the shop; so must their RoleBindings
            helm(
                kube,
                "upgrade",
                "stella",
                str(CHART),
                "-n",
                NS,
                "--reuse-values",
                "--set",
                "targetNamespaces=null",
            )
        shop.cleanup()
        client.CoreV1Api(admin).delete_namespace(ns)


def evidence_configmaps(admin: client.ApiClient) -> dict[str, tuple[str, str]]:
    cms: list[Any] = (  # evidence ConfigMaps: their metadata is set
        client.CoreV1Api(admin)
        .list_namespaced_config_map(NS, label_selector="stella.io/evidence")
        .items
    )
    return {cm.metadata.name: (cm.metadata.uid, cm.metadata.resource_version) for cm in cms}


def test_helm_test_hook_and_helm_upgrade_keeps_the_evidence(
    installed: Install, operator_as_chart: OperatorInPod
) -> None:
    kube, admin = installed.kube, installed.admin
    hooks = [
        d for d in yaml.safe_load_all(helm(kube, "get", "hooks", "stella", "-n", NS).stdout) if d
    ]
    pod = next(d for d in hooks if d["kind"] == "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    # The API server accepts the hook's Pod as rendered ...
    kube.kubectl("admin", "create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(pod))
    # ... and its check passes when run as a kubelet would (kwok's fake nodes run nothing,
    # so `helm test` itself would wait for a phase no kubelet here reports).
    out = run_pod_once(installed, pod, "helm-test")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "operator and admission ready; webhook validate-environment answered" in out.stdout
    print(f"[install] helm test hook ({installed.runtime}): {out.stdout.strip()}")

    before = evidence_configmaps(admin)
    revision = json.loads(helm(kube, "status", "stella", "-n", NS, "-o", "json").stdout)["version"]
    assert len(before) >= 6  # the promotions' packets and the published keys
    helm(
        kube,
        "upgrade",
        "stella",
        str(CHART),
        "-n",
        NS,
        "--reuse-values",
        "--set",
        "webhook.timeoutSeconds=7",
    )
    status = json.loads(helm(kube, "status", "stella", "-n", NS, "-o", "json").stdout)
    assert status["version"] == revision + 1 and status["info"]["status"] == "deployed"
    # Evidence is the operator's, never the chart's: an upgrade leaves every ConfigMap as it
    # was (same uid, same resourceVersion).
    assert evidence_configmaps(admin) == before
    cfg = json.loads(
        kube.kubectl(
            "admin", "get", "validatingwebhookconfiguration", "stella.io", "-o", "json"
        ).stdout
    )
    assert {wh["timeoutSeconds"] for wh in cfg["webhooks"]} == {7}
    assert all(wh["clientConfig"]["url"].startswith("https://127.0.0.1:") for wh in cfg["webhooks"])
    out = run_pod_once(installed, pod, "helm-test")
    assert out.returncode == 0, out.stdout + out.stderr


def test_helm_uninstall_leaves_evidence_and_crds(
    installed: Install, operator_as_chart: OperatorInPod
) -> None:
    """Last of the tier (it removes the release): what stays after `helm uninstall`."""
    kube, admin = installed.kube, installed.admin
    evidence = evidence_configmaps(admin)
    assert evidence

    def releases() -> list[str]:
        out = json.loads(kube.kubectl("admin", "get", "releases", "-A", "-o", "json").stdout)
        return [r["metadata"]["name"] for r in out["items"]]

    # The earlier tests' namespaces are still being deleted (with their Releases).
    eventually(lambda: releases() == [], timeout=60, what="no Release left")
    helm(kube, "uninstall", "stella", "-n", NS, "--wait", "--timeout", "60s")
    # The pods go with their Deployments: the ones running now (an earlier test restarted
    # the first; admission, unlike the engine, never exits when its API server goes away).
    (installed.operator or operator_as_chart).stop()
    installed.operator = None
    # The evidence stays (the operator's objects, not the chart's), with the CRDs (Helm
    # never deletes crds/) and so every Release, Approval and Action; the webhook
    # configurations go, so nothing is refused by a webhook no one serves.
    assert evidence_configmaps(admin) == evidence
    for plural in ("releases", "environments", "approvals", "actions", "agents"):
        kube.kubectl("admin", "get", f"crd/{plural}.stella.io")
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        assert kube.kubectl("admin", "get", kind, "stella.io", check=False).returncode != 0
    for kind in ("clusterrole/stella-operator", "clusterrolebinding/stella-approvers"):
        assert kube.kubectl("admin", "get", kind, check=False).returncode != 0
    # No Release is left behind (none carries a finalizer that would wait for an operator).
    assert releases() == []
