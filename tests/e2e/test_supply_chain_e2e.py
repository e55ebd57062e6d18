"""Issue 17 in the running operator: requireSignatures and requireProvenance, checked
against the registry before deploy. Images are pushed to the real registry and signed and
attested with cosign itself (built from github.com/sigstore/cosign/v2, keys generated per
test, no transparency log); the trusted public keys live in OpenBao and the Environments
name them by Vault reference, as a platform team would.

One operator process serves the module. Each case has its own Environment (its own target
namespace and Deployment), so the cases never wait on each other's halts."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import pytest
from cryptography.hazmat.primitives import serialization
from kubernetes import client
from tests.e2e.conftest import OperatorProcess, running_operator, vault_env
from tests.e2e.shop import Shop
from tests.kube_support import eventually, evidence_packets, grant_configmap_writes
from tests.supplychain_support import BUILDER, COMMIT, REPO, Cosign, slsa_v1

from devenv.controlplane import ControlPlane
from devenv.services import OpenBao, Registry
from stella.supplychain.trust import TRUST_LABEL

NS = "stella-system"
STELLA = str(Path(sys.executable).parent / "stella")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Rig:
    op: OperatorProcess
    bao: OpenBao
    cosign: Cosign
    ci_key: Path  # the CI's signing key; its public half is trusted (in Vault)
    builder_key: Path  # the build system's provenance key; trusted for provenance
    builder_pub: Path
    evidence_pub: Path  # the operator's evidence public key, as `stella evidence keys` gives it
    evidence_log: Path  # the operator's external log (JSON lines)

    def trust(self, path: str, pem: str) -> str:
        hvac.Client(
            url=self.bao.addr, token=self.bao.root_token
        ).secrets.kv.v2.create_or_update_secret(path=path, secret={"pub": pem})
        return f"vault:secret/{path}#pub"


@pytest.fixture(scope="module")
def rig(
    kube: ControlPlane,
    registry: Registry,
    openbao: OpenBao,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Rig]:
    work = tmp_path_factory.mktemp("supply-chain-e2e")
    cosign = Cosign(work)
    ci_key, ci_pub = cosign.keypair("ci")
    builder_key, builder_pub = cosign.keypair("builder")
    with running_operator(
        kube,
        work / "operator",
        {
            **vault_env(openbao.addr, openbao.root_token, work),
            "STELLA_INSECURE_REGISTRIES": registry.host,
        },
    ) as op:
        evidence_pub = work / "evidence.pub"
        evidence_pub.write_text(public_pem(work / "operator" / "state" / "evidence-key.pem"))
        r = Rig(
            op,
            openbao,
            cosign,
            ci_key,
            builder_key,
            work / "builder.pub",
            evidence_pub,
            work / "operator" / "state" / "evidence.jsonl",
        )
        r.trust("cosign/ci", ci_pub)
        r.trust("cosign/builder", builder_pub)
        yield r


def public_pem(private_key: Path) -> str:
    key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


POLICY: dict[str, Any] = {
    "requireSignatures": {"keys": ["vault:secret/cosign/ci#pub"]},
    "requireProvenance": {
        "keys": ["vault:secret/cosign/builder#pub"],
        "builders": [BUILDER],
        "sourceRepositories": [REPO],
    },
}


def packets(admin: client.ApiClient, env: str, kind: str) -> list[dict[str, Any]]:
    """The predicates of the evidence packets of one kind for an Environment."""
    return [p for p in evidence_packets(admin, env, NS) if p["kind"] == kind]


def refused(
    shop: Shop, rig: Rig, stage: str, image: str, reason: str, **policy: Any
) -> dict[str, Any]:
    """A Release of ``image`` into a fresh Environment with ``policy``: it must fail with
    ``reason`` before anything is deployed, and leave SupplyChainRefused evidence."""
    env = shop.environment(stage, **{**POLICY, **policy})
    before = shop.deployed_image(stage)
    name = f"r{uuid.uuid4().hex[:5]}-1"
    shop.release(name, image, [stage])
    p = shop.wait_phase(name, stage, "Failed", timeout=90)
    assert p["reason"] == reason, p
    assert p["message"].startswith("nothing deployed:"), p
    assert shop.deployed_image(stage) == before  # nothing touched
    evidence = eventually(
        lambda: packets(shop.admin, env, "SupplyChainRefused"), timeout=30, what="refusal evidence"
    )
    assert evidence[0]["outcome"]["reason"] == reason
    return p


def test_an_unsigned_image_is_refused_and_the_environment_halts(shop: Shop, rig: Rig) -> None:
    image = shop.image("unsigned")
    p = refused(shop, rig, "unsigned", image, "SignatureMissing")
    assert ".sig" in p["message"] and "halted" in p["message"]
    halt = eventually(lambda: shop.environment_status("unsigned").get("halted"), what="halt")
    assert halt["reason"] == "SignatureMissing"


def test_a_signature_by_an_untrusted_key_is_refused_without_halting_when_told(
    shop: Shop, rig: Rig
) -> None:
    image = shop.image("stranger")
    stranger, _ = rig.cosign.keypair(f"stranger-{uuid.uuid4().hex[:4]}")
    rig.cosign.sign(stranger, image)
    # Trust from a ConfigMap in the operator's namespace this time, written by a platform
    # engineer (frank) and labelled as trust: the only kind admission lets him write.
    trust = f"{shop.prefix}-trust"
    grant_configmap_writes(shop.admin, NS, "frank")
    platform = client.CoreV1Api(shop.users["frank"])
    platform.create_namespaced_config_map(
        NS,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=trust, labels={TRUST_LABEL: "true"}),
            data={"ci.pem": (rig.ci_key.with_suffix(".pub")).read_text()},
        ),
    )
    p = refused(
        shop,
        rig,
        "stranger",
        image,
        "SignatureUntrusted",
        requireSignatures={"configMap": trust, "haltOnFailure": False},
    )
    assert f"trusted keys: {trust}/ci.pem" in p["message"]
    platform.delete_namespaced_config_map(trust, NS)
    assert not shop.environment_status("stranger").get("halted")


def test_missing_trust_material_fails_closed_and_deploys_nothing(shop: Shop, rig: Rig) -> None:
    """A policy naming a ConfigMap that is not there: nothing is trusted, nothing deployed,
    the Release waits with the reason (and Stella retries) instead of failing the image."""
    shop.environment("no-trust", requireSignatures={"configMap": f"{shop.prefix}-absent"})
    before = shop.deployed_image("no-trust")
    image = shop.image("no-trust")
    rig.cosign.sign(rig.ci_key, image)
    shop.release("nt-1", image, ["no-trust"])
    p = shop.wait_reason("nt-1", "no-trust", "TrustConfigInvalid")
    assert p["phase"] == "Pending" and "does not exist" in p["message"]
    assert shop.deployed_image("no-trust") == before
    assert not shop.environment_status("no-trust").get("halted")


def test_provenance_from_the_wrong_builder_or_repository_is_refused(shop: Shop, rig: Rig) -> None:
    cases = [
        (
            "wrong-builder",
            {"builder": "https://laptop.example/alice"},
            "ProvenanceBuilderNotAllowed",
        ),
        (
            "wrong-repo",
            {"repo": "https://git.example.com/mallory/shop"},
            "ProvenanceSourceNotAllowed",
        ),
    ]
    for stage, wrong, reason in cases:
        image = shop.image(stage)
        rig.cosign.sign(rig.ci_key, image)
        rig.cosign.attest_provenance(rig.builder_key, image, slsa_v1(**wrong))
        p = refused(shop, rig, stage, image, reason)
        assert next(iter(wrong.values())) in p["message"]


def test_a_signed_image_with_good_provenance_deploys_with_its_revision_in_evidence(
    shop: Shop, rig: Rig, kube: ControlPlane, tmp_path: Path
) -> None:
    env = shop.environment("good", **POLICY)
    image = shop.image("good")
    rig.cosign.sign(rig.ci_key, image)
    rig.cosign.attest_provenance(rig.builder_key, image, slsa_v1())
    shop.release("good-1", image, ["good"])
    shop.wait_phase("good-1", "good", "Deployed", timeout=120)
    assert shop.deployed_image("good") == image
    authorized = packets(shop.admin, env, "PromotionAuthorized")
    chain = authorized[0]["policy"]["inputs"]["supplyChain"]
    assert chain == [
        {
            "image": image,
            "result": "Verified",
            "signedBy": "vault:secret/cosign/ci#pub",
            "provenance": {
                "builderId": BUILDER,
                "sourceRepository": REPO,
                "sourceRevision": COMMIT,
                "signedBy": "vault:secret/cosign/builder#pub",
            },
        }
    ]
    exported_authorization_verifies(rig, kube, tmp_path, env, image)


VSA = "https://slsa.dev/verification_summary/v1"
APPROVAL = "https://stella.io/attestations/approval/v1"


def verified_statements(rig: Rig, key: Path, type_: str, image: str) -> list[dict[str, Any]]:
    """`cosign verify-attestation --key K --insecure-ignore-tlog --type T IMAGE`, offline:
    the in-toto Statements it verified (it fails when none verifies)."""
    out = rig.cosign.verify_attestation(key, type_, image)
    return [
        json.loads(base64.b64decode(json.loads(line)["payload"]))
        for line in out.stdout.splitlines()
        if line.startswith("{")
    ]


def test_the_passport_verifies_with_cosign_and_opens_a_passport_gate(shop: Shop, rig: Rig) -> None:
    """staging publishes its passport; cosign verifies it offline with the evidence key; an
    Environment requiring a staging passport refuses an image without one and deploys the
    one with it — from the registry alone, as another cluster's Stella would."""
    staging = shop.environment(
        "staging",
        publishPassport=True,
        approvals={"required": 1, "approverGroups": ["release-approvers"]},
        **POLICY,
    )
    image = shop.image("passport")
    rig.cosign.sign(rig.ci_key, image)
    rig.cosign.attest_provenance(rig.builder_key, image, slsa_v1())
    shop.release("pass-1", image, ["staging"])
    shop.wait_phase("pass-1", "staging", "WaitingForApproval", timeout=60)
    shop.approve("pass-1", "staging", "bob")
    shop.wait_phase("pass-1", "staging", "Deployed", timeout=120)

    (vsa,) = verified_statements(rig, rig.evidence_pub, VSA, image)
    digest = image.rsplit(":", 1)[1]
    assert vsa["subject"][0]["digest"] == {"sha256": digest}
    assert vsa["predicate"]["policy"]["uri"] == f"https://stella.io/policy/environments/{staging}"
    assert vsa["predicate"]["verificationResult"] == "PASSED"
    assert vsa["predicate"]["verifier"]["id"] == "https://stella.io/verifier"
    (approval,) = verified_statements(rig, rig.evidence_pub, APPROVAL, image)
    assert [a["approver"] for a in approval["predicate"]["approvers"]] == ["bob"]
    assert approval["predicate"]["release"]["specDigest"].startswith("sha256:")
    # The build's own provenance is still there and still verifies with the builder's key.
    assert verified_statements(rig, rig.builder_pub, "slsaprovenance1", image)
    # A key that did not sign the passport verifies nothing.
    stranger, _ = rig.cosign.keypair(f"not-evidence-{uuid.uuid4().hex[:4]}")
    wrong = rig.cosign.verify_attestation(stranger.with_suffix(".pub"), VSA, image, check=False)
    assert wrong.returncode != 0

    gate: dict[str, Any] = {"requirePassport": {"environments": [staging]}}
    without = shop.image("no-passport")  # signed and attested: only the passport is missing
    rig.cosign.sign(rig.ci_key, without)
    rig.cosign.attest_provenance(rig.builder_key, without, slsa_v1())
    p = refused(shop, rig, "prod-a", without, "PassportMissing", **gate)
    assert staging in p["message"]
    shop.environment("prod-b", **gate)
    shop.release("pass-2", image, ["prod-b"])
    shop.wait_phase("pass-2", "prod-b", "Deployed", timeout=120)
    # A cluster without Stella enforcing the passport through `stella passport params` and
    # the API server's own policy: tests/e2e/test_agent_tasks_e2e.py, in a second cluster.


def statement_of(bundle: Path) -> dict[str, Any]:
    doc = json.loads(bundle.read_text())
    return json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))  # type: ignore[no-any-return]


def exported_authorization_verifies(
    rig: Rig, kube: ControlPlane, tmp_path: Path, env: str, image: str
) -> None:
    """The auditor exports each packet as a Sigstore bundle; cosign verifies the
    authorization offline with the evidence key, bound to the deployed image's digest."""
    out = tmp_path / "sigstore"
    subprocess.run(
        [
            STELLA,
            "evidence",
            "export",
            "--format",
            "sigstore-bundle",
            "--out",
            str(out),
            "--namespace",
            NS,
            "--log",
            str(rig.evidence_log),
        ],
        check=True,
        env={**os.environ, "KUBECONFIG": str(kube.kubeconfig_for("erin"))},
        timeout=120,
    )
    (bundle,) = [
        b
        for b in out.glob("*.sigstore.json")
        if (st := statement_of(b))["predicate"]["kind"] == "PromotionAuthorized"
        and st["predicate"].get("environment") == env
    ]
    key = (
        out
        / "keys"
        / (
            json.loads(bundle.read_text())["verificationMaterial"]["publicKey"]["hint"].replace(
                ":", "_"
            )
            + ".pem"
        )
    )
    ok = rig.cosign.verify_blob_attestation(bundle, key, image.rsplit(":", 1)[1])
    assert "Verified OK" in ok.stderr
    forged = tmp_path / "forged.sigstore.json"
    doc = json.loads(bundle.read_text())
    payload = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    payload["predicate"]["approvals"] = [{"approver": "mallory"}]
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    forged.write_text(json.dumps(doc))
    bad = rig.cosign.verify_blob_attestation(forged, key, image.rsplit(":", 1)[1], check=False)
    assert bad.returncode != 0
