"""Serving certificates for a local operator's webhooks, and their registration with
the API server (url: on loopback, never a Service IP), together with the admission
policies the API server runs itself (the chart's own file, applied as is: one source)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import yaml

from devenv import pki
from devenv.controlplane import ControlPlane
from stella.admission.configuration import configurations

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "charts" / "stella" / "files" / "admission-policies.yaml"


def make_serving_cert(directory: Path) -> tuple[Path, Path, Path]:
    """(ca.crt, tls.crt, tls.key) for https://127.0.0.1."""
    ca_crt, ca_key = pki.make_ca(directory, "stella-webhook-ca")
    crt, key = pki.issue(ca_crt, ca_key, directory, "stella-webhook", ["127.0.0.1", "localhost"])
    return ca_crt, crt, key


def register(cp: ControlPlane, ca_crt: Path, port: int) -> None:
    bundle = base64.b64encode(ca_crt.read_bytes()).decode()
    mutating, validating = configurations(bundle, base_url=f"https://127.0.0.1:{port}")
    cp.kubectl("admin", "apply", "-f", "-", stdin=yaml.safe_dump_all([mutating, validating]))
    install_policies(cp)


def install_policies(cp: ControlPlane) -> None:
    cp.kubectl("admin", "apply", "-f", str(POLICIES))
    # The API server loads policies through an informer, a moment after they are stored:
    # wait until one refuses what it must (a write of the operator's parameter object by
    # admin), so a test never meets the gap.
    probe = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "stella-approved-digests", "namespace": "default"},
        }
    )
    deadline = time.monotonic() + 30
    while True:
        out = cp.kubectl("admin", "create", "--dry-run=server", "-f", "-", stdin=probe, check=False)
        if "approved-digests-writer.stella.io" in out.stderr:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the admission policies are not in force: {out.stderr.strip()}")
        time.sleep(0.1)


def uninstall_policies(cp: ControlPlane) -> None:
    cp.kubectl("admin", "delete", "-f", str(POLICIES), "--ignore-not-found", check=False)


def unregister(cp: ControlPlane) -> None:
    cp.kubectl(
        "admin",
        "delete",
        "mutatingwebhookconfiguration,validatingwebhookconfiguration",
        "stella.io",
        "--ignore-not-found",
        check=False,
    )
    uninstall_policies(cp)
