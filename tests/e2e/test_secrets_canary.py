"""Threat T1 in the running operator: a secret read from Vault is used, and goes nowhere else.

A random canary is the registry password. It lives in Vault and in the registry's htpasswd
file, nowhere in the test's Kubernetes objects. After a full promotion through dev and
staging (bob approves), and a tampered release that halts dev (error paths, Events,
evidence, all while the credentials are in use), the canary is searched for — raw and
base64-encoded — in every object of every listable resource type the API server holds
(all namespaces, managed fields and annotations included, Secret data decoded), in the
operator's log (run with --verbose), in /metrics and in every file under the operator's
state dir (the evidence log). It must be found in none of them.

So that the test can fail: the canary is read back from Vault (it is there), and a decoy
planted in a Secret and in a ConfigMap annotation is found by the very same search."""

from __future__ import annotations

import base64
import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client
from tests.e2e.conftest import OperatorProcess, running_operator, vault_env
from tests.e2e.shop import Shop
from tests.kube_support import eventually

from devenv.controlplane import ControlPlane
from devenv.services import OpenBao, Registry, basic_auth, push_image

USER = "stella"
CANARY = "canary-" + uuid.uuid4().hex
DECOY = "decoy-" + uuid.uuid4().hex


def b64_needles(value: str) -> list[str]:
    """Substrings that any base64 encoding of a text containing ``value`` must contain,
    whatever the value's offset (mod 3) in that text — the edge groups are dropped."""
    out = []
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + value.encode()).decode().rstrip("=")
        out.append(enc[4 if k else 0 : -4])
    return out


def needles(value: str) -> list[str]:
    return [value, *b64_needles(value)]


def find(value: str, haystacks: dict[str, str]) -> list[str]:
    """Names of the haystacks holding the value, raw or base64-encoded."""
    return [name for name, text in haystacks.items() if any(n in text for n in needles(value))]


def api_objects(kube: ControlPlane) -> dict[str, str]:
    """Every object of every listable resource type, as admin: {"<resource> <ns>/<name>": json}.

    Managed fields are kept (kubectl strips them by default); Secret data is also decoded."""
    names = kube.kubectl("admin", "api-resources", "--verbs=list", "-o", "name").stdout.split()
    assert "secrets" in names and "events" in names and "configmaps" in names
    assert any(n.startswith("releases.") for n in names)
    out = kube.kubectl(
        "admin",
        "get",
        ",".join(names),
        "-A",
        "-o",
        "json",
        "--show-managed-fields=true",
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    items = json.loads(out.stdout)["items"]
    assert len(items) > 50, len(items)
    found: dict[str, str] = {}
    for obj in items:
        meta = obj.get("metadata") or {}
        key = f"{obj.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}"
        text = json.dumps(obj)
        if obj.get("kind") == "Secret":
            text += " " + " ".join(
                base64.b64decode(v).decode(errors="replace")
                for v in (obj.get("data") or {}).values()
            )
        found[key] = text
    return found


@pytest.fixture(scope="module")
def canary_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = Registry(tmp_path_factory.mktemp("canary-registry"), htpasswd={USER: CANARY}).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def canary_operator(
    kube: ControlPlane,
    openbao: OpenBao,
    registry: Registry,
    canary_registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    work = tmp_path_factory.mktemp("canary-e2e")
    with running_operator(
        kube,
        work / "operator",
        {
            **vault_env(openbao.addr, openbao.root_token, work),
            "STELLA_INSECURE_REGISTRIES": f"{registry.host},{canary_registry.host}",
        },
    ) as op:
        yield op


def test_canary_secret_never_leaves_vault(
    canary_operator: OperatorProcess,
    shop: Shop,
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    openbao: OpenBao,
    canary_registry: Registry,
) -> None:
    bao = hvac.Client(url=openbao.addr, token=openbao.root_token)
    path = f"registry/{shop.prefix}-canary"
    bao.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"username": USER, "password": CANARY}
    )
    creds: dict[str, Any] = {
        "allowedRegistries": [canary_registry.host],
        "registryCredentials": f"vault:secret/{path}#password",
    }
    shop.environment("dev", **creds)
    shop.environment(
        "staging",
        requires=["dev"],
        approvals={"required": 1, "approverGroups": ["release-approvers"]},
        **creds,
    )
    auth = basic_auth(USER, CANARY)
    repo = f"{shop.prefix}/web"
    image = f"{canary_registry.host}/{repo}@" + push_image(
        canary_registry.url, repo, "1.0", f"canary {uuid.uuid4()}".encode(), auth
    )

    # A full promotion: dev by itself, staging after bob's approval.
    shop.release("rel-1", image, ["dev", "staging"])
    shop.wait_phase("rel-1", "dev", "Deployed")
    shop.wait_phase("rel-1", "staging", "WaitingForApproval")
    shop.approve("rel-1", "staging", "bob")
    shop.wait_phase("rel-1", "staging", "Deployed")
    assert shop.deployed_image("staging") == image

    # And an error path while the credentials are in use: a deleted manifest halts dev.
    gone_digest = push_image(
        canary_registry.url, repo, "1.1", f"gone {uuid.uuid4()}".encode(), auth
    )
    req = urllib.request.Request(
        f"{canary_registry.url}/v2/{repo}/manifests/{gone_digest}",
        method="DELETE",
        headers={"Authorization": auth},
    )
    urllib.request.urlopen(req).close()
    shop.release("rel-2", f"{canary_registry.host}/{repo}@{gone_digest}", ["dev"])
    shop.wait_phase("rel-2", "dev", "Failed")
    eventually(lambda: shop.environment_status("dev").get("halted"), what="dev halted")

    # Decoys, planted where the search must look: Secret data and an annotation.
    core = client.CoreV1Api(kube_admin)
    core.create_namespaced_secret(
        shop.release_ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="decoy"), string_data={"password": DECOY}
        ),
    )
    core.create_namespaced_config_map(
        shop.release_ns,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="decoy", annotations={"note": f"x{DECOY}y"})
        ),
    )

    # ---- the search ----
    objects = api_objects(kube)
    with urllib.request.urlopen(f"{canary_operator.url}/metrics", timeout=5) as r:
        metrics_body = r.read().decode()
    state = Path(canary_operator.env["STELLA_STATE_DIR"])
    state_files = {
        f"file {p}": p.read_text(errors="replace") for p in state.rglob("*") if p.is_file()
    }
    assert any("evidence" in name and text.strip() for name, text in state_files.items()), (
        "the evidence log under the state dir is missing or empty"
    )
    logs = canary_operator.logs()
    assert "rel-1" in logs and len(logs) > 10_000  # a verbose log of the whole promotion
    haystacks = {**objects, **state_files, "operator log": logs, "/metrics": metrics_body}

    # The search finds what is there...
    assert sorted(find(DECOY, objects)) == [
        f"ConfigMap {shop.release_ns}/decoy",
        f"Secret {shop.release_ns}/decoy",
    ]
    read = bao.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=True)
    assert read["data"]["data"]["password"] == CANARY
    # ...and the canary is nowhere but in Vault.
    assert find(CANARY, haystacks) == []
    # The Events of the halt were searched too (the error path ran with the credentials).
    assert any(
        "ManifestNotFound" in text for name, text in objects.items() if name.startswith("Event ")
    )
