"""Encryption at rest (issue 15, T9): the local control plane's kube-apiserver encrypts
Secrets, ConfigMaps and every stella.io resource in etcd (hack/devenv/controlplane.py's
EncryptionConfiguration). Read etcd directly, through its own HTTP gateway on loopback:
a Release and an evidence ConfigMap are stored as `k8s:enc:secretbox:v1:` ciphertext with
none of their plaintext, while the API server still serves them; a Namespace (not
covered) is stored in plaintext, which proves the read would see plaintext if it were
there."""

from __future__ import annotations

import base64
import json
import stat
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client
from tests.integration.evidence.helpers import Clock, event
from tests.integration.foundation.test_control_plane import G, V, create_release, release_body

from devenv.controlplane import ENCRYPTION_KEY_NAME, ControlPlane
from stella.evidence.log_jsonl import JsonlLog
from stella.evidence.recorder import Recorder
from stella.evidence.store_configmap import ConfigMapStore
from stella.secrets.signers import LocalKeySigner

PREFIX = f"k8s:enc:secretbox:v1:{ENCRYPTION_KEY_NAME}:".encode()


def etcd_value(kube: ControlPlane, key: str) -> bytes:
    """The raw bytes etcd holds under a key (its v3 JSON gateway: keys and values base64)."""
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
    req = urllib.request.Request(
        f"{kube.etcd_url}/v3/kv/range", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        kvs = json.load(resp).get("kvs", [])
    assert len(kvs) == 1, f"etcd has no key {key}"
    return base64.b64decode(kvs[0]["value"])


def test_a_release_is_ciphertext_in_etcd(
    kube: ControlPlane, kube_as: dict[str, client.ApiClient], test_namespace: str
) -> None:
    marker = f"plaintext-marker-{uuid.uuid4().hex[:8]}"
    image = f"127.0.0.1:5000/{marker}/web@sha256:{'cd' * 32}"
    create_release(kube_as["alice"], test_namespace, release_body("enc", image=image))

    stored = etcd_value(kube, f"/registry/stella.io/releases/{test_namespace}/enc")
    assert stored.startswith(PREFIX), stored[:40]
    for plain in (marker.encode(), b"Release", b"stella.io/v1alpha1", b"alice"):
        assert plain not in stored
    read: Any = client.CustomObjectsApi(kube_as["alice"]).get_namespaced_custom_object(
        G, V, test_namespace, "releases", "enc"
    )
    assert read["spec"]["components"][0]["image"] == image


def test_an_evidence_configmap_is_ciphertext_in_etcd(
    kube: ControlPlane, kube_admin: client.ApiClient, test_namespace: str, tmp_path: Path
) -> None:
    recorder = Recorder(
        LocalKeySigner(tmp_path / "key.pem"),
        JsonlLog(tmp_path / "log.jsonl"),
        ConfigMapStore(kube_admin, test_namespace),
        "0.1.0-test",
        clock=Clock(),
    )
    packet = recorder.record(event(n=7))

    stored = etcd_value(kube, f"/registry/configmaps/{test_namespace}/{packet.configmap}")
    assert stored.startswith(PREFIX), stored[:40]
    for plain in (b"PromotionAuthorized", b"shop-7", b"payloadType", b"stella.io/evidence"):
        assert plain not in stored
    cm = client.CoreV1Api(kube_admin).read_namespaced_config_map(packet.configmap, test_namespace)
    assert cm.metadata is not None and cm.metadata.labels is not None
    assert cm.metadata.labels["stella.io/release"] == "shop-7"


def test_what_is_not_covered_is_plaintext_and_the_key_file_is_private(
    kube: ControlPlane, test_namespace: str
) -> None:
    stored = etcd_value(kube, f"/registry/namespaces/{test_namespace}")
    assert not stored.startswith(b"k8s:enc:")
    assert test_namespace.encode() in stored  # the read above sees plaintext when it is there

    config = kube.encryption_config
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    secret = config.read_text().split("secret: ", 1)[1].split()[0]
    assert len(base64.b64decode(secret)) == 32
    for log in (kube.state / "logs").glob("*.log"):
        assert secret not in log.read_text(errors="replace"), f"the key is in {log}"
