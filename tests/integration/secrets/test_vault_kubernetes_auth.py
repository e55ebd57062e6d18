"""The Kubernetes auth method end to end: a real kube-apiserver reviews a service account JWT."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from kubernetes import client

from devenv.services import OpenBao
from stella.secrets import KubernetesAuth, VaultAuthFailed, VaultClient, VaultSettings


@pytest.fixture
def service_account(kube_admin: client.ApiClient, test_namespace: str) -> Iterator[str]:
    core, rbac = client.CoreV1Api(kube_admin), client.RbacAuthorizationV1Api(kube_admin)
    core.create_namespaced_service_account(
        test_namespace,
        client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="stella-operator")),
    )
    binding = f"stella-test-auth-delegator-{test_namespace}"
    # OpenBao reviews the JWT with the JWT itself (disable_local_ca_jwt), so the account
    # needs TokenReview rights, as the chart grants the operator.
    rbac.create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=binding),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io",
                kind="ClusterRole",
                name="system:auth-delegator",
            ),
            subjects=[
                client.RbacV1Subject(
                    kind="ServiceAccount", name="stella-operator", namespace=test_namespace
                )
            ],
        )
    )
    yield "stella-operator"
    rbac.delete_cluster_role_binding(binding)


def test_kubernetes_auth_login_and_read(
    kube: object,
    kube_admin: client.ApiClient,
    test_namespace: str,
    service_account: str,
    openbao: OpenBao,
    tmp_path: Path,
) -> None:
    admin = hvac.Client(url=openbao.addr, token=openbao.root_token)
    mount = f"k8s-{uuid.uuid4().hex[:8]}"
    admin.sys.enable_auth_method("kubernetes", path=mount)
    admin.auth.kubernetes.configure(
        kubernetes_host=kube.server,  # type: ignore[attr-defined]
        kubernetes_ca_cert=Path(kube.ca_file).read_text(),  # type: ignore[attr-defined]
        disable_local_ca_jwt=True,
        mount_point=mount,
    )
    admin.sys.create_or_update_policy(
        "stella-test-k8s-read", 'path "secret/data/stella/*" { capabilities = ["read"] }'
    )
    admin.auth.kubernetes.create_role(
        name="stella",
        bound_service_account_names=[service_account],
        bound_service_account_namespaces=[test_namespace],
        policies=["stella-test-k8s-read"],
        ttl="60s",
        mount_point=mount,
    )
    path = f"stella/registry-{uuid.uuid4().hex[:8]}"
    admin.secrets.kv.v2.create_or_update_secret(path=path, secret={"token": "from-k8s-auth"})

    token = client.CoreV1Api(kube_admin).create_namespaced_service_account_token(
        service_account,
        test_namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    )
    jwt_file = tmp_path / "token"
    assert token.status is not None and token.status.token is not None
    jwt_file.write_text(token.status.token)

    vault = VaultClient(
        VaultSettings(
            addr=openbao.addr,
            auth=KubernetesAuth(role="stella", jwt_file=jwt_file, mount=mount),
        )
    )
    assert vault.read(f"vault:secret/{path}#token").reveal() == "from-k8s-auth"
    assert vault.logins == 1

    # A JWT the API server does not vouch for is refused, with a message that says so.
    jwt_file.write_text("not-a-jwt")
    stranger = VaultClient(
        VaultSettings(
            addr=openbao.addr, auth=KubernetesAuth(role="stella", jwt_file=jwt_file, mount=mount)
        )
    )
    with pytest.raises(VaultAuthFailed, match="login failed"):
        stranger.read(f"vault:secret/{path}#token")
    vault.close()
