"""Evidence ConfigMaps on the real API server, with real OpenBao and PostgreSQL."""

from __future__ import annotations

import argparse
import base64
import io
import json
import threading
from pathlib import Path

import hvac
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tests.integration.evidence.helpers import Clock, EvidenceDb, event

from devenv.services import OpenBao
from stella.cli import evidence as cli
from stella.evidence.canonical import canonical_json
from stella.evidence.dsse import parse_envelope, sign_envelope
from stella.evidence.errors import SignerUnavailable
from stella.evidence.manifest import DATA_ENVELOPE, stored_packet
from stella.evidence.packet import OperatorInfo
from stella.evidence.recorder import Recorder, build_statement
from stella.evidence.store_configmap import ConfigMapStore
from stella.secrets.signers import LocalKeySigner, VaultTransitSigner, ensure_transit_key

CM1 = "stella-evidence-env-prod-0000000001"
CM2 = "stella-evidence-env-prod-0000000002"


def run(api: client.ApiClient, *argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="stella")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["evidence", *argv])
    args.api_client = api
    out = io.StringIO()
    return args.func(args, out), out.getvalue()


@pytest.fixture
def world(kube_admin, test_namespace, evidence_db, transit_signer):  # type: ignore[no-untyped-def]
    store = ConfigMapStore(kube_admin, test_namespace)
    rec = Recorder(transit_signer, evidence_db.log(), store, "0.1.0-test", clock=Clock())
    return rec


def verify_cli(kube_admin, ns: str, db: EvidenceDb, *extra: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    return run(kube_admin, "verify", "-n", ns, "--log", db.writer_dsn, *extra)


def test_happy_path_end_to_end(world, kube_admin, test_namespace, evidence_db, tmp_path: Path):  # type: ignore[no-untyped-def]
    rec: Recorder = world
    for n in (1, 2):
        auth = rec.record(event(n=n))
        rec.record(event(n=n, kind="PromotionDeployed"))
    rec.record(event(env="staging", n=1))
    core = client.CoreV1Api(kube_admin)
    cm = core.read_namespaced_config_map(auth.configmap, test_namespace)
    assert cm.immutable is True
    assert cm.metadata is not None and cm.metadata.labels is not None and cm.data is not None
    assert cm.metadata.labels["stella.io/environment"] == "prod"
    assert cm.metadata.labels["stella.io/kind"] == "PromotionAuthorized"
    assert cm.metadata.labels["stella.io/sequence"] == "3"
    assert cm.metadata.labels["stella.io/release"] == "shop-2"
    assert parse_envelope(cm.data[DATA_ENVELOPE]) == auth.envelope
    listed = core.list_namespaced_config_map(
        test_namespace, label_selector="stella.io/environment=prod,stella.io/release=shop-1"
    )
    assert len(listed.items) == 2

    code, out = verify_cli(kube_admin, test_namespace, evidence_db)
    assert code == 0, out
    assert "5 ConfigMaps, 5 log entries" in out

    code, out = run(kube_admin, "keys", "-n", test_namespace)
    assert code == 0 and rec.signer.key_id in out

    bundle = tmp_path / "bundle.json"
    code, out = run(
        kube_admin,
        "export",
        "-n",
        test_namespace,
        "--log",
        evidence_db.writer_dsn,
        "--out",
        str(bundle),
    )
    assert code == 0, out
    code, out = run(kube_admin, "verify", "--bundle", str(bundle))
    assert code == 0, out
    code, out = run(
        kube_admin, "show", "-n", test_namespace, "--log", evidence_db.writer_dsn, "prod#1"
    )
    assert code == 0 and "PromotionAuthorized  prod#1" in out


def test_edit_is_refused_by_the_api_server(world, kube_admin, test_namespace, evidence_db):  # type: ignore[no-untyped-def]
    rec: Recorder = world
    rec.record(event(n=1))
    core = client.CoreV1Api(kube_admin)
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map(CM1, test_namespace, {"data": {DATA_ENVELOPE: "{}"}})
    assert err.value.status == 422 and "immutable" in str(err.value.body)
    with pytest.raises(ApiException):
        core.patch_namespaced_config_map(CM1, test_namespace, {"immutable": False})
    # labels stay editable on an immutable ConfigMap: verify notices
    core.patch_namespaced_config_map(
        CM1, test_namespace, {"metadata": {"labels": {"stella.io/release": "other"}}}
    )
    code, out = verify_cli(kube_admin, test_namespace, evidence_db)
    assert code == 1 and f"label-mismatch: ConfigMap {CM1}" in out


def test_deleted_configmap_is_named(world, kube_admin, test_namespace, evidence_db):  # type: ignore[no-untyped-def]
    rec: Recorder = world
    for n in (1, 2, 3):
        rec.record(event(n=n))
    client.CoreV1Api(kube_admin).delete_namespaced_config_map(CM2, test_namespace)
    code, out = verify_cli(kube_admin, test_namespace, evidence_db)
    assert code == 1
    assert f"configmap-missing: ConfigMap {CM2}" in out
    assert "chain-gap" in out


def test_recreated_with_altered_content_is_named(world, kube_admin, test_namespace, evidence_db):  # type: ignore[no-untyped-def]
    rec: Recorder = world
    for n in (1, 2, 3):
        rec.record(event(n=n))
    core = client.CoreV1Api(kube_admin)
    cm = core.read_namespaced_config_map(CM2, test_namespace)
    assert cm.metadata is not None and cm.data is not None
    env = parse_envelope(cm.data[DATA_ENVELOPE])
    doc = json.loads(env.payload_bytes())
    doc["predicate"]["approvals"][0]["approver"] = "mallory"
    altered = env.model_copy(update={"payload": base64.b64encode(canonical_json(doc)).decode()})
    core.delete_namespaced_config_map(CM2, test_namespace)
    core.create_namespaced_config_map(
        test_namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=CM2, labels=cm.metadata.labels, annotations=cm.metadata.annotations
            ),
            immutable=True,
            data={DATA_ENVELOPE: altered.canonical().decode()},
        ),
    )
    code, out = verify_cli(kube_admin, test_namespace, evidence_db)
    assert code == 1
    assert f"signature-invalid: ConfigMap {CM2}" in out
    assert f"stores-disagree: ConfigMap {CM2}" in out


def test_rogue_key_packet_fails(world, kube_admin, test_namespace, evidence_db, tmp_path):  # type: ignore[no-untyped-def]
    rec: Recorder = world
    rec.record(event(n=1))
    # an attacker with ConfigMap rights forges packet 2, signed by their own key
    rogue = LocalKeySigner(tmp_path / "rogue.pem")
    head = rec.log.head("prod")
    assert head is not None
    st = build_statement(
        event(n=99),
        sequence=2,
        previous_digest=head.digest,
        recorded_at=Clock()(),
        operator=OperatorInfo(version="0.1.0"),
    )
    rec.store.put(stored_packet(st, sign_envelope(st.payload(), rogue)))
    code, out = verify_cli(kube_admin, test_namespace, evidence_db)
    assert code == 1
    assert f"signature-invalid: ConfigMap {CM2}" in out and rogue.key_id in out
    assert f"log-entry-missing: ConfigMap {CM2}" in out


def test_vault_down_nothing_is_deployed(kube_admin, test_namespace, evidence_db, tmp_path):  # type: ignore[no-untyped-def]
    bao = OpenBao(tmp_path / "bao").start()  # our own: stopping it disturbs no one else
    try:
        vault = hvac.Client(url=bao.addr, token=bao.root_token, timeout=2)
        ensure_transit_key(vault, "stella-evidence")
        signer = VaultTransitSigner(vault, "stella-evidence")
        store = ConfigMapStore(kube_admin, test_namespace)
        rec = Recorder(signer, evidence_db.log(), store, "0.1.0", clock=Clock())
        rec.record(event(n=1))
        bao.stop()
        with pytest.raises(SignerUnavailable) as err:
            rec.record(event(n=2))
        assert err.value.transient and "Vault" in err.value.message
        assert len(rec.log.entries()) == 1 and len(store.list()) == 1
    finally:
        bao.stop()


def test_concurrent_promotions_with_configmaps(
    kube_admin: client.ApiClient,
    test_namespace: str,
    evidence_db: EvidenceDb,
    transit_signer: VaultTransitSigner,
) -> None:
    workers, per_worker = 4, 6
    recs = [
        Recorder(
            transit_signer,
            evidence_db.log(),
            ConfigMapStore(kube_admin, test_namespace),
            "0.1.0",
            clock=Clock(),
        )
        for _ in range(workers)
    ]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for n in range(per_worker):
                recs[i].record(event(env=("prod", "staging")[n % 2], n=i * 100 + n))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    code, out = verify_cli(kube_admin, test_namespace, evidence_db)
    assert code == 0, out
    assert "prod#12" in out and "staging#12" in out
