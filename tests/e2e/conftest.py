"""e2e tier: the operator runs as a separate process, driven like a user would."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devenv import existing
from devenv.bootstrap import bootstrap
from devenv.controlplane import ADMISSION_USER, OPERATOR_USER, ControlPlane
from devenv.proc import Process, free_port, port_open, wait_until
from devenv.webhooks import make_serving_cert, register, unregister

if existing.requested():  # STELLA_CLUSTER=existing: KUBECONFIG's cluster, checked disposable

    @pytest.fixture(scope="session")
    def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
        """The cluster of KUBECONFIG instead of a local control plane (hack/devenv/existing.py
        says which are accepted), with Stella's CRDs and the dev RBAC applied; left running."""
        cp = existing.ExistingCluster.from_env(tmp_path_factory.mktemp("existing")).up()
        bootstrap(cp)
        yield cp


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@dataclass
class OperatorProcess:
    proc: Process
    port: int
    env: dict[str, str]
    hook_port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.proc.log.read_text(errors="replace") if self.proc.log.exists() else ""

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples with these labels, read from /metrics."""
        import urllib.request

        from tests.kube_support import metric_sum

        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as r:
            return metric_sum(r.read().decode(), name, **labels)

    def restart(self) -> None:
        self.proc.start()
        wait_until(lambda: _ready(self.url), 60, "operator /readyz", self.proc.log)


def _ready(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
        return bool(r.status == 200)


def start_operator(
    kube: ControlPlane,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    webhooks: bool = True,
    serving: tuple[Path, Path, Path] | None = None,
    register_hooks: bool = True,
    verbose: bool = True,
) -> OperatorProcess:
    """serving: (ca, cert, key) to serve with (replicas behind one address share one);
    register_hooks=False leaves the webhook configurations to the caller; verbose=False
    runs it as the chart does (no --verbose: no DEBUG line per reconcile), for benches."""
    pki = (serving or make_serving_cert(workdir / "webhook-pki")) if webhooks else None
    # A port found free can be taken before the operator binds it (by any process's
    # outgoing connection: loopback source ports come from the same range); then the
    # operator exits with "address already in use" and new ports are tried (seen in CI).
    for _attempt in range(3):
        op = _start_operator(kube, workdir, extra_env, pki, register_hooks, verbose)
        if op is not None:
            return op
    raise AssertionError("the operator could not bind free ports in 3 attempts")


def _start_operator(
    kube: ControlPlane,
    workdir: Path,
    extra_env: dict[str, str] | None,
    pki: tuple[Path, Path, Path] | None,
    register_hooks: bool,
    verbose: bool = True,
) -> OperatorProcess | None:
    """The operator started and ready; None when it lost a port race (try again)."""
    # A caller that must know the port before the process starts (a bench probing it from
    # the first moment) names it in extra_env.
    port = int((extra_env or {}).get("STELLA_HTTP_PORT") or free_port())
    hook_env: dict[str, str] = {}
    hook_port = 0
    if pki is not None:
        hook_port = free_port()
        hook_env = {
            "STELLA_WEBHOOK_CERT": str(pki[1]),
            "STELLA_WEBHOOK_KEY": str(pki[2]),
            "STELLA_WEBHOOK_PORT": str(hook_port),
        }
    env = {
        **hook_env,
        "KUBECONFIG": str(kube.kubeconfig_for(OPERATOR_USER)),
        "STELLA_HTTP_PORT": str(port),
        "STELLA_STATE_DIR": str(workdir / "state"),
        "STELLA_RESYNC_SECONDS": "5",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    stella = str(Path(sys.executable).parent / "stella")
    log = workdir / "operator.log"
    seen = log.stat().st_size if log.exists() else 0
    args = [stella, "operator", "run", *(["--verbose"] if verbose else [])]
    proc = Process("stella-operator", args, log, env=env)
    op = OperatorProcess(proc, port, env, hook_port)
    try:
        op.restart()
        if pki is not None:
            wait_until(lambda: port_open(hook_port), 30, "operator webhook server", proc.log)
            if register_hooks:
                register(kube, pki[0], hook_port, env.get("STELLA_NAMESPACE", "stella-system"))
    except BaseException:
        proc.stop()  # not ready: never leave it running behind the failed test
        if "address already in use" in op.logs()[seen:]:
            return None
        raise
    return op


def start_admission(
    kube: ControlPlane,
    workdir: Path,
    serving: tuple[Path, Path, Path] | None = None,
    register_hooks: bool = True,
    extra_env: dict[str, str] | None = None,
) -> OperatorProcess:
    """`stella admission run` as its own process, as the chart runs it (Deployment
    stella-admission): authenticated as stella-admission, whose RBAC reads and cannot
    write Stella's objects; the webhooks registered at its loopback port."""
    pki = serving or make_serving_cert(workdir / "webhook-pki")
    for _attempt in range(3):  # a lost port race: new ports (as start_operator)
        port, hook_port = free_port(), free_port()
        env = {
            "KUBECONFIG": str(kube.kubeconfig_for(ADMISSION_USER)),
            "STELLA_HTTP_PORT": str(port),
            "STELLA_WEBHOOK_CERT": str(pki[1]),
            "STELLA_WEBHOOK_KEY": str(pki[2]),
            "STELLA_WEBHOOK_PORT": str(hook_port),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        stella = str(Path(sys.executable).parent / "stella")
        log = workdir / "admission.log"
        seen = log.stat().st_size if log.exists() else 0
        proc = Process("stella-admission", [stella, "admission", "run"], log, env=env)
        adm = OperatorProcess(proc, port, env, hook_port)
        try:
            adm.restart()
            if register_hooks:
                register(kube, pki[0], hook_port, env.get("STELLA_NAMESPACE", "stella-system"))
        except BaseException:
            proc.stop()
            if "address already in use" in adm.logs()[seen:]:
                continue
            raise
        return adm
    raise AssertionError("admission could not bind free ports in 3 attempts")


@contextmanager
def running_operator(
    kube: ControlPlane, workdir: Path, extra_env: dict[str, str] | None = None
) -> Iterator[OperatorProcess]:
    """The operator as its own process with its webhooks registered; stopped and
    unregistered afterwards (so a later test never meets a dead webhook)."""
    op = start_operator(kube, workdir, extra_env)
    try:
        yield op
    finally:
        op.proc.stop()
        unregister(kube)
        if os.environ.get("STELLA_TEST_SHOW_LOGS"):
            print(op.logs())


@pytest.fixture
def operator(kube: ControlPlane, tmp_path: Path) -> Iterator[OperatorProcess]:
    with running_operator(kube, tmp_path) as op:
        yield op


def vault_env(vault_addr: str, root_token: str, workdir: Path) -> dict[str, str]:
    """The operator's environment to read Vault with a token file (written in workdir)."""
    workdir.mkdir(parents=True, exist_ok=True)
    token_file = workdir / "vault-token"
    token_file.write_text(root_token + "\n")
    return {
        "STELLA_VAULT_ADDR": vault_addr,
        "STELLA_VAULT_AUTH": "token",
        "STELLA_VAULT_TOKEN_FILE": str(token_file),
    }


AGENT_EVIDENCE_LOG = (
    Path(tempfile.gettempdir()) / f"stella-e2e-{uuid.uuid4().hex[:8]}-evidence.jsonl"
)


def hub_settings(
    vault_addr: str, root_token: str, workdir: Path
) -> tuple[dict[str, str], str, Path]:
    """The operator's environment to serve the agent hub (a serving certificate for
    127.0.0.1, Vault by a token file, a PKI mount of its own), the hub's URL, and the CA
    an agent trusts it by."""
    hub_ca, crt, key = make_serving_cert(workdir / "hub-pki")
    port = free_port()
    env = {
        # One evidence log for every hub-serving operator of the session, as a cluster has
        # one log: agents' packets go to the cluster's chain, which these operators share
        # (each with a log of its own would restart that chain over the others' ConfigMaps).
        "STELLA_EVIDENCE_LOG": str(AGENT_EVIDENCE_LOG),
        **vault_env(vault_addr, root_token, workdir),
        "STELLA_AGENT_HUB_PORT": str(port),
        "STELLA_AGENT_HUB_CERT": str(crt),
        "STELLA_AGENT_HUB_KEY": str(key),
        "STELLA_AGENT_PKI_MOUNT": f"pki-{uuid.uuid4().hex[:6]}",
    }
    return env, f"https://127.0.0.1:{port}", hub_ca


__all__ = [
    "OperatorProcess",
    "hub_settings",
    "running_operator",
    "start_operator",
    "subprocess",
    "vault_env",
]


@pytest.fixture
def shop(kube_admin: Any, kube_as: Any, registry: Any, test_namespace: str) -> Iterator[Any]:
    from tests.e2e.shop import Shop

    s = Shop(kube_admin, kube_as, registry, test_namespace)
    try:
        yield s
    finally:
        s.cleanup()


@pytest.fixture
def stella(kube: ControlPlane, tmp_path: Path, registry: Any) -> Iterator[OperatorProcess]:
    """The operator with webhooks, trusting the loopback test registry over plain HTTP."""
    with running_operator(kube, tmp_path, {"STELLA_INSECURE_REGISTRIES": registry.host}) as op:
        yield op
