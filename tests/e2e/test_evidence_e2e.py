"""Issue #5 in the running operator: evidence signed by Vault transit, logged in PostgreSQL,
stored as immutable ConfigMaps, verified by an auditor with `stella evidence`; and the
failure semantics — Vault down: nothing deployed; PostgreSQL down: the promotion waits,
then completes exactly once.

Each test runs the operator as its own process against the real API server, OpenBao and
PostgreSQL, and gives it a namespace of its own (STELLA_NAMESPACE) with the Roles and
RoleBindings stella-system has (the operator may create ConfigMaps there, auditors may
read them), so `stella evidence verify` checks *everything* that operator wrote and
nothing another test left behind."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import psycopg
import pytest
from kubernetes import client
from tests.e2e.conftest import OperatorProcess
from tests.e2e.conftest import running_operator as conftest_running_operator
from tests.e2e.demo_world import operator_namespace
from tests.e2e.shop import Shop
from tests.kube_support import eventually

from devenv.controlplane import ControlPlane
from devenv.proc import LOOPBACK, Process, free_port, port_open, wait_until
from devenv.services import OpenBao, Postgres
from stella.evidence.manifest import (
    DATA_ENVELOPE,
    KEY_SELECTOR,
    L_KIND,
    L_SEQUENCE,
    chain_selector,
    configmap_name,
)
from stella.secrets.signers import ensure_transit_key

BIN = Path(sys.executable).parent
STELLA = str(BIN / "stella")


# ---- helpers -------------------------------------------------------------------------


@pytest.fixture
def ns(kube_admin: client.ApiClient) -> Iterator[str]:
    """A fresh operator namespace with stella-system's RBAC (what the chart installs)."""
    name = operator_namespace(kube_admin, "stella-ev")
    core = client.CoreV1Api(kube_admin)
    try:
        yield name
    finally:
        core.delete_namespace(name)


@contextmanager
def running_operator(
    kube: ControlPlane, workdir: Path, ns: str, env: dict[str, str]
) -> Iterator[OperatorProcess]:
    with conftest_running_operator(kube, workdir, {"STELLA_NAMESPACE": ns, **env}) as op:
        yield op


def stella(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the `stella` CLI with exactly this environment (plus PATH), as a person would."""
    return stella_all([list(args)], env=env, timeout=timeout)[0]


def stella_all(
    commands: list[list[str]], env: dict[str, str], timeout: float = 60
) -> list[subprocess.CompletedProcess[str]]:
    """Several independent `stella` commands at once (each start costs a second or two)."""
    full = {"PATH": os.environ.get("PATH", ""), **env}
    procs = [
        (
            args,
            subprocess.Popen(
                [STELLA, *args], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            ),
        )
        for args in commands
    ]
    done = []
    for args, proc in procs:
        out, err = proc.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess([STELLA, *args], proc.returncode, out, err))
    return done


def as_auditor(kube: ControlPlane, home: Path, ns: str, **extra: str) -> dict[str, str]:
    """erin is in `auditors`: she may read the operator's ConfigMaps, nothing more."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(home),
        "KUBECONFIG": str(kube.kubeconfig_for("erin")),
        "STELLA_NAMESPACE": ns,
        **extra,
    }


def install_log(
    pg: Postgres, db: str, workdir: Path, writer: str, reader: str, twice: bool = False
) -> tuple[str, str]:
    """`stella evidence install-log` as the DBA would run it; returns the two passwords."""
    passwords = (f"w-{uuid.uuid4().hex}", f"r-{uuid.uuid4().hex}")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "writer.pw").write_text(passwords[0] + "\n")
    (workdir / "reader.pw").write_text(passwords[1] + "\n")
    out = stella(
        "evidence",
        "install-log",
        "--dsn",
        pg.dsn(db=db),
        "--writer-role",
        writer,
        "--writer-password-file",
        str(workdir / "writer.pw"),
        "--reader-role",
        reader,
        "--reader-password-file",
        str(workdir / "reader.pw"),
        env={"HOME": str(workdir), "PGPASSWORD": "postgres"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "evidence log ready" in out.stdout
    if not twice:
        return passwords
    # Idempotent: a second run (an upgrade) changes nothing and succeeds.
    again = stella(
        "evidence",
        "install-log",
        "--dsn",
        pg.dsn(db=db),
        "--writer-role",
        writer,
        env={"HOME": str(workdir), "PGPASSWORD": "postgres"},
    )
    assert again.returncode == 0, again.stdout + again.stderr
    return passwords


def log_rows(pg: Postgres, db: str, chain: str) -> list[tuple[str, int]]:
    with psycopg.connect(pg.dsn(password="postgres", db=db)) as conn:
        rows = conn.execute(
            "SELECT kind, seq FROM stella.evidence_log WHERE environment = %s ORDER BY seq",
            (chain,),
        ).fetchall()
    return [(str(k), int(s)) for k, s in rows]


def configmap_packets(admin: client.ApiClient, ns: str, chain: str) -> list[tuple[str, str]]:
    """(name, kind) of every evidence ConfigMap of one chain, in sequence order."""
    items: list[Any] = (  # ConfigMaps with their names and labels set
        client.CoreV1Api(admin)
        .list_namespaced_config_map(ns, label_selector=chain_selector(chain))
        .items
    )
    packets = sorted(items, key=lambda cm: int(cm.metadata.labels[L_SEQUENCE]))
    return [(cm.metadata.name, cm.metadata.labels[L_KIND]) for cm in packets]


def ensure_no_deploy(shop: Shop, stage: str, image: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert shop.deployed_image(stage) != image, f"{stage} was deployed without its evidence"
        time.sleep(0.3)


def admission_knows(shop: Shop, admin: client.ApiClient, env_name: str) -> None:
    """Wait until the webhooks' index has the Environment (a dry run goes through admission),
    so an Environment that requires it is admitted."""
    body = {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": f"{env_name}-probe"},
        "spec": {
            "requires": [env_name],
            "targets": [{"namespace": f"{env_name}-probe"}],
            "allowedRegistries": [shop.registry.host],
        },
    }
    api = client.CustomObjectsApi(admin)
    eventually(
        lambda: (
            api.create_cluster_custom_object(
                "stella.io", "v1alpha1", "environments", body, dry_run="All"
            )
            is not None
        ),
        timeout=15,
        what=f"admission seeing Environment {env_name}",
    )


def operator_token(root: hvac.Client, key: str) -> str:
    """A token that may only read the transit key and sign with it (what the chart grants)."""
    policy = f"""
path "transit/keys/{key}" {{ capabilities = ["read"] }}
path "transit/sign/{key}" {{ capabilities = ["update"] }}
path "transit/sign/{key}/*" {{ capabilities = ["update"] }}
"""
    root.sys.create_or_update_policy(name=f"stella-{key}", policy=policy)
    return str(root.auth.token.create(policies=[f"stella-{key}"], ttl="1h")["auth"]["client_token"])


@dataclass
class DurableOpenBao:
    """`bao server` with (single-node raft) storage: unlike -dev, a restart keeps the
    transit key. Starting it again after stop() unseals it with the key from the first init."""

    workdir: Path
    port: int = field(default_factory=free_port)
    cluster_port: int = field(default_factory=free_port)
    root_token: str = ""
    unseal_key: str = ""
    proc: Process | None = None

    @property
    def addr(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            f"{self.addr}/v1/{path}", data=json.dumps(body).encode(), method="PUT"
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)  # type: ignore[no-any-return]

    def _health(self) -> int:
        try:
            with urllib.request.urlopen(f"{self.addr}/v1/sys/health", timeout=1) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)  # 501 not initialized, 503 sealed

    def start(self) -> DurableOpenBao:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "bao.hcl"
        (self.workdir / "raft").mkdir(exist_ok=True)
        cfg.write_text(
            f'storage "raft" {{\n path = "{self.workdir / "raft"}"\n node_id = "n1"\n}}\n'
            f'listener "tcp" {{\n address = "{LOOPBACK}:{self.port}"\n'
            f' cluster_address = "{LOOPBACK}:{self.cluster_port}"\n tls_disable = true\n}}\n'
            f'api_addr = "{self.addr}"\ncluster_addr = "http://{LOOPBACK}:{self.cluster_port}"\n'
        )
        self.proc = Process(
            "openbao-durable",
            [str(BIN / "bao"), "server", f"-config={cfg}"],
            self.workdir / "openbao.log",
            env={"HOME": str(self.workdir), "BAO_DISABLE_MLOCK": "true"},
        ).start()
        wait_until(lambda: self._health() in (200, 501, 503), 30, "OpenBao", self.proc.log)
        if not self.root_token:
            init = self._put("sys/init", {"secret_shares": 1, "secret_threshold": 1})
            self.unseal_key, self.root_token = init["keys_base64"][0], init["root_token"]
        self._put("sys/unseal", {"key": self.unseal_key})
        wait_until(lambda: self._health() == 200, 30, "OpenBao unsealed and active", self.proc.log)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


# ---- a. the happy path ---------------------------------------------------------------


def test_vault_transit_postgres_happy_path_audit_export_and_tamper(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    shop: Shop,
    registry: Any,
    openbao: OpenBao,
    postgres: Postgres,
    ns: str,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:8]
    key = f"stella-ev-{tag}"
    root = hvac.Client(url=openbao.addr, token=openbao.root_token, timeout=5)
    ensure_transit_key(root, key)
    token_file = tmp_path / "vault-token"
    token_file.write_text(operator_token(root, key))
    db = f"ev_{tag}"
    with psycopg.connect(postgres.dsn(password="postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    writer, reader = f"ev_writer_{tag}", f"ev_reader_{tag}"
    writer_pw, reader_pw = install_log(postgres, db, tmp_path / "dba", writer, reader)

    env = {
        "STELLA_INSECURE_REGISTRIES": registry.host,
        "STELLA_EVIDENCE_SIGNER": "vault",
        "STELLA_EVIDENCE_TRANSIT_KEY": key,
        "STELLA_VAULT_ADDR": openbao.addr,
        "STELLA_VAULT_AUTH": "token",
        "STELLA_VAULT_TOKEN_FILE": str(token_file),
        "STELLA_EVIDENCE_LOG": postgres.dsn(user=writer, db=db),  # no password in the DSN
        "PGPASSWORD": writer_pw,
    }
    core = client.CoreV1Api(kube_admin)
    with running_operator(kube, tmp_path, ns, env) as op:
        # Published at startup, before any packet: a verifier finds the key first.
        published = core.list_namespaced_config_map(ns, label_selector=KEY_SELECTOR).items
        assert [cm.immutable for cm in published if key in json.dumps(cm.data)] == [True]

        dev = shop.environment("dev")
        admission_knows(shop, kube_admin, dev)
        staging = shop.environment(
            "staging",
            requires=["dev"],
            approvals={"required": 1, "approverGroups": ["release-approvers"]},
        )
        image = shop.image("1.0")
        shop.release("rel-1", image, ["dev", "staging"])
        shop.wait_phase("rel-1", "dev", "Deployed")
        shop.wait_phase("rel-1", "staging", "WaitingForApproval")
        shop.approve("rel-1", "staging", "bob")
        shop.wait_phase("rel-1", "staging", "Deployed")
        assert shop.deployed_image("staging") == image
        logs = op.logs()
    assert writer_pw not in logs and reader_pw not in logs, "a password reached the operator's log"

    # Both stores hold the same packets, in order: the authorization before the outcome.
    assert log_rows(postgres, db, dev) == [("PromotionAuthorized", 1), ("PromotionDeployed", 2)]
    staging_rows = log_rows(postgres, db, staging)
    assert [k for k, _ in staging_rows] == [
        "ApprovalCounted",
        "PromotionAuthorized",
        "PromotionDeployed",
    ]
    assert configmap_packets(kube_admin, ns, staging) == [
        (configmap_name(staging, s), k) for k, s in staging_rows
    ]

    # The auditor verifies with her own credentials and the log's SELECT-only role; she
    # also lists the published keys, reads a packet and exports a bundle.
    auditor = as_auditor(
        kube,
        tmp_path / "erin",
        ns,
        STELLA_EVIDENCE_LOG=postgres.dsn(user=reader, db=db),
        PGPASSWORD=reader_pw,
    )
    bundle = tmp_path / "evidence-bundle.json"
    verified, keys, show, export = stella_all(
        [
            ["evidence", "verify"],
            ["evidence", "keys"],
            ["evidence", "show", f"{staging}#2"],
            ["evidence", "export", "--out", str(bundle)],
        ],
        env=auditor,
    )
    for out in (verified, keys, show, export):
        assert out.returncode == 0, f"{out.args}: {out.stdout}{out.stderr}"
    assert "evidence OK: 5 ConfigMaps, 5 log entries" in verified.stdout, verified.stdout
    assert f"transit/{key}:v1" in keys.stdout and "BEGIN PUBLIC KEY" in keys.stdout
    assert (
        "PromotionAuthorized" in show.stdout and "bob" in show.stdout and "verified" in show.stdout
    )

    # Tamper: an admin deletes the staging authorization and re-creates it saying carol
    # approved (the API server refuses any edit of an immutable ConfigMap).
    name = configmap_name(staging, 2)
    original = core.read_namespaced_config_map(name, ns)
    assert original.metadata is not None and original.data is not None
    envelope = json.loads(original.data[DATA_ENVELOPE])
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicate"]["approvals"][0]["approver"] == "bob"
    statement["predicate"]["approvals"][0]["approver"] = "carol"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    core.delete_namespaced_config_map(name, ns)
    core.create_namespaced_config_map(
        ns,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=name,
                labels=original.metadata.labels,
                annotations=original.metadata.annotations,
            ),
            data={DATA_ENVELOPE: json.dumps(envelope)},
            immutable=True,
        ),
    )

    # Found and named; the bundle exported before still verifies offline: no cluster, no
    # database, no credentials, nothing but the file.
    offline = {"HOME": str(tmp_path / "offline")}
    (tmp_path / "offline").mkdir()
    tampered, dev_only, from_bundle = stella_all(
        [
            ["evidence", "verify"],
            ["evidence", "verify", "--environment", dev],
            ["evidence", "verify", "--bundle", str(bundle)],
        ],
        env=auditor,
    )
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert f"ConfigMap {name}" in tampered.stdout and "FAIL signature-invalid" in tampered.stdout
    assert "FAIL stores-disagree" in tampered.stdout, tampered.stdout
    assert dev_only.returncode == 0, (
        dev_only.stdout + dev_only.stderr
    )  # another chain's damage is not dev's
    assert from_bundle.returncode == 0, from_bundle.stdout + from_bundle.stderr
    offline_run = stella("evidence", "verify", "--bundle", str(bundle), env=offline)
    assert offline_run.returncode == 0, offline_run.stdout + offline_run.stderr


# ---- b. Vault down: nothing deployed -------------------------------------------------


def test_vault_down_nothing_deployed_until_it_returns(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    shop: Shop,
    registry: Any,
    ns: str,
    tmp_path: Path,
) -> None:
    bao = DurableOpenBao(tmp_path / "openbao").start()
    try:
        key = f"stella-ev-{uuid.uuid4().hex[:8]}"
        root = hvac.Client(url=bao.addr, token=bao.root_token, timeout=5)
        ensure_transit_key(root, key)
        token_file = tmp_path / "vault-token"
        token_file.write_text(operator_token(root, key))
        journal = tmp_path / "evidence.jsonl"
        env = {
            "STELLA_INSECURE_REGISTRIES": registry.host,
            "STELLA_EVIDENCE_SIGNER": "vault",
            "STELLA_EVIDENCE_TRANSIT_KEY": key,
            "STELLA_VAULT_ADDR": bao.addr,
            "STELLA_VAULT_AUTH": "token",
            "STELLA_VAULT_TOKEN_FILE": str(token_file),
            "STELLA_VAULT_TIMEOUT": "2",
            "STELLA_EVIDENCE_LOG": str(journal),
        }
        with running_operator(kube, tmp_path, ns, env):
            dev = shop.environment("dev")
            image = shop.image("2.0")
            bao.stop()
            assert not port_open(bao.port)
            shop.release("rel-2", image, ["dev"])

            pending = eventually(
                lambda: (
                    (p := shop.progress("rel-2", "dev")).get("reason") == "EvidencePending" and p
                ),
                timeout=30,
                what="dev waiting for its evidence",
            )
            assert pending["phase"] == "Pending"
            assert "nothing deployed" in pending["message"]
            # Says what a person needs: nothing deployed, evidence cannot be signed, Vault.
            assert "cannot be signed" in pending["message"], pending["message"]
            assert "Vault is unreachable" in pending["message"], pending["message"]
            ensure_no_deploy(shop, "dev", image, 3)
            assert not journal.exists() or dev not in journal.read_text(), (
                "a packet was logged without Vault"
            )
            assert configmap_packets(kube_admin, ns, dev) == []

            bao.start()  # same port, same storage: the same transit key, unsealed
            shop.wait_phase("rel-2", "dev", "Deployed", timeout=90)
            assert shop.deployed_image("dev") == image
            assert shop.progress("rel-2", "dev").get("attempt") == 1

        assert [k for _, k in configmap_packets(kube_admin, ns, dev)] == [
            "PromotionAuthorized",
            "PromotionDeployed",
        ]
        out = stella(
            "evidence",
            "verify",
            env=as_auditor(kube, tmp_path / "erin", ns, STELLA_EVIDENCE_LOG=str(journal)),
        )
        assert out.returncode == 0, out.stdout + out.stderr
    finally:
        bao.stop()


# ---- c. PostgreSQL down: the promotion waits, then completes exactly once -------------


def test_postgres_down_promotion_waits_then_completes_exactly_once(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    shop: Shop,
    registry: Any,
    ns: str,
    tmp_path: Path,
) -> None:
    pg = Postgres(tmp_path / "pg").start()
    try:
        writer_pw, reader_pw = install_log(
            pg, "postgres", tmp_path / "dba", "ev_writer", "ev_reader", twice=True
        )
        env = {
            "STELLA_INSECURE_REGISTRIES": registry.host,
            "STELLA_EVIDENCE_LOG": pg.dsn(user="ev_writer"),
            "PGPASSWORD": writer_pw,
        }
        with running_operator(kube, tmp_path, ns, env):
            dev = shop.environment("dev")
            image = shop.image("3.0")
            port = pg.port
            pg.stop()
            assert not port_open(port)
            shop.release("rel-3", image, ["dev"])

            pending = shop.wait_reason("rel-3", "dev", "EvidencePending", timeout=30)
            assert pending["phase"] == "Pending" and "nothing deployed" in pending["message"]
            assert "evidence log (PostgreSQL) unavailable" in pending["message"], pending["message"]
            assert writer_pw not in pending["message"]
            ensure_no_deploy(shop, "dev", image, 3)
            assert configmap_packets(kube_admin, ns, dev) == []

            pg.start()  # the same data directory, the same port
            assert pg.port == port
            shop.wait_phase("rel-3", "dev", "Deployed", timeout=60)
            assert shop.deployed_image("dev") == image
            assert shop.progress("rel-3", "dev").get("attempt") == 1

        # Exactly once, in both stores, contiguous from 1.
        assert log_rows(pg, "postgres", dev) == [
            ("PromotionAuthorized", 1),
            ("PromotionDeployed", 2),
        ]
        assert configmap_packets(kube_admin, ns, dev) == [
            (configmap_name(dev, 1), "PromotionAuthorized"),
            (configmap_name(dev, 2), "PromotionDeployed"),
        ]
        out = stella(
            "evidence",
            "verify",
            env=as_auditor(
                kube,
                tmp_path / "erin",
                ns,
                STELLA_EVIDENCE_LOG=pg.dsn(user="ev_reader"),
                PGPASSWORD=reader_pw,
            ),
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "evidence OK: 2 ConfigMaps, 2 log entries" in out.stdout, out.stdout
    finally:
        pg.destroy()
