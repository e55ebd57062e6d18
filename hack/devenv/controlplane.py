"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok (fake nodes, so Deployments roll out).

Identities are real: a static token file authenticates admin, alice, bob, carol, erin, frank
and the operator, and RBAC authorizes them. Binaries come from hack/build-binaries.sh.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from devenv import pki
from devenv.proc import LOOPBACK, Process, free_port, kill_pidfile, wait_until

K8S_VERSION = os.environ.get("K8S_VERSION", "v1.37.2")
KWOK_VERSION = os.environ.get("KWOK_VERSION", "v0.7.0")
ETCD_VERSION = os.environ.get("ETCD_VERSION", "v3.6.16")
CACHE = Path(os.environ.get("STELLA_CACHE", Path.home() / ".cache" / "stella"))
HACK = Path(__file__).resolve().parent.parent
KWOK_CONFIG = Path(__file__).resolve().parent / "kwok.yaml"
# The node-lifecycle controller's patience; kwok's heartbeats (KWOK_CONFIG) come every 10 s.
NODE_MONITOR_GRACE_SECONDS = 60

OPERATOR_USER = "system:serviceaccount:stella-system:stella-operator"
# `stella admission run` as its own process (the chart's Deployment stella-admission).
ADMISSION_USER = "system:serviceaccount:stella-system:stella-admission"

# user -> groups. Group names are what the chart's RBAC and the Environments refer to.
USERS: dict[str, list[str]] = {
    "admin": ["system:masters"],
    "alice": ["release-requesters"],
    "bob": ["release-approvers"],
    "carol": ["release-approvers"],
    "dave": ["release-requesters", "release-approvers"],
    "erin": ["auditors"],
    "frank": ["platform-engineers"],
    OPERATOR_USER: ["system:serviceaccounts", "system:serviceaccounts:stella-system"],
    ADMISSION_USER: ["system:serviceaccounts", "system:serviceaccounts:stella-system"],
}


def people(users: dict[str, list[str]] = USERS) -> str:
    """Every person of the token file and their groups, for the banners of `make demo` and
    `hack/cluster up` (`--context NAME`); Stella's own identities are not people."""
    return ", ".join(
        f"{name} ({', '.join(groups)})"
        for name, groups in users.items()
        if name not in (OPERATOR_USER, ADMISSION_USER)
    )


KCM_CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "cronjob-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "pod-garbage-collector-controller",
    # Removes the not-ready taint the API server puts on every new Node (kwok's are fake).
    "node-lifecycle-controller",
)


# Encrypted at rest in etcd (EncryptionConfiguration): Stella's objects, the evidence
# ConfigMaps and Secrets. Anything else (Namespaces, RBAC, workloads) stays plaintext.
ENCRYPTED_RESOURCES = ("secrets", "configmaps", "*.stella.io")
ENCRYPTION_PROVIDER = "secretbox"  # XSalsa20-Poly1305: authenticated, unlike aescbc
ENCRYPTION_KEY_NAME = "local-1"


def binaries() -> dict[str, Path]:
    k8s = CACHE / "bin" / f"k8s-{K8S_VERSION}"
    bins = {
        "kube-apiserver": k8s / "kube-apiserver",
        "kube-controller-manager": k8s / "kube-controller-manager",
        "kube-scheduler": k8s / "kube-scheduler",
        "kwok": CACHE / "bin" / f"kwok-{KWOK_VERSION}" / "kwok",
    }
    bins["etcd"] = CACHE / "bin" / f"etcd-{ETCD_VERSION}" / "etcd"
    venv_bin = Path(sys.executable).parent
    bins["kubectl"] = (
        venv_bin / "kubectl"
        if (venv_bin / "kubectl").exists()
        else Path(shutil.which("kubectl") or "kubectl")
    )
    return bins


def ensure_binaries(workers: bool = True) -> dict[str, Path]:
    bins = binaries()
    needed = (
        bins
        if workers
        else {k: v for k, v in bins.items() if k in {"kube-apiserver", "etcd", "kubectl"}}
    )
    missing = [n for n, p in needed.items() if not p.exists()]
    if missing:
        print(
            f"[cluster] building {', '.join(missing)} (first run only; cached in {CACHE})",
            file=sys.stderr,
        )
        subprocess.run(["bash", str(HACK / "build-binaries.sh"), "all"], check=True)
    return bins


@dataclass
class ControlPlane:
    state: Path
    with_workers: bool = True  # controller-manager, scheduler, kwok
    encrypt_at_rest: bool = True  # off only for bench/bench_at_rest.py's floor
    profiling: bool = False  # /debug/pprof on kube-apiserver (bench/bench_webhooks.py --profile)
    ports: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    procs: list[Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = self.state.resolve()  # kubeconfigs name files by absolute path

    # ---- paths -------------------------------------------------------------------------
    @property
    def pki_dir(self) -> Path:
        return self.state / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.ports['apiserver']}"

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "stella-local-ca.crt"

    @property
    def encryption_config(self) -> Path:
        return self.state / "encryption-config.yaml"

    @property
    def etcd_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['etcd']}"

    def kubeconfig_for(self, user: str) -> Path:
        """A single-context kubeconfig for one user (handy for subprocesses)."""
        path = self.state / f"kubeconfig-{user.rsplit(':', 1)[-1]}"
        if not path.exists():
            cfg = self._kubeconfig_dict(only=user)
            path.write_text(yaml.safe_dump(cfg))
            path.chmod(0o600)
        return path

    # ---- lifecycle ---------------------------------------------------------------------
    def up(self) -> ControlPlane:
        bins = ensure_binaries(self.with_workers)
        self.state.mkdir(parents=True, exist_ok=True)
        # Every `up` is a fresh cluster: no etcd data or kubeconfig of an earlier one.
        shutil.rmtree(self.state / "etcd", ignore_errors=True)
        for stale in self.state.glob("kubeconfig*"):
            stale.unlink()
        self.pki_dir.mkdir(exist_ok=True)
        for name in ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok"):
            self.ports[name] = free_port()
        self._pki()
        self._token_file()
        self._encryption_config()
        logs = self.state / "logs"

        etcd = Process(
            "etcd",
            [
                str(bins["etcd"]),
                f"--data-dir={self.state / 'etcd'}",
                f"--listen-client-urls=http://{LOOPBACK}:{self.ports['etcd']}",
                f"--advertise-client-urls=http://{LOOPBACK}:{self.ports['etcd']}",
                f"--listen-peer-urls=http://{LOOPBACK}:{self.ports['etcd-peer']}",
                f"--initial-advertise-peer-urls=http://{LOOPBACK}:{self.ports['etcd-peer']}",
                f"--initial-cluster=default=http://{LOOPBACK}:{self.ports['etcd-peer']}",
                "--unsafe-no-fsync=true",
                # kube-apiserver's watch-list needs etcd progress notifications.
                "--watch-progress-notify-interval=5s",
                "--listen-metrics-urls=",
                "--log-level=warn",
            ],
            logs / "etcd.log",
        )
        self._start(etcd)
        wait_until(lambda: _http_ok(f"{self.etcd_url}/health"), 30, "etcd", etcd.log)

        api = Process(
            "kube-apiserver",
            [
                str(bins["kube-apiserver"]),
                f"--etcd-servers=http://{LOOPBACK}:{self.ports['etcd']}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={self.ports['apiserver']}",
                f"--tls-cert-file={self.pki_dir / 'apiserver.crt'}",
                f"--tls-private-key-file={self.pki_dir / 'apiserver.key'}",
                f"--client-ca-file={self.ca_file}",
                f"--token-auth-file={self.state / 'tokens.csv'}",
                *(
                    [f"--encryption-provider-config={self.encryption_config}"]
                    if self.encrypt_at_rest
                    else []
                ),
                "--authorization-mode=RBAC",
                "--anonymous-auth=false",
                "--service-cluster-ip-range=10.96.0.0/24",
                f"--service-account-key-file={self.pki_dir / 'sa.key'}",
                f"--service-account-signing-key-file={self.pki_dir / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--storage-media-type=application/json",
                f"--profiling={str(self.profiling).lower()}",
                # Loopback may not be an endpoint of the `kubernetes` Service; nothing here
                # needs that Service, so the reconciler is off.
                "--endpoint-reconciler-type=none",
                "--v=1",
            ],
            logs / "kube-apiserver.log",
        )
        self._start(api)
        self._write_kubeconfig()
        wait_until(lambda: _alive_and(api, self._api_ready), 90, "kube-apiserver", api.log)
        if self.with_workers:
            self._start_workers(bins, logs)
        self._record()
        return self

    def _start(self, proc: Process) -> None:
        proc.start()
        self.procs.append(proc)
        (self.state / "pids").mkdir(exist_ok=True)
        (self.state / "pids" / f"{proc.name}.pid").write_text(str(proc.pid))

    def _start_workers(self, bins: dict[str, Path], logs: Path) -> None:
        admin_cfg = str(self.kubeconfig_for("admin"))
        self._start(
            Process(
                "kube-controller-manager",
                [
                    str(bins["kube-controller-manager"]),
                    f"--kubeconfig={admin_cfg}",
                    f"--authentication-kubeconfig={admin_cfg}",
                    f"--authorization-kubeconfig={admin_cfg}",
                    f"--bind-address={LOOPBACK}",
                    f"--secure-port={self.ports['kcm']}",
                    f"--service-account-private-key-file={self.pki_dir / 'sa.key'}",
                    f"--root-ca-file={self.ca_file}",
                    "--leader-elect=false",
                    "--use-service-account-credentials=false",
                    # Named explicitly: controller names change between releases, and a
                    # cluster without cloud, storage or node IPAM needs only these.
                    "--controllers=" + ",".join(KCM_CONTROLLERS),
                    "--concurrent-deployment-syncs=5",
                    # kwok renews each fake node's Lease every 10 s and its status every
                    # 10-15 s (kwok.yaml): six missed renewals before a node is NotReady.
                    "--node-monitor-period=5s",
                    f"--node-monitor-grace-period={NODE_MONITOR_GRACE_SECONDS}s",
                    "--v=1",
                ],
                logs / "kube-controller-manager.log",
            )
        )
        self._start(
            Process(
                "kube-scheduler",
                [
                    str(bins["kube-scheduler"]),
                    f"--kubeconfig={admin_cfg}",
                    f"--authentication-kubeconfig={admin_cfg}",
                    f"--authorization-kubeconfig={admin_cfg}",
                    f"--bind-address={LOOPBACK}",
                    f"--secure-port={self.ports['scheduler']}",
                    "--leader-elect=false",
                    "--v=1",
                ],
                logs / "kube-scheduler.log",
            )
        )
        self._start(
            Process(
                "kwok",
                [
                    str(bins["kwok"]),
                    # Node leases and a short status heartbeat; see the file for why.
                    f"--config={KWOK_CONFIG}",
                    f"--kubeconfig={admin_cfg}",
                    "--manage-all-nodes=true",
                    f"--server-address={LOOPBACK}:{self.ports['kwok']}",
                    "--cidr=10.244.0.1/24",
                    "--node-ip=10.244.0.1",
                ],
                logs / "kwok.log",
                env={"HOME": str(self.state)},
            )
        )
        self.kubectl("admin", "apply", "-f", "-", stdin=yaml.safe_dump_all(_fake_nodes(2)))

    def _record(self) -> None:
        (self.state / "cluster.json").write_text(
            json.dumps(
                {"server": self.server, "ports": self.ports, "kubeconfig": str(self.kubeconfig)}
            )
        )

    def check_alive(self) -> None:
        """Raise with the log's tail if any component has died."""
        for proc in self.procs:
            if not proc.alive():
                tail = "\n".join(proc.log.read_text(errors="replace").splitlines()[-15:])
                raise RuntimeError(f"{proc.name} exited; last lines of {proc.log}:\n{tail}")

    def down(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
        stop_recorded(self.state)

    # ---- helpers -----------------------------------------------------------------------
    def _pki(self) -> None:
        ca_crt, ca_key = pki.make_ca(self.pki_dir)
        pki.issue(
            ca_crt,
            ca_key,
            self.pki_dir,
            "apiserver",
            [
                LOOPBACK,
                "localhost",
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
            ],
        )
        pki.make_rsa_key(self.pki_dir / "sa.key")

    def _encryption_config(self) -> None:
        """A fresh 32-byte key for this cluster, in a 0600 file of its state dir (never
        printed or logged). Only the first provider encrypts; there is no `identity`
        fallback, since every `up` starts from an empty etcd."""
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        config = {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "EncryptionConfiguration",
            "resources": [
                {
                    "resources": list(ENCRYPTED_RESOURCES),
                    "providers": [
                        {
                            ENCRYPTION_PROVIDER: {
                                "keys": [{"name": ENCRYPTION_KEY_NAME, "secret": key}]
                            }
                        }
                    ],
                }
            ],
        }
        self.encryption_config.touch(mode=0o600)
        self.encryption_config.chmod(0o600)
        self.encryption_config.write_text(yaml.safe_dump(config))

    def _token_file(self) -> None:
        rows = []
        for i, (user, groups) in enumerate(USERS.items(), start=1):
            token = secrets.token_hex(24)
            self.tokens[user] = token
            rows.append(
                f'{token},{user},uid-{i:04d}-{user.rsplit(":", 1)[-1]},"{",".join(groups)}"'
            )
        path = self.state / "tokens.csv"
        path.write_text("\n".join(rows) + "\n")
        path.chmod(0o600)

    def _kubeconfig_dict(self, only: str | None = None) -> dict[str, object]:
        users = [u for u in USERS if only is None or u == only]
        short = {u: u.rsplit(":", 1)[-1] for u in users}
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "stella-local",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": short[u], "user": {"token": self.tokens[u]}} for u in users],
            "contexts": [
                {"name": short[u], "context": {"cluster": "stella-local", "user": short[u]}}
                for u in users
            ],
            "current-context": short[users[0]] if only else "admin",
        }

    def _write_kubeconfig(self) -> None:
        self.kubeconfig.write_text(yaml.safe_dump(self._kubeconfig_dict()))
        self.kubeconfig.chmod(0o600)
        for user in USERS:  # one single-context file each, for processes run as that user
            self.kubeconfig_for(user)

    def _api_ready(self) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        req = urllib.request.Request(
            f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.tokens['admin']}"}
        )
        with urllib.request.urlopen(req, context=ctx, timeout=2) as r:
            return bool(r.status == 200)

    def kubectl(
        self, user: str, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(binaries()["kubectl"]),
                f"--kubeconfig={self.kubeconfig}",
                f"--context={user}",
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            check=check,
        )


def _alive_and(proc: Process, check: object) -> bool:
    if not proc.alive():
        raise RuntimeError(f"{proc.name} exited; see {proc.log}")
    return bool(check())  # type: ignore[operator]


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as r:
        return bool(r.status == 200)


def _fake_nodes(count: int) -> list[dict[str, object]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"kwok-node-{i}",
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": f"kwok-node-{i}",
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "1000"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "1000"},
            },
        }
        for i in range(count)
    ]


def stop_recorded(state: Path) -> None:
    """Stop every process an earlier `up` recorded, newest first."""
    pids = state / "pids"
    if not pids.exists():
        return
    order = ["kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]
    files = sorted(pids.glob("*.pid"), key=lambda p: order.index(p.stem) if p.stem in order else -1)
    for pidfile in files:
        kill_pidfile(pidfile)
