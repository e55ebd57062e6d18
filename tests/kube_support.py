"""Helpers for tests that talk to the real local control plane."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client, config

T = TypeVar("T")


def api_client_for(kubeconfig: str, context: str | None) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, context=context, client_configuration=cfg
    )
    return client.ApiClient(cfg)


def custom_objects(api: client.ApiClient) -> Any:
    """client.CustomObjectsApi(api), typed Any: kubernetes 37 types what its reads return
    as object, and tests read them as the dicts they are."""
    return client.CustomObjectsApi(api)


def eventually(
    check: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Poll until check() returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last  # type: ignore[no-any-return]  # truthy: a T, not None
        time.sleep(interval)
    if isinstance(last, client.ApiException):  # its repr says nothing of why
        last = f"HTTP {last.status}: {str(last.body)[:500]}"
    raise AssertionError(f"{what} not reached in {timeout:.0f}s; last seen: {last!r}")


def refused_by_policy(call: Callable[[], Any], policy: str, *says: str) -> str:
    """The call is refused (403) by the ValidatingAdmissionPolicy `policy`, saying `says`;
    an AssertionError otherwise (so eventually() can poll it)."""
    try:
        call()
    except client.ApiException as exc:
        msg = str(json.loads(exc.body).get("message", exc.body)) if exc.body else str(exc)
        assert exc.status == 403, (exc.status, msg)
        assert f"ValidatingAdmissionPolicy '{policy}'" in msg, msg
        for s in says:
            assert s in msg, (s, msg)
        return msg
    raise AssertionError(f"admitted, but {policy} should have refused it")


PARAMS_BINDING = "workload-digests.stella.io"


def wait_for_digest_params(admin: client.ApiClient, namespace: str, timeout: float = 30.0) -> None:
    """After labelling a namespace stella.io/managed=true: wait for the operator's
    stella-approved-digests ConfigMap there, without which the API server's policy refuses
    every workload of the namespace (fail closed). No-op when the policies are not installed."""
    reg = client.AdmissionregistrationV1Api(admin)
    try:
        reg.read_validating_admission_policy_binding(PARAMS_BINDING)
    except client.ApiException as exc:
        if exc.status == 404:
            return
        raise
    core = client.CoreV1Api(admin)
    eventually(
        lambda: core.read_namespaced_config_map("stella-approved-digests", namespace),
        timeout,
        what=f"the operator's stella-approved-digests ConfigMap in {namespace}",
    )


RELEASE_BINDING = "release-create.stella.io"


def wait_for_release_params(
    admin: client.ApiClient, *environments: str, timeout: float = 30.0
) -> None:
    """After creating Environments: wait until the operator has published them in
    stella-release-params, by which the API server's release-create policy judges a
    Release CREATE (until then a Release naming them is refused: "retry in a few
    seconds"). No-op when the policies are not installed."""
    reg = client.AdmissionregistrationV1Api(admin)
    try:
        binding = reg.read_validating_admission_policy_binding(RELEASE_BINDING)
    except client.ApiException as exc:
        if exc.status == 404:
            return
        raise
    core = client.CoreV1Api(admin)
    ref = binding.spec.param_ref  # where this control plane's operator publishes it
    assert ref is not None and ref.name and ref.namespace, binding.spec
    name, namespace = ref.name, ref.namespace

    def published() -> bool:
        data = core.read_namespaced_config_map(name, namespace).data
        return all(f"registries.{e}" in (data or {}) for e in environments)

    eventually(published, timeout, what=f"Environments {', '.join(environments)} published")
    if environments:
        # The API server reads the parameter through an informer of its own, a moment
        # after the write: a dry-run Release naming them is judged by it once it has.
        eventually(
            lambda: _policy_knows(admin, namespace, environments),
            timeout,
            what=f"the release-create policy to know {', '.join(environments)}",
        )


NOT_YET_PUBLISHED = ("has not told admission yet", "no params found")


def _policy_knows(admin: client.ApiClient, namespace: str, environments: tuple[str, ...]) -> bool:
    probe = {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Release",
        "metadata": {"generateName": "params-probe-"},
        "spec": {
            "version": "0.0.0",
            "environments": list(environments),
            "components": [
                {
                    "name": "probe",
                    "image": "registry.example.com/probe@sha256:" + "0" * 64,
                    "workload": {"kind": "Deployment", "name": "probe", "container": "probe"},
                }
            ],
        },
    }
    try:
        client.CustomObjectsApi(admin).create_namespaced_custom_object(
            "stella.io", "v1alpha1", namespace, "releases", probe, dry_run="All"
        )
    except client.ApiException as exc:
        # Refused for another reason (its registry, its namespace): judged by the parameter.
        return not any(phrase in str(exc.body) for phrase in NOT_YET_PUBLISHED)
    return True


def evidence_packets(
    admin: client.ApiClient, env: str, namespace: str = "stella-system"
) -> list[dict[str, Any]]:
    """The in-toto predicates of an Environment's evidence packets (immutable ConfigMaps),
    in chain order."""
    cms = (
        client.CoreV1Api(admin)
        .list_namespaced_config_map(
            namespace, label_selector=f"stella.io/evidence=packet,stella.io/environment={env}"
        )
        .items
    )
    out = []
    for cm in cms:
        assert cm.immutable is True
        assert cm.data is not None, cm.metadata
        envelope = json.loads(cm.data["envelope.json"])
        out.append(json.loads(base64.b64decode(envelope["payload"]))["predicate"])
    return sorted(out, key=lambda p: p["sequence"])


def metric_sum(body: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples with these labels, in a /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def service_account_kubeconfig(
    admin: client.ApiClient, server: str, ca_file: str, namespace: str, name: str, path: Any
) -> Any:
    """A kubeconfig file with a fresh token (TokenRequest) of a ServiceAccount, e.g. the
    console's own stella-system/stella-console."""
    import yaml

    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    token = client.CoreV1Api(admin).create_namespaced_service_account_token(
        name, namespace, request
    )
    assert token.status is not None, token
    cluster = {"server": server, "certificate-authority": ca_file}
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": name, "user": {"token": token.status.token}}],
                "contexts": [{"name": name, "context": {"cluster": "c", "user": name}}],
                "current-context": name,
            }
        )
    )
    path.chmod(0o600)
    return path


def install_argocd_crd(kube: Any) -> None:
    """Argo CD's own CRDs (Application, AppProject; from its Go module's manifests/crds:
    hack/build-binaries.sh argocd), established."""
    from devenv.argocd import MANIFESTS

    crds = sorted((MANIFESTS / "crds").glob("*-crd.yaml"))
    assert crds, f"Argo CD's CRDs are not in {MANIFESTS}/crds; run `make binaries`"
    for crd in crds:
        done = kube.kubectl("admin", "apply", "--server-side", "-f", str(crd), check=False)
        assert done.returncode == 0, done.stderr
    # (kubectl wait trips over this CRD file's empty status until the API server sets it.)
    established = '{.status.conditions[?(@.type=="Established")].status}'
    for name in ("applications.argoproj.io", "appprojects.argoproj.io"):

        def is_established(name: str = name) -> bool:
            got = kube.kubectl(
                "admin", "get", f"crd/{name}", "-o", f"jsonpath={established}", check=False
            )
            return bool(got.stdout == "True")

        eventually(is_established, timeout=60, what=f"Argo CD's CRD {name} established")


def start_console(
    admin: client.ApiClient, server: str, ca_file: str, workdir: Any, env: dict[str, str]
) -> tuple[Any, int, Any, Any]:
    """`stella web` as its own process: a serving certificate for 127.0.0.1, a free port,
    the console's own ServiceAccount token, and `env` (vault, limits, ...). Returns
    (process, port, the CA that signed its certificate, the certificate)."""
    import sys
    from pathlib import Path

    from devenv.proc import Process, free_port
    from devenv.webhooks import make_serving_cert

    ca, crt, key = make_serving_cert(workdir / "pki")
    port = free_port()
    kubeconfig = service_account_kubeconfig(
        admin, server, ca_file, "stella-system", "stella-console", workdir / "kubeconfig"
    )
    stella = str(Path(sys.executable).parent / "stella")
    proc = Process(
        "stella-web",
        [stella, "web", "--cert", str(crt), "--key", str(key), "--port", str(port)],
        workdir / "console.log",
        env={"KUBECONFIG": str(kubeconfig), "PYTHONUNBUFFERED": "1", **env},
    ).start()
    return proc, port, ca, crt


def grant_release_retention(admin: client.ApiClient) -> None:
    """Bind hack/dev-rbac.yaml's stella-operator-retention (delete on releases) to the
    operator, as the chart does when retention.keepFinishedReleases > 0."""
    from devenv.controlplane import OPERATOR_USER

    body: Any = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "stella-operator-retention"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "stella-operator-retention",
        },
        "subjects": [
            {"kind": "User", "name": OPERATOR_USER, "apiGroup": "rbac.authorization.k8s.io"}
        ],
    }
    try:
        client.RbacAuthorizationV1Api(admin).create_cluster_role_binding(body)
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def grant_configmap_writes(admin: client.ApiClient, namespace: str, *users: str) -> None:
    """Let `users` write ConfigMaps in `namespace` through plain RBAC (as a cluster's own
    Role would let its platform team), and wait until the grant is in force. Idempotent."""
    rbac = client.RbacAuthorizationV1Api(admin)
    rules = [
        client.V1PolicyRule(
            api_groups=[""],
            resources=["configmaps"],
            verbs=["get", "list", "create", "update", "patch", "delete"],
        )
    ]
    ref = client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="cm-writer")
    bodies: list[tuple[Callable[..., Any], Any]] = [
        (
            rbac.create_namespaced_role,
            client.V1Role(metadata=client.V1ObjectMeta(name="cm-writer"), rules=rules),
        )
    ]
    for user in users:
        subject = client.RbacV1Subject(
            kind="User", name=user, api_group="rbac.authorization.k8s.io"
        )
        meta = client.V1ObjectMeta(name=f"cm-writer-{user}")
        bodies.append(
            (
                rbac.create_namespaced_role_binding,
                client.V1RoleBinding(metadata=meta, role_ref=ref, subjects=[subject]),
            )
        )
    for create, body in bodies:
        try:
            create(namespace, body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    authz = client.AuthorizationV1Api(admin)
    for user in users:
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace, verb="create", resource="configmaps"
                ),
            )
        )

        def allowed(r: client.V1SubjectAccessReview = review) -> bool:
            status = authz.create_subject_access_review(r).status
            return status is not None and status.allowed

        eventually(
            allowed,
            what=f"{user} may write ConfigMaps in {namespace}",
        )
