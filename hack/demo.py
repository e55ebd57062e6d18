"""`make demo`: a local control plane, a registry, the operator, and a promotion through
dev -> staging -> prod, told in words. Everything stays running; `make demo-down` stops it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hack"))

from devenv import existing  # noqa: E402
from devenv.bootstrap import bootstrap  # noqa: E402
from devenv.controlplane import (  # noqa: E402
    ADMISSION_USER,
    OPERATOR_USER,
    USERS,
    ControlPlane,
    people,
    stop_recorded,
)
from devenv.proc import Process, free_port, http_ok, kill_pidfile, wait_until  # noqa: E402
from devenv.services import Registry, push_image  # noqa: E402
from devenv.webhooks import make_serving_cert, register, wait_for_release_params  # noqa: E402

STATE = Path(os.environ.get("STELLA_DEMO_STATE", ROOT / ".local" / "demo"))
STELLA_DIR = Path(sys.executable).parent
STELLA = str(STELLA_DIR / "stella")


def shown(text: str, width: int = 100) -> str:
    """Command output under a step: every line indented and wrapped, never cut, since the
    end of a refusal is where it says what to do (write the image as repo@sha256:...)."""
    out: list[str] = []
    for line in text.splitlines():
        wrapped = textwrap.wrap(
            line, width, initial_indent="    ", subsequent_indent="      ",
            break_long_words=False, break_on_hyphens=False,
        )  # fmt: skip
        out.extend(wrapped or [""])
    return "\n".join(out)


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def kubectl(cp: ControlPlane, user: str, *args: str, stdin: str | None = None) -> str:
    out = cp.kubectl(user, *args, stdin=stdin, check=False)
    if out.returncode != 0:
        return out.stderr.strip()
    return out.stdout.strip()


def stella(cp: ControlPlane, user: str, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig_for(user))}
    out = subprocess.run([STELLA, *args], env=env, capture_output=True, text=True, check=False)
    return (out.stdout + out.stderr).strip()


def wait_for(cp: ControlPlane, release: str, env: str, phase: str, timeout: float = 90) -> None:
    jsonpath = f'{{.status.environments[?(@.name=="{env}")].phase}}'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            kubectl(cp, "admin", "get", "rel", release, "-n", "shop", "-o", f"jsonpath={jsonpath}")
            == phase
        ):
            return
        time.sleep(1)
    raise SystemExit(
        f"{release} did not reach {phase} in {env} within {timeout:.0f}s; see {STATE}/operator.log"
    )


def down() -> int:
    for name in ("operator", "admission", "registry"):
        kill_pidfile(STATE / f"{name}.pid")
    stop_recorded(STATE / "cluster")
    (STATE / "cluster" / "cluster.json").unlink(missing_ok=True)
    print(
        "demo stopped: operator, admission, registry and local control plane are down (an existing cluster is left running)"
    )
    return 0


def up() -> int:
    if (STATE / "cluster" / "cluster.json").exists():
        print(
            f"a demo is already running (state in {STATE}); `make demo-down` first", file=sys.stderr
        )
        return 1
    STATE.mkdir(parents=True, exist_ok=True)
    # A fresh cluster needs a fresh evidence log: an old log beside new ConfigMaps is
    # exactly the disagreement `stella evidence verify` reports.
    shutil.rmtree(STATE / "operator-state", ignore_errors=True)
    if existing.requested():
        say("Using the cluster of KUBECONFIG (STELLA_CLUSTER=existing); nothing of it is stopped")
        cp: ControlPlane = existing.ExistingCluster.from_env(STATE / "cluster").up()
    else:
        say(
            "Starting a real Kubernetes control plane on 127.0.0.1 (etcd, kube-apiserver, controller-manager, scheduler, kwok)"
        )
        cp = ControlPlane(STATE / "cluster").up()
    bootstrap(cp)
    print(f"    API server {cp.server}; CRDs and RBAC installed")
    print(f"    people (kubectl/stella --context NAME): {people(USERS)}")

    say("Starting an OCI registry and pushing two versions of shop/web")
    registry = Registry(STATE / "registry").start()
    assert registry.proc is not None
    (STATE / "registry.pid").write_text(str(registry.proc.pid))
    v1 = f"{registry.host}/shop/web@{push_image(registry.url, 'shop/web', '1.0', b'shop web 1.0')}"
    v2 = f"{registry.host}/shop/web@{push_image(registry.url, 'shop/web', '1.1', b'shop web 1.1')}"
    print(f"    1.0 is {v1}\n    1.1 is {v2}")

    say(
        "Starting Stella as the chart runs it: admission (its webhooks, TLS on loopback) "
        "and the operator (the promotion engine), each its own process and identity"
    )
    ca, crt, key = make_serving_cert(STATE / "webhook-pki")
    admission_port, hook_port, http_port = free_port(), free_port(), free_port()
    adm = Process(
        "admission",
        [STELLA, "admission", "run"],
        STATE / "admission.log",
        env={
            "KUBECONFIG": str(cp.kubeconfig_for(ADMISSION_USER)),
            "STELLA_HTTP_PORT": str(admission_port),
            "STELLA_WEBHOOK_CERT": str(crt),
            "STELLA_WEBHOOK_KEY": str(key),
            "STELLA_WEBHOOK_PORT": str(hook_port),
        },
    ).start()
    (STATE / "admission.pid").write_text(str(adm.pid))
    op = Process(
        "operator",
        [STELLA, "operator", "run"],
        STATE / "operator.log",
        env={
            "KUBECONFIG": str(cp.kubeconfig_for(OPERATOR_USER)),
            "STELLA_HTTP_PORT": str(http_port),
            "STELLA_STATE_DIR": str(STATE / "operator-state"),
            "STELLA_INSECURE_REGISTRIES": registry.host,
            "STELLA_RESYNC_SECONDS": "5",
        },
    ).start()
    (STATE / "operator.pid").write_text(str(op.pid))
    # /readyz answers once each has read every Release, Environment and Approval: before
    # that admission refuses to decide (fails closed), so nothing is applied yet.
    wait_until(
        lambda: http_ok(f"http://127.0.0.1:{admission_port}/readyz"),
        120,
        "admission /readyz",
        adm.log,
    )
    wait_until(
        lambda: http_ok(f"http://127.0.0.1:{http_port}/readyz"), 120, "operator /readyz", op.log
    )
    register(cp, ca, hook_port)
    print(f"    admission: metrics at http://127.0.0.1:{admission_port}/metrics; log in {adm.log}")
    print(f"    operator: metrics at http://127.0.0.1:{http_port}/metrics; log in {op.log}")

    say(
        "Creating namespaces and a Deployment per stage, and the Environments dev -> staging -> prod"
    )
    manifests = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "shop", "labels": {"team": "shop"}},
        },
    ]
    for stage in ("dev", "staging", "prod"):
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": f"shop-{stage}", "labels": {"stella.io/managed": "true"}},
            }
        )
    import yaml

    kubectl(cp, "admin", "apply", "-f", "-", stdin=yaml.safe_dump_all(manifests))
    for stage in ("dev", "staging", "prod"):
        # The operator's approved-digests ConfigMap first: without it the API server's
        # policy refuses every workload of a managed namespace (fail closed).
        kubectl(
            cp,
            "admin",
            "wait",
            "--for=create",
            "configmap/stella-approved-digests",
            "-n",
            f"shop-{stage}",
            "--timeout=60s",
        )
        kubectl(
            cp,
            "admin",
            "create",
            "deployment",
            "web",
            f"--image={v1}",
            "--replicas=2",
            "-n",
            f"shop-{stage}",
        )
    envs = [
        ("dev", [], 0),
        ("staging", ["dev"], 1),
        ("prod", ["staging"], 2),
    ]
    env_docs = [
        {
            "apiVersion": "stella.io/v1alpha1",
            "kind": "Environment",
            "metadata": {"name": name},
            "spec": {
                "requires": req,
                "targets": [{"namespace": f"shop-{name}"}],
                "allowedRegistries": [registry.host],
                "approvals": {"required": n, "approverGroups": ["release-approvers"]},
                "rollout": {"timeout": "2m"},
            },
        }
        for name, req, n in envs
    ]
    print(kubectl(cp, "admin", "apply", "-f", "-", stdin=yaml.safe_dump_all(env_docs)))
    # The API server judges a Release by the Environments the operator has published to it.
    wait_for_release_params(cp, *(name for name, _, _ in envs))

    say("alice (a release requester) creates Release shop-1-1 with the pinned 1.1 image")
    release: dict[str, Any] = {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Release",
        "metadata": {"name": "shop-1-1", "namespace": "shop"},
        "spec": {
            "version": "1.1",
            "environments": ["dev", "staging", "prod"],
            "components": [
                {
                    "name": "web",
                    "image": v2,
                    "workload": {"kind": "Deployment", "name": "web", "container": "web"},
                }
            ],
        },
    }
    print(kubectl(cp, "alice", "apply", "-f", "-", stdin=yaml.safe_dump(release)))
    print("    an unpinned image would not even be stored:")
    bad = {
        **release,
        "metadata": {"name": "shop-bad", "namespace": "shop"},
        "spec": {
            **release["spec"],
            "components": [
                {**release["spec"]["components"][0], "image": f"{registry.host}/shop/web:1.1"}
            ],
        },
    }
    refused = kubectl(cp, "alice", "apply", "-f", "-", stdin=yaml.safe_dump(bad))
    print(shown(refused))

    say(
        "dev needs no approval: Stella verifies the digest in the registry, records evidence, and rolls it out"
    )
    wait_for(cp, "shop-1-1", "dev", "Deployed")
    print(stella(cp, "alice", "status", "shop/shop-1-1"))

    say(
        "staging needs one approval from release-approvers. alice is not an approver (RBAC says no):"
    )
    print(shown(stella(cp, "alice", "approve", "shop/shop-1-1", "staging")))
    say("bob approves staging")
    print(shown(stella(cp, "bob", "approve", "shop/shop-1-1", "staging", "--comment", "CAB-1")))
    wait_for(cp, "shop-1-1", "staging", "Deployed")

    say("prod needs two distinct approvers: bob, then carol")
    print(shown(stella(cp, "bob", "approve", "shop/shop-1-1", "prod", "--comment", "CAB-2")))
    time.sleep(3)
    print(stella(cp, "alice", "status", "shop/shop-1-1"))
    print(shown(stella(cp, "carol", "approve", "shop/shop-1-1", "prod", "--comment", "CAB-2")))
    wait_for(cp, "shop-1-1", "prod", "Deployed")
    print(kubectl(cp, "admin", "get", "rel", "-n", "shop"))
    print(kubectl(cp, "admin", "get", "env"))

    say(
        "dave is a requester AND an approver. He asks for a hotfix and tries to approve it for staging:"
    )
    hotfix = {
        **release,
        "metadata": {"name": "shop-1-1-hotfix", "namespace": "shop"},
        "spec": {**release["spec"], "environments": ["dev", "staging"]},
    }
    print(shown(kubectl(cp, "dave", "apply", "-f", "-", stdin=yaml.safe_dump(hotfix))))
    wait_for(cp, "shop-1-1-hotfix", "staging", "WaitingForApproval")
    print(shown(stella(cp, "dave", "approve", "shop/shop-1-1-hotfix", "staging")))

    say(
        "erin (an auditor) verifies the evidence trail: signatures, hash chains, ConfigMaps vs the external log"
    )
    log_path = STATE / "operator-state" / "evidence.jsonl"
    print(stella(cp, "erin", "evidence", "verify", "--log", str(log_path)))

    say("Done. Everything is still running:")
    print(f"    export KUBECONFIG={cp.kubeconfig}")
    print(f"    export STELLA_EVIDENCE_LOG={log_path}   # the log the operator writes")
    print(f"    export PATH={STELLA_DIR}:$PATH   # stella (and kubectl) from .venv")
    print(
        "    kubectl get rel,env -A ; stella status shop/shop-1-1 ; kubectl --context bob get appr -n shop"
    )
    print(
        "    next: docs/guides/README.md walks each person (platform engineer, requester, approver, auditor) through it"
    )
    print(
        "    make demo-down   # stops admission, the operator, the registry and the control plane"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--down", action="store_true", help="stop everything the demo started")
    args = parser.parse_args()
    if args.down:
        return down()
    try:
        return up()
    except existing.ClusterRefused as exc:
        down()
        print(f"make demo: {exc}", file=sys.stderr)
        return 2
    except BaseException:
        down()
        raise


if __name__ == "__main__":
    raise SystemExit(main())
