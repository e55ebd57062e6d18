"""OpenBao (Vault API), the distribution registry, PostgreSQL and Prometheus, each real, on
loopback."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devenv.proc import LOOPBACK, Process, free_port, wait_until


def _which(name: str, *extra_dirs: str) -> str:
    for d in extra_dirs:
        cand = Path(d) / name
        if cand.exists():
            return str(cand)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found; run `make deps` (or .ci/run) to install it")
    return found


def _venv_bin(name: str) -> str:
    import sys

    return _which(name, str(Path(sys.executable).parent))


@dataclass
class OpenBao:
    """`bao server -dev`: in-memory, unsealed, KV v2 at secret/, root token `root`."""

    workdir: Path
    port: int = field(default_factory=free_port)
    root_token: str = "root"
    proc: Process | None = None

    @property
    def addr(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> OpenBao:
        self.proc = Process(
            "openbao",
            [
                _venv_bin("bao"),
                "server",
                "-dev",
                f"-dev-root-token-id={self.root_token}",
                f"-dev-listen-address={LOOPBACK}:{self.port}",
            ],
            self.workdir / "openbao.log",
            env={"HOME": str(self.workdir), "BAO_DISABLE_MLOCK": "true"},
        ).start()
        wait_until(self._healthy, 30, "OpenBao", self.proc.log)
        return self

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.addr}/v1/sys/health", timeout=1) as r:
            return bool(json.load(r).get("initialized"))

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


@dataclass
class Registry:
    """Distribution v2 with filesystem storage; optional htpasswd basic auth."""

    workdir: Path
    port: int = field(default_factory=free_port)
    htpasswd: dict[str, str] | None = None
    token_auth: dict[str, str] | None = None  # realm, service, issuer, rootcertbundle
    # Notification endpoints: [{name, url, headers: {Header: [value]}}]; with `ca`, the
    # registry trusts that CA for them (Go reads SSL_CERT_FILE).
    notifications: list[dict[str, object]] | None = None
    ca: Path | None = None
    proc: Process | None = None

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def config(self) -> str:
        storage = self.workdir / "registry-data"
        storage.mkdir(parents=True, exist_ok=True)
        lines = [
            "version: 0.1",
            "log: {level: warn}",
            f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}",
            f"http: {{addr: '{self.host}'}}",
        ]
        if self.htpasswd:
            path = self.workdir / "htpasswd"
            path.write_text("".join(f"{u}:{_bcrypt(p)}\n" for u, p in self.htpasswd.items()))
            lines.append(f"auth: {{htpasswd: {{realm: stella-test, path: {path}}}}}")
        if self.token_auth:
            t = self.token_auth
            lines.append(
                "auth: {token: {"
                f"realm: '{t['realm']}', service: '{t['service']}', issuer: '{t['issuer']}', "
                f"rootcertbundle: '{t['rootcertbundle']}'"
                "}}"
            )
        if self.notifications:
            endpoints = [
                {"timeout": "5s", "threshold": 3, "backoff": "1s", **e} for e in self.notifications
            ]
            lines.append("notifications: " + json.dumps({"endpoints": endpoints}))
        cfg = self.workdir / "registry.yml"
        cfg.write_text("\n".join(lines) + "\n")
        return str(cfg)

    def start(self) -> Registry:
        self.proc = Process(
            "registry",
            [_which("docker-registry", "/usr/bin"), "serve", self.config()],
            self.workdir / "registry.log",
            env={"SSL_CERT_FILE": str(self.ca)} if self.ca else None,
        ).start()
        wait_until(self._up, 20, "registry", self.proc.log)
        return self

    def _up(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.url}/v2/", timeout=1)
        except urllib.error.HTTPError as e:
            return e.code == 401
        return True

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


@dataclass
class ReferrersRegistry(Registry):
    """An OCI registry with the OCI 1.1 Referrers API (go-containerregistry's, in memory;
    hack/referrers-registry, built on first use by hack/build-binaries.sh). No auth."""

    def start(self) -> ReferrersRegistry:
        script = Path(__file__).resolve().parents[1] / "build-binaries.sh"
        out = subprocess.run(
            ["bash", str(script), "referrers-registry"], check=True, capture_output=True, text=True
        )
        binary = Path(out.stdout.strip().splitlines()[-1]) / "referrers-registry"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = Process(
            "referrers-registry",
            [str(binary), "--address", self.host],
            self.workdir / "referrers-registry.log",
        ).start()
        wait_until(self._up, 20, "referrers-registry", self.proc.log)
        return self


def _bcrypt(password: str) -> str:
    """htpasswd bcrypt via the `htpasswd` tool when present, else Python's crypt-free path."""
    htpasswd = shutil.which("htpasswd")
    if htpasswd:
        out = subprocess.run(
            [htpasswd, "-nbB", "u", password], check=True, capture_output=True, text=True
        ).stdout
        return out.strip().split(":", 1)[1]
    import bcrypt  # type: ignore[import-not-found]

    return str(bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode())


@dataclass
class Prometheus:
    """Debian's Prometheus scraping the given loopback targets every second; stop() and
    start() again keep its port and data (a Prometheus that was down and came back)."""

    workdir: Path
    targets: dict[str, str]  # job -> host:port serving /metrics
    port: int = field(default_factory=free_port)
    proc: Process | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def config(self) -> str:
        jobs = "".join(
            f"- job_name: {job}\n  static_configs: [{{targets: ['{target}']}}]\n"
            for job, target in sorted(self.targets.items())
        )
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n" + jobs
        )
        return str(cfg)

    def start(self) -> Prometheus:
        self.proc = Process(
            "prometheus",
            [
                _which("prometheus", "/usr/bin"),
                f"--config.file={self.config()}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--log.level=warn",
            ],
            self.workdir / "prometheus.log",
        ).start()
        wait_until(self._up, 60, "prometheus", self.proc.log)
        return self

    def _up(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
            return bool(r.status == 200)

    def query(self, promql: str) -> list[float]:
        """The values of an instant query (empty when there is no data)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as r:
            data = json.loads(r.read())["data"]
        return [float(s["value"][1]) for s in data["result"]]

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster under a temp dir, listening on loopback only, and
    only over TLS: a CA and a server certificate (SANs 127.0.0.1, localhost) are made for
    it, pg_hba.conf has no plain `host` line, and dsn() says sslmode=verify-full with that
    CA as sslrootcert."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: Process | None = None
    superuser: str = "postgres"

    def __post_init__(self) -> None:
        # The server runs as the postgres user, who must be able to reach its directories;
        # test temp dirs are 0700 and owned by root, so keep PostgreSQL's own tree apart.
        if os.geteuid() == 0:
            self.workdir = Path(tempfile.mkdtemp(prefix="stella-pg-"))
            os.chmod(self.workdir, 0o755)

    @property
    def datadir(self) -> Path:
        return self.workdir / "pgdata"

    @property
    def tls_dir(self) -> Path:
        return self.workdir / "tls"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the server's certificate (what a client's sslrootcert names)."""
        return self.tls_dir / "postgres-ca.crt"

    def dsn(
        self,
        user: str | None = None,
        password: str | None = None,
        db: str = "postgres",
        tls: bool = True,
    ) -> str:
        """tls=False leaves the TLS parameters out (for a client given them otherwise, e.g.
        PGSSLMODE/PGSSLROOTCERT from the chart); the server still refuses plain TCP."""
        user = user or self.superuser
        auth = f"{user}:{password}@" if password else f"{user}@"
        url = f"postgresql://{auth}{LOOPBACK}:{self.port}/{db}"
        if not tls:
            return url
        query = urllib.parse.urlencode({"sslmode": "verify-full", "sslrootcert": self.ca_file})
        return f"{url}?{query}"

    def _user(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def start(self) -> Postgres:
        bindir = Path(_which("initdb", "/usr/lib/postgresql/15/bin")).parent
        self.workdir.mkdir(parents=True, exist_ok=True)
        sockdir = self.workdir / "pgsock"
        if not self.datadir.exists():
            self.datadir.mkdir(parents=True)
            sockdir.mkdir(exist_ok=True)
            if self._user():
                shutil.chown(self.datadir, "postgres", "postgres")
                shutil.chown(sockdir, "postgres", "postgres")
                os.chmod(self.workdir, 0o755)
            pwfile = Path(tempfile.mkstemp(dir=self.workdir)[1])
            pwfile.write_text("postgres\n")
            if self._user():
                shutil.chown(pwfile, "postgres", "postgres")
            subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    self.superuser,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                ],
                check=True,
                capture_output=True,
                user=self._user(),
            )
            pwfile.unlink()
            self._tls()
        self.proc = Process(
            "postgres",
            [
                str(bindir / "postgres"),
                "-D",
                str(self.datadir),
                "-k",
                str(sockdir),
                "-h",
                LOOPBACK,
                "-p",
                str(self.port),
                "-c",
                "fsync=off",
                "-c",
                "ssl=on",
                "-c",
                f"ssl_cert_file={self.tls_dir / 'server.crt'}",
                "-c",
                f"ssl_key_file={self.tls_dir / 'server.key'}",
            ],
            self.workdir / "postgres.log",
            preexec_user=self._user(),
        ).start()
        wait_until(self._ready, 30, "PostgreSQL", self.proc.log)
        return self

    def _tls(self) -> None:
        """Once per cluster (a restart keeps them): the CA, the server's certificate and
        key (owned by the server's user, 0600, as PostgreSQL demands), and a pg_hba.conf
        that accepts TCP only over TLS."""
        from devenv import pki

        ca_crt, ca_key = pki.make_ca(self.tls_dir, "postgres-ca")
        pki.issue(ca_crt, ca_key, self.tls_dir, "server", [LOOPBACK, "localhost"])
        if self._user():
            shutil.chown(self.tls_dir / "server.key", "postgres", "postgres")
            os.chmod(self.tls_dir, 0o755)
        (self.datadir / "pg_hba.conf").write_text(
            "local all all scram-sha-256\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
            "hostssl all all ::1/128 scram-sha-256\n"
        )

    def _ready(self) -> bool:
        import psycopg

        with psycopg.connect(self.dsn(password="postgres"), connect_timeout=1):
            return True

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def destroy(self) -> None:
        """Stop and remove the cluster's files (stop alone keeps them for a restart)."""
        self.stop()
        if os.geteuid() == 0:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()


def push_image(
    registry_url: str, repo: str, tag: str, payload: bytes, auth: str | None = None
) -> str:
    """Push a tiny OCI image (one layer) and return its manifest digest."""

    def req(
        method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> urllib.request.Request:
        r = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        if auth:
            r.add_header("Authorization", auth)
        return r

    def put_blob(blob: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        with urllib.request.urlopen(req("POST", f"{registry_url}/v2/{repo}/blobs/uploads/")) as r:
            loc = r.headers["Location"]
        if loc.startswith("/"):
            loc = registry_url + loc
        sep = "&" if "?" in loc else "?"
        urllib.request.urlopen(
            req(
                "PUT",
                f"{loc}{sep}digest={digest}",
                blob,
                {"Content-Type": "application/octet-stream"},
            )
        ).close()
        return digest

    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    cfg_digest = put_blob(config)
    layer_digest = put_blob(payload)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": cfg_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(payload),
                }
            ],
        },
        separators=(",", ":"),
    ).encode()
    urllib.request.urlopen(
        req(
            "PUT",
            f"{registry_url}/v2/{repo}/manifests/{tag}",
            manifest,
            {"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
    ).close()
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
