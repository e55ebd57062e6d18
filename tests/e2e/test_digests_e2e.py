"""Issue #6 in the running operator: before every deploy each image is verified against its
registry over the OCI distribution API, with credentials read from Vault (basic auth and
the bearer-token flow); a deleted or replaced manifest fails the deployment and halts the
Environment until a person clears it (condition, Event, metric, evidence); a registry or
Vault that is down fails closed and the same operator process recovers by itself.

One operator process serves the whole module (its own OpenBao, so that the Vault-down case
can stop it). Real parts on loopback: OpenBao dev server, the Debian docker-registry
(anonymous, htpasswd basic auth, token auth with a real token server), the API server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client
from tests.e2e.conftest import OperatorProcess, running_operator
from tests.e2e.shop import Shop
from tests.kube_support import eventually

from devenv.controlplane import ControlPlane
from devenv.services import OpenBao, Registry, basic_auth, push_image
from devenv.tokenserver import TokenServer

STELLA = str(Path(sys.executable).parent / "stella")
NS = "stella-system"
BASIC_USER, BASIC_PASSWORD = "stella", "s3cret-registry"  # the session registry_basic
FLAKY_PASSWORD = "fl4ky-" + uuid.uuid4().hex[:12]
TOKEN_USER, TOKEN_PASSWORD = "stella-ci", "t0ken-" + uuid.uuid4().hex[:12]


@dataclass
class Rig:
    op: OperatorProcess
    bao: OpenBao
    flaky: Registry  # a registry of its own, stopped and started by the registry-down case
    tokens: TokenServer
    token_registry: Registry

    def seed(self, path: str, **values: str) -> None:
        """`bao kv put secret/<path> k=v ...` as the platform team would."""
        hvac.Client(
            url=self.bao.addr, token=self.bao.root_token
        ).secrets.kv.v2.create_or_update_secret(path=path, secret=values)

    def metric(self, name: str, **labels: str) -> float:
        return self.op.metric(name, **labels)


@pytest.fixture(scope="module")
def rig(
    kube: ControlPlane,
    registry: Registry,
    registry_basic: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Rig]:
    work = tmp_path_factory.mktemp("digests-e2e")
    bao = OpenBao(work / "bao").start()
    flaky = Registry(work / "flaky", htpasswd={BASIC_USER: FLAKY_PASSWORD}).start()
    tokens = TokenServer(work / "tokens", {TOKEN_USER: TOKEN_PASSWORD}).start()
    token_registry = Registry(work / "token-registry", token_auth=tokens.registry_auth()).start()
    token_file = work / "vault-token"
    token_file.write_text(bao.root_token + "\n")
    insecure = [registry.host, registry_basic.host, flaky.host, token_registry.host, tokens.host]
    try:
        with running_operator(
            kube,
            work / "operator",
            {
                "STELLA_VAULT_ADDR": bao.addr,
                "STELLA_VAULT_AUTH": "token",
                "STELLA_VAULT_TOKEN_FILE": str(token_file),
                "STELLA_INSECURE_REGISTRIES": ",".join(insecure),
            },
        ) as op:
            yield Rig(op, bao, flaky, tokens, token_registry)
    finally:
        token_registry.stop()
        tokens.stop()
        flaky.stop()
        bao.stop()


# ---- helpers -------------------------------------------------------------------------


def push(reg: Registry, repo: str, tag: str, auth: str | None) -> str:
    """Push a unique image; return it pinned: host/repo@sha256:..."""
    digest = push_image(reg.url, repo, tag, f"{repo}:{tag} {uuid.uuid4()}".encode(), auth)
    return f"{reg.host}/{repo}@{digest}"


def digest_of(image: str) -> str:
    return image.rsplit("@", 1)[1]


def manifest_blob(reg: Registry, digest: str) -> Path:
    """Where the registry's filesystem storage keeps the bytes behind a digest."""
    hexd = digest.split(":", 1)[1]
    return reg.workdir / "registry-data/docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


def basic_env(rig: Rig, shop: Shop, reg: Registry, password: str, stage: str = "dev") -> str:
    """A Vault secret with the registry account, and an Environment referencing it."""
    path = f"registry/{shop.prefix}-{stage}"
    rig.seed(path, username=BASIC_USER, password=password)
    return shop.environment(
        stage, allowedRegistries=[reg.host], registryCredentials=f"vault:secret/{path}#password"
    )


def stella_as(kube: ControlPlane, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig_for(user))}
    return subprocess.run(
        [STELLA, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), None)


def evidence_kinds(admin: client.ApiClient, env: str) -> set[str]:
    cms: list[Any] = (  # evidence ConfigMaps: their labels are set
        client.CoreV1Api(admin)
        .list_namespaced_config_map(
            NS, label_selector=f"stella.io/evidence=packet,stella.io/environment={env}"
        )
        .items
    )
    return {cm.metadata.labels.get("stella.io/kind") for cm in cms}


def events_about(admin: client.ApiClient, namespace: str, reason: str, text: str) -> list[Any]:
    return [
        e
        for e in client.CoreV1Api(admin).list_namespaced_event(namespace).items
        if e.reason == reason and text in (e.message or "")
    ]


def wait_phase(
    shop: Shop, release: str, stage: str, phase: str, timeout: float = 60, reason: str | None = None
) -> dict[str, Any]:
    """Like Shop.wait_phase, but a timeout shows the progress last seen (phase, reason, message)."""
    last: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal last
        last = shop.progress(release, stage)
        ok = last.get("phase") == phase and (reason is None or last.get("reason") == reason)
        return last if ok else None

    try:
        return eventually(check, timeout=timeout, what=f"{release} {phase} in {stage}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; progress: {last}") from None


def untouched(shop: Shop, stage: str, before: Any) -> None:
    """Nothing deployed: the Deployment's generation and image are what they were."""
    now = shop.deployment(stage)
    assert now.metadata.generation == before.metadata.generation
    assert (
        now.spec.template.spec.containers[0].image == before.spec.template.spec.containers[0].image
    )


def assert_halted(
    rig: Rig,
    shop: Shop,
    admin: client.ApiClient,
    release: str,
    stage: str,
    reason: str,
    digest: str,
    before: Any,
    security_before: float,
) -> None:
    """The whole response to a tampered artifact, as an on-call engineer would check it."""
    env = shop.env_name(stage)
    failed = wait_phase(shop, release, stage, "Failed")
    assert failed["reason"] == reason, failed
    assert failed["message"].startswith("nothing deployed:"), failed["message"]
    assert digest in failed["message"] and "stella env clear" in failed["message"]
    untouched(shop, stage, before)
    status = shop.environment_status(stage)
    assert status["halted"]["reason"] == reason
    assert digest in status["halted"]["message"]
    halted = condition(status, "Halted")
    assert halted is not None and halted["status"] == "True" and halted["reason"] == reason
    eventually(
        lambda: (
            (c := condition(shop.environment_status(stage), "Ready"))
            and c["status"] == "False"
            and c["reason"] == "Halted"
        ),
        what=f"{env} Ready=False",
    )
    eventually(
        lambda: events_about(admin, shop.release_ns, reason, f"{env} halted"),
        what=f"Warning Event {reason} about {env}",
    )
    assert all(e.type == "Warning" for e in events_about(admin, shop.release_ns, reason, env))
    assert rig.metric("stella_security_events_total", signal=reason) >= security_before + 1
    assert rig.metric("stella_environment_halted", environment=env) == 1
    eventually(
        lambda: {"DigestMismatch", "EnvironmentHalted"} <= evidence_kinds(admin, env),
        what=f"DigestMismatch + EnvironmentHalted evidence for {env}",
    )


# ---- the cases ------------------------------------------------------------------------


def test_basic_auth_credentials_from_vault_deploy(
    rig: Rig, shop: Shop, registry_basic: Registry
) -> None:
    """registry_basic refuses anonymous pulls: the deploy proves the Vault credentials were used.
    Before the secret exists, the promotion waits with SecretNotFound and deploys nothing."""
    path = f"registry/{shop.prefix}-dev"
    shop.environment(
        "dev",
        allowedRegistries=[registry_basic.host],
        registryCredentials=f"vault:secret/{path}#password",
    )
    before = shop.deployment("dev")
    image = push(
        registry_basic, f"{shop.prefix}/web", "1.0", basic_auth(BASIC_USER, BASIC_PASSWORD)
    )
    shop.release("rel-1", image, ["dev"])
    wait_phase(shop, "rel-1", "dev", "Pending", reason="SecretNotFound")
    untouched(shop, "dev", before)

    rig.seed(path, username=BASIC_USER, password=BASIC_PASSWORD)
    deployed = wait_phase(shop, "rel-1", "dev", "Deployed", timeout=60)
    assert shop.deployed_image("dev") == image
    assert "is live" in deployed["message"]
    assert "halted" not in shop.environment_status("dev")


def test_deleted_manifest_halts_until_a_person_clears_it(
    rig: Rig, shop: Shop, kube: ControlPlane, kube_admin: client.ApiClient, registry_basic: Registry
) -> None:
    env = basic_env(rig, shop, registry_basic, BASIC_PASSWORD)
    auth = basic_auth(BASIC_USER, BASIC_PASSWORD)
    repo = f"{shop.prefix}/web"
    gone, good = push(registry_basic, repo, "1.0", auth), push(registry_basic, repo, "1.1", auth)
    req = urllib.request.Request(
        f"{registry_basic.url}/v2/{repo}/manifests/{digest_of(gone)}",
        method="DELETE",
        headers={"Authorization": auth},
    )
    with urllib.request.urlopen(req) as r:
        assert r.status == 202
    before = shop.deployment("dev")
    security = rig.metric("stella_security_events_total", signal="ManifestNotFound")

    shop.release("rel-1", gone, ["dev"])
    assert_halted(
        rig, shop, kube_admin, "rel-1", "dev", "ManifestNotFound", digest_of(gone), before, security
    )

    # A good release does not get in while the environment is halted.
    shop.release("rel-2", good, ["dev"])
    waiting = wait_phase(shop, "rel-2", "dev", "Halted")
    assert "ManifestNotFound" in waiting["message"] or "halted" in waiting["message"]
    time.sleep(3)  # a resync or two later: still nothing deployed
    assert shop.phase("rel-2", "dev") == "Halted"
    untouched(shop, "dev", before)

    # Only a person clears it, with a reason; then the waiting release goes through.
    out = stella_as(kube, "admin", "env", "clear", env, "--reason", "INC-6 manifest restored")
    assert out.returncode == 0, out.stderr
    wait_phase(shop, "rel-2", "dev", "Deployed", timeout=60)
    assert shop.deployed_image("dev") == good
    status = shop.environment_status("dev")
    assert "halted" not in status
    halted = condition(status, "Halted")
    assert halted is None or halted["status"] == "False", halted
    eventually(
        lambda: (c := condition(shop.environment_status("dev"), "Ready")) and c["status"] == "True",
        what=f"{env} Ready again",
    )
    assert rig.metric("stella_environment_halted", environment=env) == 0
    eventually(
        lambda: "EnvironmentCleared" in evidence_kinds(kube_admin, env),
        what="EnvironmentCleared evidence",
    )
    eventually(lambda: events_about(kube_admin, "default", "HaltCleared", env), what="HaltCleared")
    # The first release stays failed: clearing a halt re-deploys nothing by itself.
    assert shop.phase("rel-1", "dev") == "Failed"


def test_replaced_manifest_is_a_digest_mismatch_and_halts(
    rig: Rig, shop: Shop, kube_admin: client.ApiClient, registry_basic: Registry
) -> None:
    """The bytes behind the pinned digest are swapped in the registry's own storage: the
    registry still vouches for the digest (Docker-Content-Digest); hashing the bytes catches it."""
    basic_env(rig, shop, registry_basic, BASIC_PASSWORD)
    auth = basic_auth(BASIC_USER, BASIC_PASSWORD)
    repo = f"{shop.prefix}/web"
    pinned, other = (
        push(registry_basic, repo, "1.0", auth),
        push(registry_basic, repo, "evil", auth),
    )
    manifest_blob(registry_basic, digest_of(pinned)).write_bytes(
        manifest_blob(registry_basic, digest_of(other)).read_bytes()
    )
    before = shop.deployment("dev")
    security = rig.metric("stella_security_events_total", signal="DigestMismatch")

    shop.release("rel-1", pinned, ["dev"])
    assert_halted(
        rig, shop, kube_admin, "rel-1", "dev", "DigestMismatch", digest_of(pinned), before, security
    )


def test_registry_down_fails_closed_then_deploys(
    rig: Rig, shop: Shop, registry_basic: Registry
) -> None:
    basic_env(rig, shop, rig.flaky, FLAKY_PASSWORD)
    image = push(rig.flaky, f"{shop.prefix}/web", "1.0", basic_auth(BASIC_USER, FLAKY_PASSWORD))
    before = shop.deployment("dev")
    rig.flaky.stop()
    try:
        shop.release("rel-1", image, ["dev"])
        waiting = wait_phase(shop, "rel-1", "dev", "Pending", reason="RegistryUnavailable")
        assert waiting["message"].startswith("waiting:") and rig.flaky.host in waiting["message"]
        time.sleep(4)  # retried meanwhile: still closed, still nothing deployed, no halt
        assert shop.progress("rel-1", "dev")["phase"] == "Pending"
        untouched(shop, "dev", before)
        assert "halted" not in shop.environment_status("dev")
    finally:
        rig.flaky.start()  # same port, same storage
    wait_phase(shop, "rel-1", "dev", "Deployed", timeout=90)
    assert shop.deployed_image("dev") == image


def test_token_auth_registry_with_credentials_from_vault(rig: Rig, shop: Shop) -> None:
    reg, tokens = rig.token_registry, rig.tokens
    repo = f"{shop.prefix}/web"
    image = push(
        reg, repo, "2.0", "Bearer " + tokens.issue("pusher", [f"repository:{repo}:pull,push"])
    )
    path = f"registry/{shop.prefix}-token"
    rig.seed(path, username=TOKEN_USER, token=TOKEN_PASSWORD)
    shop.environment(
        "dev", allowedRegistries=[reg.host], registryCredentials=f"vault:secret/{path}#token"
    )
    shop.release("rel-1", image, ["dev"])
    wait_phase(shop, "rel-1", "dev", "Deployed", timeout=60)
    assert shop.deployed_image("dev") == image
    # The operator went through the challenge: a pull token for this repository, issued to
    # the user whose password only Vault held.
    assert (TOKEN_USER, f"repository:{repo}:pull") in tokens.issued


def test_vault_down_fails_closed_then_recovers_without_restart(
    rig: Rig, shop: Shop, registry_basic: Registry
) -> None:
    path = f"registry/{shop.prefix}-dev"
    basic_env(rig, shop, registry_basic, BASIC_PASSWORD)
    image = push(
        registry_basic, f"{shop.prefix}/web", "1.0", basic_auth(BASIC_USER, BASIC_PASSWORD)
    )
    before = shop.deployment("dev")
    pid = rig.op.proc.pid
    rig.bao.stop()
    try:
        shop.release("rel-1", image, ["dev"])
        waiting = wait_phase(shop, "rel-1", "dev", "Pending", reason="VaultUnavailable")
        assert waiting["message"].startswith("waiting:") and "Vault" in waiting["message"]
        time.sleep(4)
        assert shop.progress("rel-1", "dev")["phase"] == "Pending"
        untouched(shop, "dev", before)
        assert "halted" not in shop.environment_status("dev")
    finally:
        rig.bao.start()  # dev mode keeps nothing: the platform team puts the secret back
        rig.seed(path, username=BASIC_USER, password=BASIC_PASSWORD)
    wait_phase(shop, "rel-1", "dev", "Deployed", timeout=90)
    assert shop.deployed_image("dev") == image
    assert rig.op.proc.alive() and rig.op.proc.pid == pid  # the same process, never restarted
