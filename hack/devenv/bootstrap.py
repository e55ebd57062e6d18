"""What a fresh local control plane gets before anyone uses it: CRDs and dev RBAC."""

from __future__ import annotations

import time
from pathlib import Path

from devenv.controlplane import ControlPlane

ROOT = Path(__file__).resolve().parent.parent.parent


def install_crds_and_rbac(cp: ControlPlane) -> None:
    """Stella's CRDs (established) and the dev RBAC: all a control plane without workers needs."""
    # --force-conflicts: on an existing cluster the chart may have installed the same CRDs
    # (Helm's field manager owns them); these are Stella's own, so take them over.
    cp.kubectl("admin", "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    cp.kubectl(
        "admin",
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/environments.stella.io",
        "crd/releases.stella.io",
        "crd/approvals.stella.io",
        "crd/agents.stella.io",
        "crd/plugins.stella.io",
        "crd/pluginpublishers.stella.io",
    )
    cp.kubectl("admin", "apply", "-f", str(ROOT / "hack" / "dev-rbac.yaml"))
    # Before any of Stella's policies: kube-apiserver must never see its ConfigMap-parameter
    # bindings all gone (see the file: kubernetes/kubernetes#130887).
    cp.kubectl("admin", "apply", "-f", str(ROOT / "hack" / "param-informer-keeper.yaml"))


def bootstrap(cp: ControlPlane) -> None:
    install_crds_and_rbac(cp)
    # The default ServiceAccount appears once the controller-manager runs; Pods need it.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        cp.check_alive()
        if (
            cp.kubectl(
                "admin", "get", "serviceaccount", "default", "-n", "default", check=False
            ).returncode
            == 0
        ):
            return
        time.sleep(0.5)
    raise TimeoutError(
        "the default ServiceAccount did not appear; is kube-controller-manager running?"
    )
