"""The Helm chart renders, agrees with the code, and refuses an unpinned operator image.

helm is built from its Go module by hack/build-binaries.sh (like the control plane), so
this runs everywhere `make test` runs; rendering is local (`helm template`, no cluster).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stella.admission.configuration import (
    PLAIN_IDENTITY_CEL,
    STAMP_IDENTITY_NEEDED,
    STAMPED_IDENTITY_CEL,
    configurations,
)

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "stella"
HELM = (
    Path(os.environ.get("STELLA_CACHE", Path.home() / ".cache" / "stella"))
    / "bin"
    / "helm-v3.22.0"
    / "helm"
)
DIGEST = "sha256:" + "ab" * 32
CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n...\n").decode()
LOG = "evidence.log=postgresql://stella_evidence_writer@db:5432/stella"


def render(*sets: str) -> subprocess.CompletedProcess[str]:
    args = [str(HELM), "template", "stella", str(CHART), "--namespace", "stella-system"]
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    assert HELM.exists(), f"helm not built at {HELM}; run `make binaries`"
    out = render(
        f"image.digest={DIGEST}",
        LOG,
        "webhook.certManager.enabled=false",
        f"webhook.caBundle={CA}",
        "serviceMonitor.enabled=true",
        "prometheusRule.enabled=true",
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def rendered(*sets: str) -> list[dict[str, Any]]:
    """The chart's objects with the required values and these extra --set values."""
    out = render(
        f"image.digest={DIGEST}",
        LOG,
        "webhook.certManager.enabled=false",
        f"webhook.caBundle={CA}",
        *sets,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_operator_image_must_be_pinned() -> None:
    out = render()
    assert out.returncode != 0
    assert "image.digest is required" in out.stderr
    assert "`make image` builds the image and prints its digest" in out.stderr  # what to do


def test_deployment_runs_the_pinned_image_hardened(docs: list[dict[str, Any]]) -> None:
    dep = by_kind(docs, "Deployment", "stella-operator")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith("@" + DIGEST)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STELLA_SERVICE_ACCOUNT"] == "system:serviceaccount:stella-system:stella-operator"


def test_webhooks_match_the_code(docs: list[dict[str, Any]]) -> None:
    want_m, want_v = configurations(
        CA, service={"name": "stella-admission", "namespace": "stella-system", "port": 443}
    )
    got_m = by_kind(docs, "MutatingWebhookConfiguration", "stella.io")
    got_v = by_kind(docs, "ValidatingWebhookConfiguration", "stella.io")
    assert got_m["webhooks"] == want_m["webhooks"]
    assert got_v["webhooks"] == want_v["webhooks"]


def test_admission_runs_apart_from_the_engine_and_writes_nothing(
    docs: list[dict[str, Any]],
) -> None:
    """Issue 12: the webhooks are the Deployment stella-admission (`stella admission run`),
    whose ServiceAccount reads what it judges and writes only Events; the operator's
    Deployment serves no webhook and holds no serving certificate."""
    adm = by_kind(docs, "Deployment", "stella-admission")
    pod = adm["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["admission", "run"] and container["image"].endswith(DIGEST)
    assert pod["serviceAccountName"] == "stella-admission"
    assert adm["spec"]["replicas"] == 2
    env = {e["name"]: e.get("value") for e in container["env"]}
    # Whose writes admission trusts is the operator's identity, not its own.
    assert env["STELLA_SERVICE_ACCOUNT"] == "system:serviceaccount:stella-system:stella-operator"
    assert env["STELLA_WEBHOOK_CERT"] == "/tls/tls.crt"
    assert {"name": "webhook", "containerPort": 9443} in container["ports"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    op = by_kind(docs, "Deployment", "stella-operator")["spec"]["template"]["spec"]
    [op_container] = op["containers"]
    assert not {e["name"] for e in op_container["env"]} & {
        "STELLA_WEBHOOK_CERT",
        "STELLA_WEBHOOK_KEY",
    }
    assert "webhook" not in {p["name"] for p in op_container["ports"]}
    assert "tls" not in {v["name"] for v in op.get("volumes", [])}
    # The webhook Service selects admission's pods, never the operator's, and the reverse.
    svc = by_kind(docs, "Service", "stella-admission")
    assert {"name": "webhook", "port": 443, "targetPort": "webhook"} in svc["spec"]["ports"]
    adm_labels = adm["spec"]["template"]["metadata"]["labels"]
    op_labels = by_kind(docs, "Deployment", "stella-operator")["spec"]["template"]["metadata"][
        "labels"
    ]
    assert all(adm_labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    assert not all(op_labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    op_svc = by_kind(docs, "Service", "stella-operator")
    assert "webhook" not in {p["name"] for p in op_svc["spec"]["ports"]}
    assert not all(adm_labels.get(k) == v for k, v in op_svc["spec"]["selector"].items())
    # Read-only: the only writes are Events and SubjectAccessReviews (questions, not writes).
    role = by_kind(docs, "ClusterRole", "stella-admission")
    writes = sorted(
        (res, v)
        for r in role["rules"]
        for res in r["resources"]
        for v in r["verbs"]
        if v not in {"get", "list", "watch"}
    )
    assert writes == [("events", "create"), ("subjectaccessreviews", "create")]
    # Only admission asks RBAC about people: the operator's role has no SubjectAccessReview.
    operator_role = by_kind(docs, "ClusterRole", "stella-operator")
    assert not [r for r in operator_role["rules"] if "subjectaccessreviews" in r["resources"]]
    dev = [
        d
        for d in yaml.safe_load_all((ROOT / "hack" / "dev-rbac.yaml").read_text())
        if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] == "stella-admission"
    ]
    assert [d["rules"] for d in dev] == [role["rules"]]  # what the e2e tier's admission runs as
    binding = by_kind(docs, "ClusterRoleBinding", "stella-admission")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "stella-admission", "namespace": "stella-system"}
    ]
    assert by_kind(docs, "PodDisruptionBudget", "stella-admission")["spec"]["minAvailable"] == 1
    netpol = by_kind(docs, "NetworkPolicy", "stella-admission")
    assert netpol["spec"]["podSelector"]["matchLabels"] == svc["spec"]["selector"]
    single = rendered("admission.replicas=1")
    assert not [
        d
        for d in single
        if d["kind"] == "PodDisruptionBudget" and "admission" in d["metadata"]["name"]
    ]


POLICY_KINDS = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
POLICY_FILE = CHART / "files" / "admission-policies.yaml"


def test_admission_policies_are_the_one_file(docs: list[dict[str, Any]]) -> None:
    """The chart ships exactly files/admission-policies.yaml, the file hack/devenv and the
    tests apply: no second copy to drift."""
    want = [d for d in yaml.safe_load_all(POLICY_FILE.read_text()) if d]
    got = [d for d in docs if d["kind"] in POLICY_KINDS]

    def order(d: dict[str, Any]) -> tuple[str, str]:  # helm sorts its output by kind
        return d["kind"], d["metadata"]["name"]

    assert sorted(got, key=order) == sorted(want, key=order)
    assert {d["metadata"]["name"] for d in got} >= {
        "workload-digests.stella.io",
        "approved-digests-writer.stella.io",
    }


def test_supply_chain_trust_writers_are_the_platform_groups() -> None:
    """groups.platform is who may write trust ConfigMaps (supply-chain-trust-writer), besides
    the release's own operator ServiceAccount."""
    docs = rendered("groups.platform={sre,sec-ops}")
    policy = next(
        d
        for d in docs
        if d["kind"] == "ValidatingAdmissionPolicy"
        and d["metadata"]["name"] == "supply-chain-trust-writer.stella.io"
    )
    rule = policy["spec"]["validations"][0]["expression"]
    assert 'g in ["sre","sec-ops"]' in rule and "platform-engineers" not in rule
    assert ":stella-operator'" in rule


def test_the_requester_policy_writes_what_the_webhook_would() -> None:
    """The MutatingAdmissionPolicy stamps exactly what the webhook would
    (configuration.STAMPED_IDENTITY_CEL), and exactly for the identities the webhook's
    matchCondition leaves to it (PLAIN_IDENTITY_CEL): if they drifted, a Release could be
    left unstamped (refused by validate-release) or stamped differently."""
    docs = [d for d in yaml.safe_load_all(POLICY_FILE.read_text()) if d]
    policy = next(
        d
        for d in docs
        if d["kind"] == "MutatingAdmissionPolicy"
        and d["metadata"]["name"] == "stamp-requester.stella.io"
    )
    assert policy["spec"]["variables"] == [{"name": "identity", "expression": STAMPED_IDENTITY_CEL}]
    conditions = {c["name"]: c["expression"] for c in policy["spec"]["matchConditions"]}
    # One condition (the API server evaluates them all; `&&` skips the regex once stamped).
    assert conditions == {
        "unstamped-plain-identity": "(!has(object.metadata.annotations) || "
        "!('stella.io/requester' in object.metadata.annotations)) && " + PLAIN_IDENTITY_CEL
    }
    assert STAMP_IDENTITY_NEEDED.endswith("!= " + STAMPED_IDENTITY_CEL)


def test_the_keep_stamps_policy_keeps_every_stamp() -> None:
    """keep-stamps.stella.io puts back exactly admission's stamps and stamped requests."""
    from stella.admission.identity import REQUEST_KEYS, STAMP_KEYS

    docs = [d for d in yaml.safe_load_all(POLICY_FILE.read_text()) if d]
    policy = next(d for d in docs if d["metadata"]["name"] == "keep-stamps.stella.io")
    want = "[" + ", ".join(f"'{k}'" for k in sorted(STAMP_KEYS | REQUEST_KEYS)) + "]"
    assert want in policy["spec"]["matchConditions"][0]["expression"]
    assert want in policy["spec"]["variables"][0]["expression"]
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rules[0]["operations"] == ["UPDATE"]
    assert set(rules[0]["resources"]) == {"releases", "approvals", "actions"}


POLICY_KINDS |= {"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"}


def test_only_this_releases_operator_writes_the_digest_params() -> None:
    sets = ["--set", f"image.digest={DIGEST}", "--set", LOG]
    out = subprocess.run(
        [str(HELM), "template", "stella", str(CHART), "--namespace", "release-ops", *sets],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    writer = next(
        d
        for d in yaml.safe_load_all(out.stdout)
        if d
        and d["metadata"]["name"] == "approved-digests-writer.stella.io"
        and d["kind"] == "ValidatingAdmissionPolicy"
    )
    assert writer["spec"]["validations"][0]["expression"] == (
        "request.userInfo.username == 'system:serviceaccount:release-ops:stella-operator'"
    )


def test_the_console_is_off_by_default(docs: list[dict[str, Any]]) -> None:
    assert not [d for d in docs if d["metadata"]["name"] == "stella-console"]


def test_the_console_runs_pinned_as_its_own_identity_that_can_only_read() -> None:
    out = render(f"image.digest={DIGEST}", LOG, "console.enabled=true")
    assert out.returncode == 0, out.stderr
    rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
    deploy = by_kind(rendered, "Deployment", "stella-console")
    pod = deploy["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"].endswith(f"@{DIGEST}") and container["args"] == ["web"]
    assert pod["serviceAccountName"] == "stella-console"
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STELLA_NAMESPACE"] == "stella-system"  # the evidence it shows is there
    role = by_kind(rendered, "ClusterRole", "stella-console")
    writes = [
        (r["resources"], v) for r in role["rules"] for v in r["verbs"] if v not in {"list", "watch"}
    ]
    assert writes == [(["tokenreviews"], "create")]  # everything else is done as the person
    dev = [
        d
        for d in yaml.safe_load_all((ROOT / "hack" / "dev-rbac.yaml").read_text())
        if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] == "stella-console"
    ]
    assert [d["rules"] for d in dev] == [role["rules"]]  # what the e2e tier's console runs as
    # The operator's Service and NetworkPolicy never select console pods, nor the reverse.
    console_labels = deploy["spec"]["template"]["metadata"]["labels"]
    operator_selector = by_kind(rendered, "Service", "stella-operator")["spec"]["selector"]
    assert not all(console_labels.get(k) == v for k, v in operator_selector.items())
    operator_labels = by_kind(rendered, "Deployment", "stella-operator")["spec"]["template"][
        "metadata"
    ]["labels"]
    console_selector = by_kind(rendered, "Service", "stella-console")["spec"]["selector"]
    assert not all(operator_labels.get(k) == v for k, v in console_selector.items())
    assert (
        by_kind(rendered, "Certificate", "stella-console")["spec"]["secretName"]
        == "stella-console-tls"
    )


def test_the_console_is_scraped_over_tls_and_its_signals_alert() -> None:
    out = render(
        f"image.digest={DIGEST}", LOG, "console.enabled=true", "serviceMonitor.enabled=true",
        "prometheusRule.enabled=true",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rendered_docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    [endpoint] = by_kind(rendered_docs, "ServiceMonitor", "stella-console")["spec"]["endpoints"]
    assert (
        endpoint["scheme"] == "https" and endpoint["tlsConfig"]["ca"]["secret"]["key"] == "ca.crt"
    )
    rule = by_kind(rendered_docs, "PrometheusRule", "stella")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"StellaConsoleSessionTheft", "StellaGatewayForgedDeliveries"} <= alerts


def test_the_console_certificate_needs_an_issuer() -> None:
    out = render(
        f"image.digest={DIGEST}", LOG, "console.enabled=true", "webhook.certManager.enabled=false"
    )
    assert out.returncode != 0 and "console.certManager.enabled" in out.stderr


def test_people_roles_match_the_local_control_plane(docs: list[dict[str, Any]]) -> None:
    dev = {
        (d["kind"], d["metadata"]["name"]): d
        for d in yaml.safe_load_all((ROOT / "hack" / "dev-rbac.yaml").read_text())
        if d
    }
    for role in (
        "stella-requester",
        "stella-approver",
        "stella-platform",
        "stella-auditor",
        "stella-operator",
    ):
        assert by_kind(docs, "ClusterRole", role)["rules"] == dev[("ClusterRole", role)]["rules"], (
            role
        )
    binding = by_kind(docs, "ClusterRoleBinding", "stella-approvers")
    assert binding["subjects"][0]["name"] == "release-approvers"


def test_evidence_configmaps_are_create_only_for_the_operator(docs: list[dict[str, Any]]) -> None:
    role = by_kind(docs, "Role", "stella-operator")
    cm = next(r for r in role["rules"] if "configmaps" in r["resources"])
    assert (
        "update" not in cm["verbs"] and "delete" not in cm["verbs"] and "patch" not in cm["verbs"]
    )


def test_alerts_cover_the_incident_signals(docs: list[dict[str, Any]]) -> None:
    rule = by_kind(docs, "PrometheusRule", "stella")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {
        "StellaEnvironmentHalted",
        "StellaDigestMismatch",
        "StellaSeparationOfDutiesViolationAttempt",
    } <= alerts


def test_chart_crds_are_the_generated_ones() -> None:
    for crd in (ROOT / "crds").glob("*.yaml"):
        assert (CHART / "crds" / crd.name).read_text() == crd.read_text()


def test_helm_lint_passes() -> None:
    out = subprocess.run(
        [str(HELM), "lint", str(CHART), "--set", f"image.digest={DIGEST}", "--set", LOG],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


def test_webhook_url_is_the_out_of_cluster_switch() -> None:
    """webhook.url points every webhook at <url>/<hook-id> and names no Service, so the API
    server never dials a Service ClusterIP (the install tier runs the operator on loopback)."""
    out = render(
        f"image.digest={DIGEST}",
        LOG,
        "webhook.certManager.enabled=false",
        f"webhook.caBundle={CA}",
        "webhook.url=https://127.0.0.1:19443/",
    )
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    want_m, want_v = configurations(CA, base_url="https://127.0.0.1:19443")
    got_m = by_kind(docs, "MutatingWebhookConfiguration", "stella.io")
    got_v = by_kind(docs, "ValidatingWebhookConfiguration", "stella.io")
    assert got_m["webhooks"] == want_m["webhooks"]
    assert got_v["webhooks"] == want_v["webhooks"]
    assert "service:" not in yaml.safe_dump_all([got_m, got_v])


def test_evidence_log_is_required_so_chains_survive_a_pod_restart() -> None:
    out = render(f"image.digest={DIGEST}")
    assert out.returncode != 0
    assert "evidence.log is required" in out.stderr and "emptyDir" in out.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("evidence.signer=gpg", "at '/evidence/signer': value must be one of 'vault', 'local'"),
        ("replicas=0", "at '/replicas': minimum: got 0, want 1"),
        ("webhookk.port=1", "additional properties 'webhookk' not allowed"),
        ("image.digest=sha256:abc", "at '/image/digest': 'sha256:abc' does not match pattern"),
        ("webhook.url=http://127.0.0.1:9443", "at '/webhook/url'"),
        ("evidence.log=/var/lib/stella/evidence.jsonl", "at '/evidence/log'"),
        ("httpPort=99999", "at '/httpPort': maximum"),
        ("groups.approvers=release-approvers", "at '/groups/approvers': got string, want array"),
    ],
)
def test_a_wrong_value_fails_with_a_readable_message(value: str, message: str) -> None:
    out = render(f"image.digest={DIGEST}", LOG, value)
    assert out.returncode != 0
    assert "values don't meet the specifications of the schema" in out.stderr
    assert message in out.stderr, out.stderr


def _leaves(values: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in values.items():
        path = f"{prefix}{k}"
        if (
            isinstance(v, dict)
            and v
            and path
            not in {
                "resources",
                "webhook.certManager.issuerRef",
                "console.resources",
                "admission.resources",
            }
        ):
            out += _leaves(v, path + ".")
        else:
            out.append(path)
    return out


def test_every_value_is_documented_in_the_chart_readme() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    missing = [v for v in _leaves(values) if f"| `{v}` |" not in readme]
    assert not missing, f"undocumented values in charts/stella/README.md: {missing}"
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(values) <= set(schema["properties"])


def test_release_retention_is_off_and_grants_no_delete_by_default(
    docs: list[dict[str, Any]],
) -> None:
    assert not [d for d in docs if d["metadata"]["name"] == "stella-operator-retention"]
    deploy = by_kind(docs, "Deployment", "stella-operator")
    env = {
        e["name"]: e.get("value")
        for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["STELLA_KEEP_FINISHED_RELEASES"] == "0"
    # The promotion loop has its own settings, defaulting to the Release loop's values.
    assert env["STELLA_PROMOTION_LOOP_THRESHOLD"] == env["STELLA_RELEASE_LOOP_THRESHOLD"] == "5"
    assert env["STELLA_PROMOTION_LOOP_WINDOW_SECONDS"] == "600"
    assert env["STELLA_RELEASE_LOOP_WINDOW_SECONDS"] == "600"
    # The admission server's connection bounds are the code's defaults.
    admission = by_kind(docs, "Deployment", "stella-admission")
    adm_env = {
        e["name"]: e.get("value")
        for e in admission["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert adm_env["STELLA_WEBHOOK_IDLE_SECONDS"] == "120"
    assert adm_env["STELLA_WEBHOOK_KEEPALIVE_CONNECTIONS"] == "0"  # no cap
    for d in docs:
        if d["kind"] in ("ClusterRole", "Role") and d["metadata"]["name"].startswith(
            "stella-operator"
        ):
            assert not any(
                "delete" in r["verbs"] and "releases" in r["resources"] for r in d["rules"]
            )


def test_release_retention_on_grants_delete_of_releases_only() -> None:
    objs = rendered("retention.keepFinishedReleases=20")
    role = by_kind(objs, "ClusterRole", "stella-operator-retention")
    dev = {
        (d["kind"], d["metadata"]["name"]): d
        for d in yaml.safe_load_all((ROOT / "hack" / "dev-rbac.yaml").read_text())
        if d
    }
    assert role["rules"] == dev[("ClusterRole", "stella-operator-retention")]["rules"]
    assert role["rules"] == [
        {"apiGroups": ["stella.io"], "resources": ["releases"], "verbs": ["delete"]}
    ]
    binding = by_kind(objs, "ClusterRoleBinding", "stella-operator-retention")
    assert binding["subjects"][0]["name"] == "stella-operator"
    deploy = by_kind(objs, "Deployment", "stella-operator")
    env = {
        e["name"]: e.get("value")
        for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["STELLA_KEEP_FINISHED_RELEASES"] == "20"


def test_the_promotion_loop_settings_are_set_apart_from_the_release_loops() -> None:
    deploy = by_kind(
        rendered("quotas.promotionLoopThreshold=0", "quotas.promotionLoopWindowSeconds=120"),
        "Deployment",
        "stella-operator",
    )
    env = {
        e["name"]: e.get("value")
        for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["STELLA_PROMOTION_LOOP_THRESHOLD"] == "0"  # off
    assert env["STELLA_PROMOTION_LOOP_WINDOW_SECONDS"] == "120"
    assert env["STELLA_RELEASE_LOOP_THRESHOLD"] == "5"
    out = render(f"image.digest={DIGEST}", LOG, "quotas.promotionLoopWindowSeconds=0")
    assert out.returncode != 0 and "at '/quotas/promotionLoopWindowSeconds'" in out.stderr


def test_the_evidence_log_is_reached_over_verified_tls_with_its_ca() -> None:
    docs = rendered("evidence.logCA.configMap=postgres-ca")
    pod = by_kind(docs, "Deployment", "stella-operator")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PGSSLMODE"] == "verify-full"
    assert env["PGSSLROOTCERT"] == "/etc/stella/evidence-log-ca/ca.crt"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "evidence-log-ca")
    assert mount == {
        "name": "evidence-log-ca",
        "mountPath": "/etc/stella/evidence-log-ca",
        "readOnly": True,
    }
    volume = next(v for v in pod["volumes"] if v["name"] == "evidence-log-ca")
    assert volume["configMap"] == {"name": "postgres-ca"}
    plain = rendered()
    container = by_kind(plain, "Deployment", "stella-operator")["spec"]["template"]["spec"]
    assert "PGSSLMODE" not in {e["name"] for e in container["containers"][0]["env"]}


def test_an_sslmode_that_would_override_the_ca_is_refused() -> None:
    weak = LOG + "?sslmode=require"
    out = render(f"image.digest={DIGEST}", weak, "evidence.logCA.configMap=postgres-ca")
    assert out.returncode != 0
    assert "sslmode other than verify-full while evidence.logCA is set" in out.stderr
    ok = render(
        f"image.digest={DIGEST}",
        LOG + "?sslmode=verify-full",
        "evidence.logCA.configMap=postgres-ca",
        "webhook.certManager.enabled=false",
        f"webhook.caBundle={CA}",
    )
    assert ok.returncode == 0, ok.stderr
