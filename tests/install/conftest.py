"""install tier: the chart installed with `helm install` into a bare local control plane
(no CRDs or RBAC from hack/ — everything comes from the chart), then the operator run as the
chart's ServiceAccount with exactly the environment and mounts of the chart's Deployment.

The control plane here is its own (not the session `kube` of tests/conftest.py): that one is
bootstrapped with hack/dev-rbac.yaml, whose ClusterRoles carry the chart's names and would
make `helm install` refuse to adopt them.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client
from tests.e2e.shop import Shop
from tests.kube_support import api_client_for, eventually

from devenv import existing
from devenv.controlplane import CACHE, ControlPlane
from devenv.proc import Process, free_port, port_open, wait_until
from devenv.webhooks import make_serving_cert

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "stella"
HELM = CACHE / "bin" / "helm-v3.22.0" / "helm"
NS = "stella-system"
SA = "stella-operator"
RELEASE = "stella"
STELLA = str(Path(sys.executable).parent / "stella")
PEOPLE = ("admin", "alice", "bob", "carol", "dave", "erin", "frank")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "install: helm install of the chart on a real API server")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/install/" in str(item.fspath):
            item.add_marker(pytest.mark.install)


def helm(kube: ControlPlane, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [str(HELM), "--kubeconfig", str(kube.kubeconfig_for("admin")), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
        env={
            **os.environ,
            "HELM_CACHE_HOME": str(kube.state / "helm-cache"),
            "HELM_CONFIG_HOME": str(kube.state / "helm-config"),
            "HELM_DATA_HOME": str(kube.state / "helm-data"),
        },
    )
    if check:
        assert out.returncode == 0, f"helm {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
    return out


@dataclass
class Install:
    kube: ControlPlane
    admin: client.ApiClient
    values: dict[str, str]
    ca: Path
    webhook_port: int
    http_port: int
    installed_at: float
    helm_seconds: float
    workdir: Path
    pg_password: str
    runtime: str = "process"
    operator: OperatorInPod | None = None
    ready_seconds: float | None = None
    notes: str = ""

    def deployment(self, name: str = SA) -> dict[str, Any]:
        dep = client.AppsV1Api(self.admin).read_namespaced_deployment(name, NS)
        plain = self.admin.sanitize_for_serialization(dep)  # type: ignore[no-untyped-call]
        return cast(dict[str, Any], plain)


@contextmanager
def control_plane(state: Path, with_workers: bool = True) -> Iterator[ControlPlane]:
    """A fresh control plane with nothing of Stella's in it, stopped afterwards."""
    cp = ControlPlane(state, with_workers=with_workers)
    try:
        cp.up()
        yield cp
    finally:
        cp.down()


@pytest.fixture(scope="session")
def bare_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    if existing.requested():  # KUBECONFIG's cluster (hack/devenv/existing.py), left running
        cp: ControlPlane = existing.ExistingCluster.from_env(
            tmp_path_factory.mktemp("existing")
        ).up()
        owned = cp.kubectl("admin", "get", "clusterrole", "stella-requester", check=False)
        if owned.returncode == 0:  # e.g. the e2e tier bootstrapped it earlier in this run
            pytest.skip(
                "tests/install needs a cluster without Stella's roles (helm install creates "
                "them): e.g. `hack/cluster up --bare`"
            )
        yield cp
        return
    with control_plane(tmp_path_factory.mktemp("install-cluster")) as cp:
        yield cp


def shop_path(shop: Shop, **prod_approvals: Any) -> tuple[str, str, str]:
    """dev (automatic) -> staging (one approver) -> prod (two approvers, and whatever else
    prod_approvals says): the Environments' names."""
    group = {"approverGroups": ["release-approvers"]}
    return (
        shop.environment("dev"),
        shop.environment("staging", requires=["dev"], approvals={"required": 1, **group}),
        shop.environment(
            "prod", requires=["staging"], approvals={"required": 2, **group, **prod_approvals}
        ),
    )


@pytest.fixture(scope="session")
def people(bare_kube: ControlPlane) -> dict[str, client.ApiClient]:
    return {u: api_client_for(str(bare_kube.kubeconfig), u) for u in PEOPLE}


def sa_kubeconfig(kube: ControlPlane, path: Path, sa: str = SA) -> Path:
    """A kubeconfig holding a token for one of the chart's ServiceAccounts (the operator's
    by default), minted with the TokenRequest API (what the kubelet projects into a Pod)."""
    token = kube.kubectl("admin", "create", "token", sa, "-n", NS, "--duration=2h").stdout.strip()
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": kube.server, "certificate-authority": str(kube.ca_file)},
            }
        ],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": sa, "context": {"cluster": "local", "user": sa}}],
        "current-context": sa,
    }
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return path


@dataclass
class OperatorInPod:
    """The operator as the chart's Deployment runs it: its container's args and env (from
    the Deployment the API server holds), its volumes materialised where the kubelet would
    put them, authenticated by a ServiceAccount token."""

    proc: Process
    env: dict[str, str]
    http_port: int
    mounts: dict[str, Path] = field(default_factory=dict)
    runtime: str = "process"
    container_id: str = ""
    token: str = ""  # the ServiceAccount token it authenticates with
    # The chart's Deployment stella-admission (`stella admission run`), started beside it.
    admission: OperatorInPod | None = None

    def stop(self) -> None:
        if self.admission is not None:
            self.admission.stop()
        self.proc.stop()
        if self.container_id:
            subprocess.run(
                ["runc", "delete", "-f", self.container_id], capture_output=True, check=False
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def logs(self) -> str:
        return self.proc.log.read_text(errors="replace") if self.proc.log.exists() else ""

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False


def container_env(admin: client.ApiClient, dep: dict[str, Any]) -> dict[str, str]:
    """Resolve the container's env as the kubelet does (value, fieldRef, secretKeyRef)."""
    pod = dep["spec"]["template"]
    container = pod["spec"]["containers"][0]
    ns = dep["metadata"]["namespace"]
    env: dict[str, str] = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
            continue
        ref = e["valueFrom"]
        if "fieldRef" in ref:
            assert ref["fieldRef"]["fieldPath"] == "metadata.namespace", ref
            env[e["name"]] = ns
        elif "secretKeyRef" in ref:
            s = client.CoreV1Api(admin).read_namespaced_secret(ref["secretKeyRef"]["name"], ns)
            assert s.data is not None
            env[e["name"]] = base64.b64decode(s.data[ref["secretKeyRef"]["key"]]).decode()
        else:
            raise AssertionError(f"unsupported env source {ref}")
    return env


def materialise_volumes(
    admin: client.ApiClient, dep: dict[str, Any], root: Path
) -> dict[str, Path]:
    """mountPath -> host directory holding what the kubelet would mount there."""
    pod = dep["spec"]["template"]["spec"]
    ns = dep["metadata"]["namespace"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    out: dict[str, Path] = {}
    for m in pod["containers"][0].get("volumeMounts", []):
        vol = volumes[m["name"]]
        host = root / m["name"]
        host.mkdir(parents=True, exist_ok=True)
        if "secret" in vol:
            s = client.CoreV1Api(admin).read_namespaced_secret(vol["secret"]["secretName"], ns)
            for key, b64 in (s.data or {}).items():
                (host / key).write_bytes(base64.b64decode(b64))
                (host / key).chmod(0o600)
        elif "configMap" in vol:
            cm = client.CoreV1Api(admin).read_namespaced_config_map(vol["configMap"]["name"], ns)
            for key, text in (cm.data or {}).items():
                (host / key).write_text(text)
        elif "emptyDir" in vol or "persistentVolumeClaim" in vol:
            pass  # an empty directory; for a PVC, one that outlives the process
        else:
            raise AssertionError(f"unsupported volume {vol}")
        out[m["mountPath"]] = host
    return out


LAYOUT = ROOT / ".local" / "image" / "oci"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def runtime() -> str:
    """`runc` (the operator from the image, as a container) when the image was built from
    this very commit (`make image`) and runc can run here (root); otherwise `process`
    (`stella operator run` on the host). An image of another commit would test other code
    than the tree's: it is not used. STELLA_INSTALL_RUNTIME forces one."""
    forced = os.environ.get("STELLA_INSTALL_RUNTIME")
    if forced:
        return forced
    usable = (
        os.geteuid() == 0
        and shutil.which("runc")
        and shutil.which("umoci")
        and (LAYOUT / "index.json").exists()
    )
    if not usable:
        return "process"
    revision, head = image_revision(), _head()
    if revision != head:
        print(
            f"[install] image of commit {revision[:12]} but HEAD is {head[:12]}: running "
            "the operator as a process (`make image` to test the image)"
        )
        return "process"
    return "runc"


def _head() -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip()


def image_revision() -> str:
    """The commit the built image says it was made from (its OCI revision label)."""
    try:
        index = json.loads((LAYOUT / "index.json").read_text())
        manifest = json.loads(_blob(index["manifests"][0]["digest"]))
        config = json.loads(_blob(manifest["config"]["digest"]))
    except (OSError, KeyError, IndexError, ValueError):
        return "?"
    labels = (config.get("config") or {}).get("Labels") or {}
    return str(labels.get("org.opencontainers.image.revision") or "?")


def _blob(digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    return (LAYOUT / "blobs" / algo / hexd).read_text()


def image_bundle(workdir: Path) -> Path:
    """The image unpacked into a runtime bundle (once): rootfs + the image's config."""
    bundle = workdir / "bundle"
    if not (bundle / "image-config.json").exists():
        index = json.loads((LAYOUT / "index.json").read_text())
        tag = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
        shutil.rmtree(bundle, ignore_errors=True)
        subprocess.run(
            ["umoci", "unpack", "--image", f"{LAYOUT}:{tag}", str(bundle)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        (bundle / "image-config.json").write_text((bundle / "config.json").read_text())
    return bundle


def runc_config(
    bundle: Path,
    args: list[str],
    env: dict[str, str],
    mounts: dict[str, Path],
    container: dict[str, Any],
    pod: dict[str, Any],
) -> None:
    """config.json as a kubelet would set the container up from the chart's Deployment:
    the pod's user, read-only root, no capabilities, no privilege escalation, host network
    (loopback is the API server's), the volumes and the ServiceAccount token mounted."""
    c = json.loads((bundle / "image-config.json").read_text())
    # The container's command replaces the image's entrypoint; its args follow.
    entrypoint = container.get("command") or c["process"]["args"][:1]
    c["process"]["args"] = [*entrypoint, *args]
    base = dict(e.split("=", 1) for e in c["process"]["env"])
    c["process"]["env"] = [f"{k}={v}" for k, v in {**base, **env}.items()]
    c["process"]["terminal"] = False
    sc, psc = container.get("securityContext", {}), pod.get("securityContext", {})
    uid = sc.get("runAsUser", psc.get("runAsUser", c["process"]["user"]["uid"]))
    assert uid != 0 and psc.get("runAsNonRoot") is True
    c["process"]["user"] = {"uid": uid, "gid": uid, "additionalGids": [psc.get("fsGroup", uid)]}
    c["process"]["noNewPrivileges"] = sc.get("allowPrivilegeEscalation") is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    c["process"]["capabilities"] = {
        k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")
    }
    c["root"]["readonly"] = bool(sc.get("readOnlyRootFilesystem"))
    c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
    for target, host in mounts.items():
        ro = target in (TOKEN_DIR, "/tls")
        c["mounts"].append(
            {
                "destination": target,
                "type": "bind",
                "source": str(host),
                "options": ["rbind", "ro" if ro else "rw", "nosuid", "nodev"],
            }
        )
    c["hostname"] = "stella-operator"
    (bundle / "config.json").write_text(json.dumps(c, indent=1))


def run_pod_once(inst: Install, pod: dict[str, Any], name: str) -> subprocess.CompletedProcess[str]:
    """Run a one-shot Pod of the chart (the `helm test` hook) as a kubelet would: from the
    image under runc (runtime runc), or its command on the host's Python (runtime process).
    Only plain env values and no volumes: what the hook has when webhook.caBundle is set."""
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container.get("env", [])}
    assert not container.get("volumeMounts"), container
    if inst.runtime != "runc":
        argv = [
            sys.executable if a.startswith("/usr/bin/python") else a for a in container["command"]
        ]
        return subprocess.run(
            [*argv, *container.get("args", [])],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    bundle = image_bundle(inst.workdir)
    one = inst.workdir / f"bundle-{name}"
    if not one.exists():  # its own config.json; the rootfs is the operator's (read-only)
        one.mkdir()
        (one / "image-config.json").write_text((bundle / "image-config.json").read_text())
    runc_config(one, container.get("args", []), env, {}, container, pod["spec"])
    config = json.loads((one / "config.json").read_text())
    config["root"]["path"] = str(bundle / "rootfs")
    (one / "config.json").write_text(json.dumps(config, indent=1))
    if not pod["spec"].get("hostNetwork"):
        raise AssertionError("a hook pod without hostNetwork cannot reach loopback")
    cid = f"stella-install-{os.getpid()}-{name}"
    subprocess.run(["runc", "delete", "-f", cid], capture_output=True, check=False)
    try:
        return subprocess.run(
            ["runc", "run", "--bundle", str(one), cid],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        subprocess.run(["runc", "delete", "-f", cid], capture_output=True, check=False)


def host_path(value: str, mounts: dict[str, Path]) -> str:
    for mount, host in mounts.items():
        if value == mount or value.startswith(mount.rstrip("/") + "/"):
            return str(host) + value[len(mount.rstrip("/")) :]
    return value


def runc_operator(
    inst: Install,
    name: str,
    dep: dict[str, Any],
    env: dict[str, str],
    mounts: dict[str, Path],
    volumes: str = "volumes",
) -> tuple[Process, str]:
    """The image under runc: the Deployment's env plus what a kubelet adds for in-cluster
    config (KUBERNETES_SERVICE_HOST/PORT: here the API server on loopback, whose serving
    certificate names 127.0.0.1), and the ServiceAccount token where clients look for it."""
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    fs_group = pod["securityContext"].get("fsGroup", pod["securityContext"]["runAsUser"])
    token_dir = inst.workdir / volumes / "serviceaccount"
    token_dir.mkdir(parents=True, exist_ok=True)
    sa = pod.get("serviceAccountName") or SA
    token = inst.kube.kubectl(
        "admin", "create", "token", sa, "-n", NS, "--duration=2h"
    ).stdout.strip()
    (token_dir / "token").write_text(token)
    (token_dir / "ca.crt").write_bytes(inst.kube.ca_file.read_bytes())
    (token_dir / "namespace").write_text(NS)
    # fsGroup: the pod's group owns its volumes (group-writable directories, readable files).
    for host in [*mounts.values(), token_dir]:
        for path in [host, *host.rglob("*")]:
            os.chown(path, 0, fs_group)
            path.chmod(0o2770 if path.is_dir() else 0o640)
    for parent in (inst.workdir, inst.workdir / volumes):
        parent.chmod(0o755)
    bundle = image_bundle(inst.workdir)
    port = inst.kube.server.rsplit(":", 1)[1]
    runc_config(
        bundle,
        container["args"],
        {
            **env,
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": port,
            "PYTHONUNBUFFERED": "1",
        },
        {**mounts, TOKEN_DIR: token_dir},
        container,
        pod,
    )
    cid = f"stella-install-{os.getpid()}-{name}"
    subprocess.run(["runc", "delete", "-f", cid], capture_output=True, check=False)
    proc = Process(
        name, ["runc", "run", "--bundle", str(bundle), cid], inst.workdir / f"{name}.log"
    )
    return proc, cid


def start_operator_as_chart(
    inst: Install,
    name: str = "operator",
    program: list[str] | None = None,
    overrides: dict[str, str] | None = None,
) -> OperatorInPod:
    """The operator as the Deployment the API server holds says, and beside it admission
    as the Deployment stella-admission says when the chart has one (0.1.0's had not: its
    operator served the webhooks itself). `program` (a host process, e.g. another version's
    code) replaces `stella`; `overrides` change env values the harness cannot honour on a
    shared host (a fixed port)."""
    deployments: list[Any] = client.AppsV1Api(inst.admin).list_namespaced_deployment(NS).items
    names = {d.metadata.name for d in deployments}
    admission = None
    if "stella-admission" in names:
        admission = _start_as_chart(
            inst, "stella-admission", f"{name}-admission", program, None, "volumes-admission"
        )
    try:
        op = _start_as_chart(inst, SA, name, program, overrides, "volumes")
    except BaseException:
        if admission is not None:
            admission.stop()
        raise
    op.admission = admission
    wait_until(lambda: port_open(inst.webhook_port), 30, "admission webhook server", op.proc.log)
    return op


def _start_as_chart(
    inst: Install,
    deployment: str,
    name: str,
    program: list[str] | None,
    overrides: dict[str, str] | None,
    volumes: str,
) -> OperatorInPod:
    dep = inst.deployment(deployment)
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    sa = pod.get("serviceAccountName") or SA
    env = {**container_env(inst.admin, dep), **(overrides or {})}
    # A new pod: its emptyDir starts empty (a restarted operator keeps nothing local).
    shutil.rmtree(inst.workdir / volumes, ignore_errors=True)
    mounts = materialise_volumes(inst.admin, dep, inst.workdir / volumes)
    http_port = int(env["STELLA_HTTP_PORT"])
    if inst.runtime == "runc" and program is None:
        proc, cid = runc_operator(inst, name, dep, env, mounts, volumes)
        ann = json.loads((inst.workdir / "bundle" / "image-config.json").read_text())
        revision = ann.get("annotations", {}).get("org.opencontainers.image.revision", "?")
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        print(
            f"[install] image of commit {revision[:12]}"
            + ("" if revision == head else f" (HEAD is {head[:12]}: `make image` to test it)")
        )
        op = OperatorInPod(proc, env, http_port, mounts, runtime="runc", container_id=cid)
        op.token = (inst.workdir / volumes / "serviceaccount" / "token").read_text()
    else:
        # The mount paths do not exist on this host: an env value naming a file under a
        # mountPath names the same file under the materialised directory.
        env = {k: host_path(v, mounts) for k, v in env.items()}
        full = {
            **env,
            "KUBECONFIG": str(sa_kubeconfig(inst.kube, inst.workdir / f"{sa}-kubeconfig", sa)),
            "HOME": str(inst.workdir / "home"),
            "PYTHONUNBUFFERED": "1",
        }
        (inst.workdir / "home").mkdir(exist_ok=True)
        argv = [*(program or [STELLA]), *container["args"]]
        proc = Process(name, argv, inst.workdir / f"{name}.log", env=full)
        op = OperatorInPod(proc, env, http_port, mounts)
        op.token = yaml.safe_load(Path(full["KUBECONFIG"]).read_text())["users"][0]["user"]["token"]
    proc.start()
    wait_until(op.ready, 120, f"{deployment} /readyz", proc.log)
    return op


def create_evidence_log(postgres: Any, workdir: Path) -> tuple[str, str]:
    """A PostgreSQL evidence log installed as the DBA would (`stella evidence install-log`);
    returns (dsn without password, writer password)."""
    import uuid

    import psycopg

    tag = uuid.uuid4().hex[:8]
    db, writer, reader = f"inst_{tag}", f"inst_w_{tag}", f"inst_r_{tag}"
    with psycopg.connect(postgres.dsn(password="postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    pw = f"w-{uuid.uuid4().hex}"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "writer.pw").write_text(pw + "\n")
    (workdir / "reader.pw").write_text(f"r-{uuid.uuid4().hex}\n")
    out = subprocess.run(
        [
            STELLA,
            "evidence",
            "install-log",
            "--dsn",
            postgres.dsn(db=db),
            "--writer-role",
            writer,
            "--writer-password-file",
            str(workdir / "writer.pw"),
            "--reader-role",
            reader,
            "--reader-password-file",
            str(workdir / "reader.pw"),
        ],
        env={**os.environ, "HOME": str(workdir), "PGPASSWORD": "postgres"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # Without TLS parameters: the chart adds them from evidence.logCA (PGSSLMODE,
    # PGSSLROOTCERT); a chart without that value still gets TLS, the only way in.
    return postgres.dsn(user=writer, db=db, tls=False), pw


LOG_CA_CONFIGMAP = "stella-evidence-log-ca"


def prepare_namespace(kube: ControlPlane, postgres: Any, workdir: Path) -> tuple[Path, str, str]:
    """What a platform engineer makes before `helm install` on a cluster without
    cert-manager: the namespace, a TLS Secret from a new CA, the evidence log and a Secret
    with its writer's password, and a ConfigMap with the CA of the log's TLS certificate.
    Returns (CA file, log DSN without password, password)."""
    ca, crt, key = make_serving_cert(workdir / "webhook-pki")
    dsn, pg_password = create_evidence_log(postgres, workdir / "dba")
    kube.kubectl("admin", "create", "namespace", NS)
    kube.kubectl(
        "admin",
        "create",
        "configmap",
        LOG_CA_CONFIGMAP,
        "-n",
        NS,
        f"--from-file=ca.crt={postgres.ca_file}",
    )
    kube.kubectl(
        "admin",
        "create",
        "secret",
        "tls",
        "stella-webhook-tls",
        "-n",
        NS,
        f"--cert={crt}",
        f"--key={key}",
    )
    kube.kubectl(
        "admin",
        "create",
        "secret",
        "generic",
        "stella-evidence-log",
        "-n",
        NS,
        f"--from-literal=password={pg_password}",
    )
    return ca, dsn, pg_password


def chart_values(ca: Path, dsn: str, webhook_port: int, registry_host: str) -> dict[str, str]:
    """The values every chart version takes for an install here (what prepare_namespace
    made, the local signer, the loopback registry); the image is a placeholder digest."""
    return {
        "image.repository": "127.0.0.1:5000/stella",
        "image.digest": "sha256:" + "0" * 64,
        "webhook.certManager.enabled": "false",
        "webhook.tlsSecretName": "stella-webhook-tls",
        "webhook.caBundle": base64.b64encode(ca.read_bytes()).decode(),
        "webhook.port": str(webhook_port),
        "evidence.signer": "local",
        "evidence.log": dsn,
        "evidence.logPasswordSecret.name": "stella-evidence-log",
        "registries.insecure[0]": registry_host,
    }


@pytest.fixture(scope="session")
def installed(
    bare_kube: ControlPlane,
    registry: Any,
    postgres: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Install]:
    """`helm install` as a platform engineer would on a cluster without cert-manager: the
    namespace, a TLS Secret and the CA bundle made beforehand, webhook.url on loopback."""
    kube = bare_kube
    workdir = tmp_path_factory.mktemp("install")
    admin = api_client_for(str(kube.kubeconfig), "admin")
    ca, dsn, pg_password = prepare_namespace(kube, postgres, workdir)
    webhook_port, http_port = free_port(), free_port()
    values = {
        **chart_values(ca, dsn, webhook_port, registry.host),
        "webhook.url": f"https://127.0.0.1:{webhook_port}",
        "httpPort": str(http_port),
        # Both Deployments' processes share this host's loopback: a port each.
        "admission.httpPort": str(free_port()),
        "evidence.logCA.configMap": LOG_CA_CONFIGMAP,  # verify-full (docs/data-at-rest.md)
    }
    ref = ROOT / ".local" / "image" / "reference"
    if ref.exists():  # the image `make image` pushed, when there is one
        repo, digest = ref.read_text().strip().split("@")
        values["image.repository"], values["image.digest"] = repo, digest
    args = ["install", RELEASE, str(CHART), "-n", NS, "--wait=false"]
    for k, v in values.items():
        args += ["--set", f"{k}={v}"]
    t0 = time.monotonic()
    out = helm(kube, *args)
    inst = Install(
        kube,
        admin,
        values,
        ca,
        webhook_port,
        http_port,
        t0,
        time.monotonic() - t0,
        workdir,
        pg_password,
        notes=out.stdout,
    )
    inst.runtime = runtime()
    try:
        yield inst
    finally:
        if inst.operator:
            inst.operator.stop()
            if os.environ.get("STELLA_TEST_SHOW_LOGS"):
                print(inst.operator.logs())


@pytest.fixture(scope="session")
def operator_as_chart(installed: Install) -> OperatorInPod:
    if installed.operator is None:
        installed.operator = start_operator_as_chart(installed)
        installed.ready_seconds = time.monotonic() - installed.installed_at
        print(
            f"[install] operator as {installed.runtime}; "
            f"helm install {installed.helm_seconds:.1f}s; "
            f"helm install -> operator Ready {installed.ready_seconds:.1f}s"
        )
    return installed.operator


__all__ = ["NS", "Install", "eventually", "helm"]
