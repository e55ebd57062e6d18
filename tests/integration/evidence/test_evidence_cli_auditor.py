"""The auditor's tools tell the truth: a typo, a wrong path or a missing flag is an error
that says what to do (exit 2), never "evidence OK" or a list of false findings; keys
written by `keys --out-dir` pin back with `verify --trusted-keys` as a directory or as one
file. Driven through `stella.cli.main` as a person types the commands."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client
from tests.integration.evidence.helpers import Clock, EvidenceDb, event

from devenv.controlplane import ControlPlane
from devenv.services import Postgres
from stella.cli import main
from stella.evidence.bundle import write_bundle
from stella.evidence.event import EvidenceEvent
from stella.evidence.log_jsonl import JsonlLog
from stella.evidence.packet import ApprovalEvidence, Outcome, ReleaseRef
from stella.evidence.recorder import Recorder
from stella.evidence.store_configmap import ConfigMapStore
from stella.evidence.store_memory import MemoryStore
from stella.secrets.signers import LocalKeySigner

USAGE = 2


def counted_approval() -> EvidenceEvent:
    """What the engine records when bob's approval counts (result and reason both Counted)."""
    return EvidenceEvent(
        kind="ApprovalCounted",
        event_id="approval/uid-a1/Counted",
        environment="prod",
        release=ReleaseRef(namespace="shop", name="shop-1", uid="uid-1", version="1.4.2"),
        images=[f"registry.example.com/shop/web@sha256:{'a' * 64}"],
        approvals=[
            ApprovalEvidence(
                approval="shop-1-prod-a1",
                approver="bob",
                groups=["release-approvers"],
                decision="Approve",
                at=datetime(2026, 3, 1, 11, 0, tzinfo=UTC),
                counted=True,
                reason="Counted",
            )
        ],
        actor="bob",
        outcome=Outcome(result="Counted", reason="Counted", message="bob's approval counts"),
    )


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """dev#1 and prod#1..3 signed with a local key (id `local:<hex>`, which has a ':')."""
    store = MemoryStore()
    signer = LocalKeySigner(tmp_path / "signing.pem")
    rec = Recorder(signer, JsonlLog(tmp_path / "log.jsonl"), store, "0.1.0", clock=Clock())
    rec.record(event(env="dev", n=1))
    rec.record(event(env="prod", n=1))
    rec.record(event(env="prod", n=1, kind="PromotionDeployed"))
    rec.record(counted_approval())
    path = tmp_path / "bundle.json"
    write_bundle(
        path,
        keys=store.published_keys(),
        configmaps=store.list(),
        log=rec.log.entries(),
        namespace="stella-system",
    )
    return path


def stella(capfd: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def test_an_unknown_environment_is_an_error_not_ok(
    bundle: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code, out, err = stella(capfd, "evidence", "verify", "--bundle", str(bundle), "-e", "prdo")
    assert code == USAGE, out
    assert "evidence OK" not in out
    assert err.strip() == (
        "error: no evidence for environment 'prdo'; environments with evidence: dev, prod"
    )
    code, out, _ = stella(capfd, "evidence", "verify", "--bundle", str(bundle), "-e", "prod")
    assert code == 0 and "evidence OK" in out


def test_a_wrong_log_path_cannot_be_read_and_is_not_created(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "evidence.jsonl"
    code, out, err = stella(capfd, "evidence", "verify", "--log", str(missing))
    assert code == USAGE
    assert err.startswith(f"error: cannot read the log {missing}: no such file; ")
    assert "log-entry-missing" not in out + err
    assert not missing.exists() and not missing.parent.exists()
    code, _, err = stella(capfd, "evidence", "verify", "--log", str(tmp_path))
    assert code == USAGE and "is a directory, not a log file" in err


def test_without_a_log_it_finds_the_one_the_operator_publishes(
    kube: ControlPlane, kube_admin: client.ApiClient, test_namespace: str, tmp_path: Path,
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """No --log: the log the operator says it writes (a ConfigMap in its namespace, no
    secret in it); before it said anything, the message names the flag and the variable;
    $STELLA_EVIDENCE_LOG, exported in the shell, comes first."""
    monkeypatch.delenv("STELLA_EVIDENCE_LOG", raising=False)
    flags = ["--kubeconfig", str(kube.kubeconfig), "--context", "admin", "-n", test_namespace]
    code, _, err = stella(capfd, "evidence", "verify", *flags)
    assert code == USAGE
    assert f"the operator in {test_namespace} has not published where it writes one" in err
    assert "pass --log with the log the operator writes (its STELLA_EVIDENCE_LOG)" in err

    log = tmp_path / "operator" / "evidence.jsonl"
    rec = Recorder(
        LocalKeySigner(tmp_path / "signing.pem"),
        JsonlLog(log),
        ConfigMapStore(kube_admin, test_namespace),
        "0.1.0",
        clock=Clock(),
    )
    rec.record(event(env="prod", n=1))
    assert ConfigMapStore(kube_admin, test_namespace).log_locators() == (str(log),)
    code, out, err = stella(capfd, "evidence", "verify", *flags)
    assert code == 0 and "evidence OK" in out, out + err
    assert err == f"log: {log} (published by the operator in {test_namespace})\n"

    configured = tmp_path / "operator.jsonl"
    monkeypatch.setenv("STELLA_EVIDENCE_LOG", str(configured))
    code, _, err = stella(capfd, "evidence", "verify", *flags)
    assert code == USAGE and f"cannot read the log {configured}: no such file" in err


def test_keys_out_dir_round_trips_into_trusted_keys(
    bundle: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    code, out, _ = stella(
        capfd, "evidence", "keys", "--bundle", str(bundle), "--out-dir", str(keys)
    )
    assert code == 0 and "local:" in out
    (pem,) = keys.glob("*.pem")
    assert ":" not in pem.name  # a file name that works everywhere
    for pinned in (keys, pem):  # the directory, or the one file
        code, out, err = stella(
            capfd, "evidence", "verify", "--bundle", str(bundle), "--trusted-keys", str(pinned)
        )
        assert code == 0, out + err
        assert "untrusted-key" not in out and "evidence OK" in out
    # some other key pins nothing
    other = LocalKeySigner(tmp_path / "other.pem")
    (tmp_path / "other-pub.pem").write_text(next(iter(other.public_keys().values())))
    code, out, _ = stella(
        capfd, "evidence", "verify", "--bundle", str(bundle),
        "--trusted-keys", str(tmp_path / "other-pub.pem"),
    )  # fmt: skip
    assert code == 1 and "untrusted-key" in out


def test_a_file_that_is_no_key_says_so(
    bundle: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("these are not keys\n")
    code, _, err = stella(
        capfd, "evidence", "verify", "--bundle", str(bundle), "--trusted-keys", str(junk)
    )
    assert code == USAGE
    assert "JSONDecodeError" not in err and "Traceback" not in err
    assert "neither a PEM public key, a bundle, nor a JSON object of keyid -> PEM" in err


def test_show_says_the_outcome_once(bundle: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = stella(capfd, "evidence", "show", "--bundle", str(bundle), "prod#3")
    assert code == 0, out
    assert "ApprovalCounted" in out
    assert "  outcome       Counted: bob's approval counts" in out.splitlines()
    assert "Counted Counted" not in out


def test_against_the_api_server_an_environment_without_evidence_yet_is_fine(
    kube: ControlPlane, kube_admin: client.ApiClient, test_namespace: str, tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """`-e` is checked against the chains and the Environments the cluster has: a new
    Environment with no promotion yet verifies (nothing to check), a typo does not."""
    log = tmp_path / "evidence.jsonl"
    rec = Recorder(
        LocalKeySigner(tmp_path / "signing.pem"),
        JsonlLog(log),
        ConfigMapStore(kube_admin, test_namespace),
        "0.1.0",
        clock=Clock(),
    )
    rec.record(event(env="prod", n=1))
    fresh = f"canary-{uuid.uuid4().hex[:6]}"
    custom = client.CustomObjectsApi(kube_admin)
    custom.create_cluster_custom_object(
        "stella.io",
        "v1alpha1",
        "environments",
        {"apiVersion": "stella.io/v1alpha1", "kind": "Environment",
         "metadata": {"name": fresh}, "spec": {}},
    )  # fmt: skip
    try:
        flags = ["--kubeconfig", str(kube.kubeconfig), "--context", "admin"]
        where = ["-n", test_namespace, "--log", str(log)]
        code, out, err = stella(capfd, *flags, "evidence", "verify", *where, "-e", "prdo")
        assert code == USAGE, out
        assert err.strip() == (
            "error: no evidence for environment 'prdo' and no such Environment; "
            "environments with evidence: prod"
        )
        code, out, err = stella(capfd, *flags, "evidence", "verify", *where, "-e", fresh)
        assert code == 0, out + err
        code, out, err = stella(capfd, *flags, "evidence", "verify", *where, "-e", "prod")
        assert code == 0 and "prod#1" in out, out + err
    finally:
        custom.delete_cluster_custom_object("stella.io", "v1alpha1", "environments", fresh)


def test_a_postgres_log_that_refuses_says_why_and_what_to_do(
    evidence_db: EvidenceDb,
    postgres: Postgres,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Never the full OperationalError, never the password of the URL."""
    from stella.evidence.log_postgres import PostgresLog

    wrong = postgres.dsn(
        user="stella_evidence_writer", password="not-the-password", db=evidence_db.name
    )
    with pytest.raises(Exception) as info:
        PostgresLog(wrong).entries()
    message = getattr(info.value, "message", str(info.value))
    assert "password authentication failed; set PGPASSWORD" in message
    assert "not-the-password" not in message
    assert f"stella_evidence_writer@127.0.0.1:{postgres.port}/{evidence_db.name}" in message
    no_table = postgres.dsn(password="postgres")  # the server's own database: no log table
    with pytest.raises(Exception) as info:
        PostgresLog(no_table).entries()
    assert "create it with `stella evidence install-log`" in getattr(info.value, "message", "")
