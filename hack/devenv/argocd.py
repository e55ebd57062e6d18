"""A real Argo CD, out of cluster, on loopback (issue 14): Debian's Redis, a git daemon
serving local repositories, argocd-repo-server (which shells out to git, kustomize and
helm) and
argocd-application-controller against a control plane through a kubeconfig — the way
Argo CD's own Procfile runs it for local development. Built by hack/build-binaries.sh
(argocd: the multicall binary of github.com/argoproj/argo-cd/v2, kustomize v5); its
install ConfigMaps, Secret and CRDs come from the same module's manifests/."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from devenv.proc import LOOPBACK, Process, free_port, port_open, wait_until

ARGOCD_VERSION = os.environ.get("ARGOCD_VERSION", "v2.14.21")
KUSTOMIZE_VERSION = os.environ.get("KUSTOMIZE_VERSION", "v5.4.3")
HELM_VERSION = os.environ.get("HELM_VERSION", "v3.22.0")  # the chart tests' helm
CACHE = Path(os.environ.get("STELLA_CACHE", Path.home() / ".cache" / "stella"))
MANIFESTS = CACHE / f"argocd-{ARGOCD_VERSION}"  # crds/ and config/ from the module zip


def argocd_binary() -> Path:
    return CACHE / "bin" / f"argocd-{ARGOCD_VERSION}" / "argocd"


def kustomize_binary() -> Path:
    return CACHE / "bin" / f"kustomize-{KUSTOMIZE_VERSION}" / "kustomize"


def helm_binary() -> Path:
    return CACHE / "bin" / f"helm-{HELM_VERSION}" / "helm"


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "stella-tests",
        "GIT_AUTHOR_EMAIL": "tests@stella.invalid",
        "GIT_COMMITTER_NAME": "stella-tests",
        "GIT_COMMITTER_EMAIL": "tests@stella.invalid",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@dataclass
class GitRepos:
    """`git daemon` serving every repository under `root` read-only on loopback
    (git://127.0.0.1:PORT/NAME.git)."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: Process | None = None

    def url(self, name: str) -> str:
        return f"git://{LOOPBACK}:{self.port}/{name}.git"

    def commit(self, name: str, files: dict[str, str], message: str) -> str:
        """Write `files` (path -> text) into repository `name` on branch main and commit
        them; returns the commit's SHA."""
        repo = self.root / f"{name}.git"
        if not repo.exists():
            repo.mkdir(parents=True)
            _git(repo, "init", "-q", "-b", "main")
        for path, text in files.items():
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_text(text)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", message)
        return _git(repo, "rev-parse", "HEAD")

    def start(self) -> GitRepos:
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = Process(
            "git-daemon",
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--informative-errors",
                f"--listen={LOOPBACK}",
                f"--port={self.port}",
                f"--base-path={self.root}",
                str(self.root),
            ],
            self.root.parent / "git-daemon.log",
        ).start()
        wait_until(lambda: port_open(self.port), 30, "git daemon", self.proc.log)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


@dataclass
class ArgoCD:
    """Redis + argocd-repo-server + argocd-application-controller for `namespace` of the
    control plane behind `kubeconfig` (a single-context admin kubeconfig: Argo CD's own
    controller has cluster-wide rights in its install manifests too)."""

    workdir: Path
    kubeconfig: Path
    namespace: str = "argocd"
    procs: list[Process] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def require_built() -> None:
        """Say what to run when the binaries or manifests are not there (instead of a
        bare FileNotFoundError from the first process started)."""
        crds = sorted((MANIFESTS / "crds").glob("*-crd.yaml"))
        config = sorted((MANIFESTS / "config").glob("argocd-*.yaml"))
        wanted = (argocd_binary(), kustomize_binary(), helm_binary())
        missing = [str(p) for p in wanted if not p.exists()]
        if missing or not crds or not config:
            raise FileNotFoundError(
                f"Argo CD {ARGOCD_VERSION} is not built ({', '.join(missing) or MANIFESTS}); "
                "run `make binaries` (hack/build-binaries.sh argocd)"
            )

    def start(self) -> ArgoCD:
        self.require_built()
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name in ("redis", "repo", "repo-metrics", "controller-metrics"):
            self.ports[name] = free_port()
        redis = shutil.which("redis-server")
        if redis is None:
            raise FileNotFoundError("redis-server not found; run `make deps` to install it")
        self._start(
            "redis",
            [
                redis,
                "--bind", LOOPBACK,
                "--port", str(self.ports["redis"]),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
            ],
        )  # fmt: skip
        wait_until(lambda: port_open(self.ports["redis"]), 30, "redis", self.procs[-1].log)
        tls, ssh, gpg = (self.workdir / d for d in ("tls", "ssh", "gpg"))
        for d in (tls, ssh, gpg):
            d.mkdir(exist_ok=True)
        # The repo-server shells out to kustomize and helm (and git).
        tools = f"{kustomize_binary().parent}:{helm_binary().parent}"
        path = f"{tools}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        common = {
            "ARGOCD_TLS_DATA_PATH": str(tls),
            "ARGOCD_SSH_DATA_PATH": str(ssh),
            "ARGOCD_GNUPGHOME": str(gpg),
            "ARGOCD_GPG_ENABLED": "false",
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": path,
            "HOME": str(self.workdir),
        }
        redis_addr = f"{LOOPBACK}:{self.ports['redis']}"
        self._start(
            "argocd-repo-server",
            [
                str(argocd_binary()),
                "--address", LOOPBACK,
                "--port", str(self.ports["repo"]),
                "--metrics-address", LOOPBACK,
                "--metrics-port", str(self.ports["repo-metrics"]),
                "--redis", redis_addr,
                "--disable-tls",
                "--loglevel", "info",
            ],
            {**common, "ARGOCD_BINARY_NAME": "argocd-repo-server"},
        )  # fmt: skip
        wait_until(
            lambda: port_open(self.ports["repo"]), 60, "argocd-repo-server", self.procs[-1].log
        )
        self._start(
            "argocd-application-controller",
            [
                str(argocd_binary()),
                "--namespace", self.namespace,
                "--redis", redis_addr,
                "--repo-server", f"{LOOPBACK}:{self.ports['repo']}",
                "--repo-server-plaintext",
                "--metrics-port", str(self.ports["controller-metrics"]),
                "--loglevel", "info",
            ],
            {
                **common,
                "ARGOCD_BINARY_NAME": "argocd-application-controller",
                # The in-cluster destination (https://kubernetes.default.svc) is the cluster
                # of KUBECONFIG, as in Argo CD's Procfile.
                "ARGOCD_FAKE_IN_CLUSTER": "true",
                "HOSTNAME": "argocd-application-controller-0",
            },
        )  # fmt: skip
        return self

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        proc = Process(name, argv, self.workdir / f"{name}.log", env=env, cwd=self.workdir)
        self.procs.append(proc.start())

    def check_alive(self) -> None:
        dead = [p.name for p in self.procs if not p.alive()]
        if dead:
            raise RuntimeError(
                f"Argo CD process(es) exited: {', '.join(dead)} (logs in {self.workdir})"
            )

    def logs(self, name: str = "argocd-application-controller") -> str:
        log = self.workdir / f"{name}.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


def server_secret_key() -> str:
    """A fresh argocd-secret server.secretkey (Argo CD's settings refuse a missing one)."""
    return secrets.token_urlsafe(32)
