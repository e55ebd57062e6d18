"""export -> verify --bundle offline; show; keys; and an auditor's check with openssl."""

from __future__ import annotations

import argparse
import base64
import io
import json
import subprocess
from pathlib import Path

from tests.integration.evidence.helpers import Clock, EvidenceDb, event

from stella.cli import evidence as cli
from stella.evidence.bundle import read_bundle, write_bundle
from stella.evidence.dsse import pae
from stella.evidence.recorder import Recorder
from stella.evidence.store_memory import MemoryStore
from stella.secrets.signers import VaultTransitSigner


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stella")
    cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["evidence", *argv])


def run(*argv: str) -> tuple[int, str]:
    args = parse(*argv)
    out = io.StringIO()
    return args.func(args, out), out.getvalue()


def _bundle(tmp: Path, signer: VaultTransitSigner, db: EvidenceDb) -> Path:
    store = MemoryStore()
    rec = Recorder(signer, db.log(), store, "0.1.0", clock=Clock())
    for n in range(1, 4):
        rec.record(event(n=n))
        rec.record(event(n=n, kind="PromotionDeployed"))
    rec.record(event(env="dev", n=1))
    path = tmp / "bundle.json"
    write_bundle(
        path,
        keys=store.published_keys(),
        configmaps=store.list(),
        log=rec.log.entries(),
        namespace="stella-system",
    )
    return path


def test_register_adds_the_subcommands() -> None:
    for sub in ("verify", "export", "show", "keys"):
        assert callable(
            parse(
                sub, *(["--out", "x"] if sub == "export" else []), *(["p"] if sub == "show" else [])
            ).func
        )


def test_verify_bundle_offline(tmp_path: Path, transit_signer, evidence_db) -> None:  # type: ignore[no-untyped-def]
    path = _bundle(tmp_path, transit_signer, evidence_db)
    code, out = run("verify", "--bundle", str(path))
    assert code == 0, out
    assert "evidence OK" in out and "prod#6" in out and "dev#1" in out
    code, out = run("verify", "--bundle", str(path), "--environment", "dev", "--json")
    assert code == 0 and json.loads(out)["heads"] == {"dev": 1}
    # pinned keys from an independent source (here: Vault itself)
    (tmp_path / "pinned.json").write_text(json.dumps(transit_signer.public_keys()))
    code, out = run(
        "verify", "--bundle", str(path), "--trusted-keys", str(tmp_path / "pinned.json")
    )
    assert code == 0, out


def test_verify_bundle_names_tampering(tmp_path: Path, transit_signer, evidence_db) -> None:  # type: ignore[no-untyped-def]
    path = _bundle(tmp_path, transit_signer, evidence_db)
    doc = json.loads(path.read_bytes())
    removed = doc["configMaps"].pop(2)["name"]
    doc["log"] = [e for e in doc["log"] if e["chain"] != "dev"]
    path.write_text(json.dumps(doc))
    code, out = run("verify", "--bundle", str(path))
    assert code == 1
    assert f"FAIL configmap-missing: ConfigMap {removed}" in out
    assert "log-entry-missing: ConfigMap stella-evidence-env-dev-0000000001" in out
    # and a key that is not pinned
    (tmp_path / "pinned.json").write_text("{}")
    code, out = run(
        "verify", "--bundle", str(path), "--trusted-keys", str(tmp_path / "pinned.json")
    )
    assert code == 1 and "untrusted-key" in out


def test_show_and_keys(tmp_path: Path, transit_signer, evidence_db) -> None:  # type: ignore[no-untyped-def]
    path = _bundle(tmp_path, transit_signer, evidence_db)
    code, out = run("show", "--bundle", str(path), "prod#2")
    assert code == 0, out
    assert "PromotionDeployed  prod#2" in out
    assert "signature     verified (key transit/" in out
    assert "alice [release-approvers]" in out and "not counted" in out
    assert "registry.example.com/shop/web@sha256:" in out
    code, out = run("show", "--bundle", str(path), "--json", "stella-evidence-env-prod-0000000001")
    assert code == 0 and json.loads(out)["predicate"]["sequence"] == 1
    code, out = run("keys", "--bundle", str(path), "--out-dir", str(tmp_path / "keys"))
    assert code == 0 and transit_signer.key_id in out
    assert len(list((tmp_path / "keys").glob("*.pem"))) == 1


def test_an_auditor_verifies_a_packet_with_openssl_alone(
    tmp_path: Path,
    transit_signer: VaultTransitSigner,
    evidence_db: EvidenceDb,
) -> None:
    """What docs/evidence.md tells an auditor to do, with nothing but openssl and Python's
    standard library: rebuild PAE, decode the signature, check the chain link by hand."""
    path = _bundle(tmp_path, transit_signer, evidence_db)
    b = read_bundle(path)
    cms = {c.name: json.loads(c.envelope_json) for c in b.configmaps}
    env1 = cms["stella-evidence-env-prod-0000000001"]
    env2 = cms["stella-evidence-env-prod-0000000002"]
    payload = base64.b64decode(env2["payload"])
    (tmp_path / "pae.bin").write_bytes(pae(env2["payloadType"], payload))
    (tmp_path / "sig.der").write_bytes(base64.b64decode(env2["signatures"][0]["sig"]))
    (tmp_path / "pub.pem").write_text(b.keys[env2["signatures"][0]["keyid"]])
    res = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig.der", "pae.bin"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0 and "Verified OK" in res.stdout
    # the chain link: sha256 of packet 1's payload is packet 2's previousDigest
    (tmp_path / "p1.json").write_bytes(base64.b64decode(env1["payload"]))
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-r", "p1.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    assert json.loads(payload)["predicate"]["previousDigest"] == f"sha256:{digest}"
