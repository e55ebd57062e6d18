"""The agent hub over real mTLS on loopback, with Agents on the real API server and the
CA in a real OpenBao: enrolment once per token, sessions bound to the certificate,
rotation with reuse detection, capability and network checks, revocation, and a
certificate from another CA refused at the handshake. Each refusal raises its signal."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client
from tests.kube_support import eventually

from devenv.proc import free_port
from devenv.services import OpenBao
from devenv.webhooks import make_serving_cert
from stella.agents import enrollment, hub, tokens
from stella.agents.ca import AgentCA
from stella.agents.client import HubClient, HubError, Identity
from stella.agents.kube_store import KubeAgentStore
from stella.agents.tokens import TokenService
from stella.handlers.agent_hub import AgentHubServer
from stella.secrets import SecretValue, TokenAuth, VaultClient, VaultSettings

G, V = "stella.io", "v1alpha1"


class World:
    def __init__(self, admin: client.ApiClient, url: str, hub_ca: Path, tmp: Path) -> None:
        self.admin = admin
        self.url = url
        self.hub_ca = hub_ca
        self.tmp = tmp
        self.signals: list[str] = []
        self.names: list[str] = []
        self.hub: hub.Hub | None = None
        self.secret_reads: list[str] = []  # the Vault references the hub read

    def agent(
        self, networks: list[str] | None = None, expires: timedelta = timedelta(hours=1)
    ) -> tuple[str, str]:
        """A new Agent with a pending registration token: (name, token)."""
        token, digest = enrollment.new_token()
        name = f"a-{uuid.uuid4().hex[:6]}"
        client.CustomObjectsApi(self.admin).create_cluster_custom_object(
            G,
            V,
            "agents",
            {
                "apiVersion": f"{G}/{V}",
                "kind": "Agent",
                "metadata": {"name": name},
                "spec": {
                    "capabilities": ["deploy.kubernetes"],
                    "allowedNetworks": networks if networks is not None else ["127.0.0.0/8"],
                    "enrollment": {
                        "tokenSha256": digest,
                        "expiresAt": (datetime.now(UTC) + expires).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    },
                },
            },
        )
        self.names.append(name)
        return name, token

    def get(self, name: str) -> dict[str, Any]:
        got = client.CustomObjectsApi(self.admin).get_cluster_custom_object(G, V, "agents", name)
        return dict(cast(dict[str, Any], got))

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        client.CustomObjectsApi(self.admin).patch_cluster_custom_object(
            G, V, "agents", name, {"spec": spec}
        )

    def enrolled(self, name: str, token: str) -> Identity:
        identity = Identity(self.tmp / name)
        out = HubClient(self.url, self.hub_ca).enroll(name, token, identity.new_csr(name))
        identity.keep(out["certificate"], out["ca"])
        return identity

    def client(self, identity: Identity) -> HubClient:
        return HubClient(self.url, self.hub_ca, identity)

    def task(self, agent: str, environment: str) -> str:
        """A new AgentTask for `agent` deploying to `environment`: its name."""
        task = f"t-{uuid.uuid4().hex[:8]}"
        deadline = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        client.CustomObjectsApi(self.admin).create_namespaced_custom_object(
            G,
            V,
            "stella-system",
            "agenttasks",
            {
                "apiVersion": f"{G}/{V}",
                "kind": "AgentTask",
                "metadata": {"name": task, "labels": {"stella.io/agent": agent}},
                "spec": {
                    "agent": agent,
                    "environment": environment,
                    "release": {"namespace": "shop", "name": "r", "uid": str(uuid.uuid4()),
                                "version": "1.0.0"},
                    "namespace": "shop",
                    "components": [
                        {
                            "name": "web",
                            "image": "registry.example.com/web@sha256:" + "a" * 64,
                            "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                        }
                    ],
                    "deadline": deadline,
                },
            },
        )  # fmt: skip
        return task


@pytest.fixture(scope="module")
def world(
    kube_admin: client.ApiClient, openbao: OpenBao, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("hub")
    vault = VaultClient(
        VaultSettings(addr=openbao.addr, auth=TokenAuth(token=SecretValue(openbao.root_token)))
    )
    ca = AgentCA(vault, mount=f"pki-{uuid.uuid4().hex[:6]}", ttl="1h")
    ca.ensure()
    w: World

    def secrets(ref: str) -> dict[str, str]:  # as handlers/agent_hub.py reads them
        w.secret_reads.append(ref)
        values = vault.read_keys(ref, "username")
        return {"username": values["username"].reveal(), "password": values["password"].reveal()}

    the_hub = hub.Hub(
        ca,
        TokenService(),
        KubeAgentStore(kube_admin),
        signal=lambda s, _a, _m: w.signals.append(s),
        secrets=secrets,
    )
    hub_ca, crt, key = make_serving_cert(tmp / "serving")
    port = free_port()
    server = AgentHubServer(the_hub, "127.0.0.1", port, str(crt), str(key), client_ca=ca.ca_pem())
    server.start()
    w = World(kube_admin, f"https://127.0.0.1:{port}", hub_ca, tmp)
    w.hub = the_hub
    yield w
    server.stop()
    for name in w.names:
        client.CustomObjectsApi(kube_admin).delete_cluster_custom_object(G, V, "agents", name)


def _refused(fn: Any, status: int) -> str:
    with pytest.raises(HubError) as err:
        fn()
    assert err.value.status == status, err.value
    return err.value.message


def test_enrol_once_log_in_and_heartbeat(world: World) -> None:
    name, token = world.agent()
    identity = world.enrolled(name, token)
    status = world.get(name)["status"]
    assert status["state"] == "Registered"
    assert status["enrolledTokenSha256"] == enrollment.token_hash(token)
    cert = x509.load_pem_x509_certificate(identity.cert.read_bytes())
    assert status["certificate"]["fingerprint"] == cert.fingerprint(hashes.SHA256()).hex()
    assert oct(identity.key.stat().st_mode)[-3:] == "600"
    assert token not in str(world.get(name))  # only the hash is ever stored

    # The same token again: refused, and a signal.
    again = Identity(world.tmp / f"{name}-again")
    msg = _refused(
        lambda: HubClient(world.url, world.hub_ca).enroll(name, token, again.new_csr(name)), 403
    )
    assert "used already" in msg and world.signals[-1] == enrollment.ENROLL_REUSED

    session = world.client(identity).login()
    out = world.client(identity).heartbeat(session["accessToken"], ["deploy.kubernetes"])
    assert out == {"agent": name, "state": "Online"}
    status = world.get(name)["status"]
    assert status["state"] == "Online" and status["sourceAddress"] == "127.0.0.1"
    assert status["reportedCapabilities"] == ["deploy.kubernetes"]
    (cond,) = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Ready", "True", "Heartbeat")

    # Silent past the window: the hub's sweep marks it Offline (Ready False).
    assert world.hub is not None
    stale = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    client.CustomObjectsApi(world.admin).patch_cluster_custom_object_status(
        G, V, "agents", name, {"status": {"lastHeartbeat": stale}}
    )
    assert name in world.hub.mark_offline()
    status = world.get(name)["status"]
    assert status["state"] == "Offline"
    (cond,) = status["conditions"]
    assert (cond["status"], cond["reason"]) == ("False", "HeartbeatMissed")
    assert name not in world.hub.mark_offline()  # once


def test_capabilities_beyond_the_enrolment_are_refused(world: World) -> None:
    name, token = world.agent()
    identity = world.enrolled(name, token)
    access = world.client(identity).login()["accessToken"]
    msg = _refused(
        lambda: world.client(identity).heartbeat(access, ["deploy.kubernetes", "exec.plugin"]), 403
    )
    assert "exec.plugin" in msg and world.signals[-1] == hub.CAPABILITY_MISMATCH


def test_refresh_rotates_and_reuse_revokes_the_session(world: World) -> None:
    name, token = world.agent()
    identity = world.enrolled(name, token)
    c = world.client(identity)
    first = c.login()
    second = c.refresh(first["refreshToken"])
    assert second["refreshToken"] != first["refreshToken"]
    _refused(lambda: c.refresh(first["refreshToken"]), 401)
    assert world.signals[-1] == tokens.REFRESH_REUSED
    _refused(lambda: c.heartbeat(second["accessToken"], []), 401)


def test_expired_or_unknown_tokens_and_other_networks_are_refused(world: World) -> None:
    name, token = world.agent(expires=timedelta(seconds=-5))
    ident = Identity(world.tmp / name)
    _refused(
        lambda: HubClient(world.url, world.hub_ca).enroll(name, token, ident.new_csr(name)), 403
    )
    assert world.signals[-1] == enrollment.ENROLL_EXPIRED
    other, _ = enrollment.new_token()
    name2, _token2 = world.agent()
    _refused(
        lambda: HubClient(world.url, world.hub_ca).enroll(name2, other, ident.new_csr(name2)), 403
    )
    assert world.signals[-1] == enrollment.ENROLL_INVALID
    # An Agent allowed only from 10.0.0.0/8 cannot enrol from loopback.
    name3, token3 = world.agent(networks=["10.0.0.0/8"])
    msg = _refused(
        lambda: HubClient(world.url, world.hub_ca).enroll(name3, token3, ident.new_csr(name3)), 403
    )
    assert "127.0.0.1" in msg and world.signals[-1] == enrollment.NETWORK_REFUSED
    assert "status" not in world.get(name3) or not world.get(name3)["status"].get("certificate")


def test_revocation_takes_effect_at_the_next_request(world: World) -> None:
    name, token = world.agent()
    identity = world.enrolled(name, token)
    c = world.client(identity)
    access = c.login()["accessToken"]
    world.patch_spec(name, {"revoked": True})
    _refused(lambda: c.heartbeat(access, []), 403)
    assert world.signals[-1] == enrollment.AGENT_REVOKED
    _refused(c.login, 403)


def test_no_certificate_or_a_certificate_from_another_ca_gets_nothing(world: World) -> None:
    name, token = world.agent()
    world.enrolled(name, token)
    _refused(lambda: HubClient(world.url, world.hub_ca).login(), 401)
    # A self-made certificate with the agent's name: the TLS handshake refuses it.
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.agents.stella.internal")])
    now = datetime.now(UTC)
    forged = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    d = world.tmp / f"{name}-forged"
    d.mkdir()
    (d / "agent.crt").write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    (d / "agent.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    before = world.signals.count(hub.UNTRUSTED_CERTIFICATE)
    with pytest.raises(
        (requests.exceptions.SSLError, requests.exceptions.ConnectionError, ssl.SSLError)
    ):
        world.client(Identity(d)).login()
    # ... and says so: a security signal, though no request reached the hub.
    eventually(
        lambda: world.signals.count(hub.UNTRUSTED_CERTIFICATE) > before,
        timeout=10,
        what="the refused certificate signalled",
    )


def test_renewal_replaces_the_certificate_and_retires_the_old_one(world: World) -> None:
    name, token = world.agent()
    identity = world.enrolled(name, token)
    old_fp = world.get(name)["status"]["certificate"]["fingerprint"]
    c = world.client(identity)
    access = c.login()["accessToken"]
    out = c.renew(access, identity.new_csr(name))
    old_cert = identity.cert.read_text()
    old_key = identity.key.read_bytes()
    identity.keep(out["certificate"], out["ca"])
    assert world.get(name)["status"]["certificate"]["fingerprint"] != old_fp
    assert world.client(identity).login()["accessToken"]
    # The old certificate (with its key) no longer logs in.
    d = world.tmp / f"{name}-old"
    d.mkdir()
    (d / "agent.crt").write_text(old_cert)
    (d / "agent.key").write_bytes(old_key)
    _refused(world.client(Identity(d)).login, 403)
    assert world.signals[-1] == hub.UNKNOWN_CERTIFICATE


def test_task_credentials_go_to_one_request_and_again_only_to_it(world: World) -> None:
    """T8 with a lost answer: the request that spent a task's credentials gets them again
    with its key (from its certificate), while the task has applied nothing; another key,
    or none, is a replay; a malformed key is refused before anything is spent."""
    import secrets

    from stella.agents.task_credentials import request_digest

    name, token = world.agent()
    identity = world.enrolled(name, token)
    hub_client = world.client(identity)
    access = hub_client.login()["accessToken"]
    task = world.task(name, "nowhere")
    api: Any = client.CustomObjectsApi(world.admin)  # its reads return object
    try:
        _refused(lambda: hub_client.credentials(access, task, "short"), 400)
        assert "credentialsIssued" not in (
            api.get_namespaced_custom_object(G, V, "stella-system", "agenttasks", task).get(
                "status"
            )
            or {}
        )
        key = secrets.token_urlsafe(32)
        assert hub_client.credentials(access, task, key) == []
        assert hub_client.credentials(access, task, key) == []  # its answer lost: again
        status = api.get_namespaced_custom_object(G, V, "stella-system", "agenttasks", task)[
            "status"
        ]
        cert = x509.load_pem_x509_certificate(identity.cert.read_bytes())
        fp = cert.fingerprint(hashes.SHA256()).hex()
        assert status["credentialsIssued"] is True
        assert status["credentialsRequest"] == request_digest(fp, key)
        assert key not in str(status)
        before = world.signals.count(hub.CREDENTIALS_REPLAY)
        for other in (secrets.token_urlsafe(32), None):
            msg = _refused(lambda o=other: hub_client.credentials(access, task, o), 409)
            assert "handed out already" in msg
        assert world.signals.count(hub.CREDENTIALS_REPLAY) == before + 2
        # Once the agent applied, not even the same request gets them.
        hub_client.report(access, task, "Running", {"message": "applied"})
        assert "applied its images" in _refused(
            lambda: hub_client.credentials(access, task, key), 409
        )
        assert world.signals.count(hub.CREDENTIALS_REPLAY) == before + 2
    finally:
        api.delete_namespaced_custom_object(G, V, "stella-system", "agenttasks", task)


def test_task_credentials_go_only_to_listed_registries(world: World, openbao: OpenBao) -> None:
    """T1/T9: an Environment with registryCredentials and no allowedRegistries (stored
    before admission refused that) hands its agents' tasks no credentials, and Vault is
    not read; once it lists a registry, a task gets them for that host only."""
    import secrets

    import hvac

    path = f"registry/hub-{uuid.uuid4().hex[:6]}"
    hvac.Client(url=openbao.addr, token=openbao.root_token).secrets.kv.v2.create_or_update_secret(
        path=path, secret={"username": "stella", "password": "hub-s3cret"}
    )
    env = f"e-{uuid.uuid4().hex[:6]}"
    api = client.CustomObjectsApi(world.admin)
    api.create_cluster_custom_object(
        G,
        V,
        "environments",
        {
            "apiVersion": f"{G}/{V}",
            "kind": "Environment",
            "metadata": {"name": env},
            "spec": {"registryCredentials": f"vault:secret/{path}#password"},
        },
    )
    name, token = world.agent()
    hub_client = world.client(world.enrolled(name, token))
    access = hub_client.login()["accessToken"]
    tasks = [world.task(name, env)]
    try:
        reads = len(world.secret_reads)
        assert hub_client.credentials(access, tasks[0], secrets.token_urlsafe(32)) == []
        assert len(world.secret_reads) == reads  # Vault not read

        api.patch_cluster_custom_object(
            G, V, "environments", env, {"spec": {"allowedRegistries": ["registry.example.com"]}}
        )
        tasks.append(world.task(name, env))
        got = hub_client.credentials(access, tasks[1], secrets.token_urlsafe(32))
        assert [(g["hosts"], g["username"], g["password"]) for g in got] == [
            (["registry.example.com"], "stella", "hub-s3cret")
        ]
        assert world.secret_reads[reads:] == [f"vault:secret/{path}#password"]
    finally:
        for task in tasks:
            api.delete_namespaced_custom_object(G, V, "stella-system", "agenttasks", task)
        api.delete_cluster_custom_object(G, V, "environments", env)
