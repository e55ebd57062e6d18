"""Serving certificates for a local operator's webhooks, and their registration with
the API server (url: on loopback, never a Service IP), together with the admission
policies the API server runs itself (the chart's own file, applied as is: one source)."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

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


def register(cp: ControlPlane, ca_crt: Path, port: int, namespace: str = "stella-system") -> None:
    """namespace: the operator's (STELLA_NAMESPACE), where it publishes stella-release-params."""
    bundle = base64.b64encode(ca_crt.read_bytes()).decode()
    mutating, validating = configurations(bundle, base_url=f"https://127.0.0.1:{port}")
    cp.kubectl("admin", "apply", "-f", "-", stdin=yaml.safe_dump_all([mutating, validating]))
    install_policies(cp, namespace)


def policies_text(namespace: str = "stella-system") -> str:
    """The chart's policy file as the chart renders it for an operator in `namespace`."""
    return POLICIES.read_text().replace(
        "name: stella-release-params, namespace: stella-system,",
        f"name: stella-release-params, namespace: {namespace},",
    )


def install_policies(cp: ControlPlane, namespace: str = "stella-system") -> None:
    cp.kubectl("admin", "apply", "-f", "-", stdin=policies_text(namespace))
    # The API server loads policies and bindings through informers of their own, a moment
    # after they are stored, so one policy in force says nothing of another (seen once in
    # CI: a Release admitted unjudged after approved-digests-writer's probe had passed):
    # wait until each policy the tests lean on refuses what it must.
    for policy, probe in _PROBES:
        _wait_refused_by(cp, policy, probe)


# (policy, an object it refuses whatever its parameters say, or for want of them), dry-run
# created by admin in namespace default; the objects as YAML once, for kubectl's stdin.
_PROBE_OBJECTS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "approved-digests-writer.stella.io",  # a parameter object written by anyone else
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "stella-approved-digests", "namespace": "default"},
        },
    ),
    (
        "release-create.stella.io",  # an Environment no parameter ever names
        {
            "apiVersion": "stella.io/v1alpha1",
            "kind": "Release",
            "metadata": {"name": "stella-policy-probe", "namespace": "default"},
            "spec": {
                "version": "0.0.0",
                "environments": ["stella-policy-probe-nowhere"],
                "components": [
                    {
                        "name": "probe",
                        "image": "registry.example.com/probe@sha256:" + "0" * 64,
                        "workload": {"kind": "Deployment", "name": "probe", "container": "probe"},
                    }
                ],
            },
        },
    ),
)
_PROBES = tuple((policy, yaml.safe_dump(probe)) for policy, probe in _PROBE_OBJECTS)


def _wait_refused_by(
    cp: ControlPlane, policy: str, probe: str, in_force: bool = True, timeout: float = 30
) -> None:
    """Until the policy refuses the probe (in_force) or no longer does. A failed webhook call
    says nothing either way (a mutating webhook answers before any validating policy)."""
    deadline = time.monotonic() + timeout
    while True:
        out = cp.kubectl("admin", "create", "--dry-run=server", "-f", "-", stdin=probe, check=False)
        if "failed calling webhook" not in out.stderr and (policy in out.stderr) == in_force:
            return
        if time.monotonic() > deadline:
            state = "in force" if in_force else "gone"
            raise RuntimeError(f"admission policy {policy} is not {state}: {out.stderr.strip()}")
        time.sleep(0.1)


def uninstall_policies(cp: ControlPlane) -> None:
    cp.kubectl("admin", "delete", "-f", str(POLICIES), "--ignore-not-found", check=False)
    # Until the API server has let them go: else an install right after (the next test's)
    # could see its probe refused by the old policies, then meet a moment with none.
    for policy, probe in _PROBES:
        _wait_refused_by(cp, policy, probe, in_force=False)


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


def wait_for_release_params(
    cp: ControlPlane, *environments: str, namespace: str = "stella-system", timeout: float = 60.0
) -> None:
    """Until the operator has published these Environments in stella-release-params, by
    which the API server's release-create policy judges a Release CREATE (before that, a
    Release naming them is refused with "retry in a few seconds")."""
    deadline = time.monotonic() + timeout
    while True:
        out = cp.kubectl(
            "admin",
            "get",
            "configmap",
            "stella-release-params",
            "-n",
            namespace,
            "-o",
            "jsonpath={.data}",
            check=False,
        )
        data = yaml.safe_load(out.stdout or "{}") if out.returncode == 0 else {}
        if all(f"registries.{e}" in (data or {}) for e in environments):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"Environments {', '.join(environments)} not published in time")
        time.sleep(0.2)
