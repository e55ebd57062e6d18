"""An existing cluster instead of the embedded local control plane: `STELLA_CLUSTER=existing`
with `KUBECONFIG` (and optionally `STELLA_KUBE_CONTEXT`) for `make demo` and the e2e tier.

Both halves of the switch are required on purpose: a developer's KUBECONFIG is often set to
a real cluster, and the demo and the tests create and delete namespaces, CRDs, webhook
configurations and RBAC. So KUBECONFIG alone never points them anywhere, and even with the
switch a context is refused unless it looks disposable (a kind or k3d cluster, or the
local control plane of `hack/cluster up`) or is named in `STELLA_CLUSTER_DISPOSABLE`.

The people (alice, bob, ... and the operator's ServiceAccount) must each have a context of
their name in the kubeconfig, as `hack/cluster up` writes them; the chosen context acts as
admin. docs/install.md says how to make them on kind.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devenv.controlplane import USERS, ControlPlane, binaries

SWITCH = "STELLA_CLUSTER"
ACKNOWLEDGE = "STELLA_CLUSTER_DISPOSABLE"
CONTEXT = "STELLA_KUBE_CONTEXT"
# Context or cluster names that local throwaway clusters get: kind-NAME, k3d-NAME, and
# hack/cluster's own cluster entry.
DISPOSABLE_PREFIXES = ("kind-", "k3d-", "stella-local")


class ClusterRefused(Exception):
    """The existing cluster cannot or may not be used; the message says what to do."""


def requested(env: Mapping[str, str] = os.environ) -> bool:
    """True for STELLA_CLUSTER=existing; False when unset or `local`; anything else is a
    mistake worth stopping for (a typo must not fall back to some other cluster)."""
    value = env.get(SWITCH, "")
    if value in ("", "local"):
        return False
    if value == "existing":
        return True
    raise ClusterRefused(
        f"{SWITCH}={value!r}: use `existing` (the cluster of KUBECONFIG) or leave it unset "
        "(a local control plane on 127.0.0.1)"
    )


def _named(items: Any, name: str) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    return {}


def choose_context(config: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> str:
    """The admin context: STELLA_KUBE_CONTEXT, else the kubeconfig's current context; refused
    unless it looks disposable or is acknowledged by name in STELLA_CLUSTER_DISPOSABLE."""
    name = env.get(CONTEXT) or str(config.get("current-context") or "")
    context = _named(config.get("contexts"), name).get("context") or {}
    if not name or not context:
        known = ", ".join(str(c.get("name")) for c in config.get("contexts") or []) or "none"
        raise ClusterRefused(
            f"no context {name!r} in KUBECONFIG (contexts: {known}); set {CONTEXT} to one"
        )
    cluster = str(context.get("cluster", ""))
    server = (_named(config.get("clusters"), cluster).get("cluster") or {}).get("server", "?")
    disposable = any(n.startswith(DISPOSABLE_PREFIXES) for n in (name, cluster))
    if not disposable and env.get(ACKNOWLEDGE) != name:
        raise ClusterRefused(
            f"context {name!r} (cluster {cluster!r} at {server}) does not look disposable, "
            "and the demo and the e2e tests create and delete namespaces, CRDs, webhook "
            "configurations and RBAC there. Use a kind or k3d cluster (context kind-* or "
            f"k3d-*), or, if this cluster may be changed freely, say so: {ACKNOWLEDGE}={name}"
        )
    return name


@dataclass
class ExistingCluster(ControlPlane):
    """A ControlPlane whose processes someone else runs: `up` checks and reads the cluster
    of `source` (a kubeconfig) and writes this state's kubeconfigs (a context per person,
    `admin` = the chosen context); `down` stops nothing and deletes nothing there."""

    source: Path = field(default_factory=Path)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    admin_context: str = ""
    flat: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, state: Path, env: Mapping[str, str] = os.environ) -> ExistingCluster:
        path = env.get("KUBECONFIG", "")
        if not path or os.pathsep in path or not Path(path).is_file():
            raise ClusterRefused(
                f"{SWITCH}=existing needs KUBECONFIG set to one kubeconfig file "
                f"(got {path!r}); e.g. `hack/cluster up` prints one"
            )
        return cls(state, source=Path(path), env=dict(env))

    def _context(self) -> dict[str, Any]:
        return dict(_named(self.flat.get("contexts"), self.admin_context)["context"])

    @property
    def server(self) -> str:
        cluster = _named(self.flat.get("clusters"), self._context()["cluster"])
        return str(cluster["cluster"]["server"])

    @property
    def ca_file(self) -> Path:
        """The admin context's cluster CA, as a file (what in-cluster clients mount)."""
        return self.state / "cluster-ca.crt"

    def up(self) -> ExistingCluster:
        config = yaml.safe_load(self.source.read_text()) or {}
        self.admin_context = choose_context(config, self.env)
        # Certificates and keys inlined, so the state's files do not depend on paths.
        self.flat = yaml.safe_load(
            subprocess.run(
                [str(binaries()["kubectl"]), "config", "view", "--flatten", "--raw"],
                env={**os.environ, "KUBECONFIG": str(self.source)},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        people = {u.rsplit(":", 1)[-1] for u in USERS} - {"admin"}
        missing = sorted(p for p in people if not _named(self.flat.get("contexts"), p))
        if missing:
            raise ClusterRefused(
                f"KUBECONFIG has no context for {', '.join(missing)}: each person needs one "
                "(hack/cluster up writes them; on kind see docs/install.md)"
            )
        self.state.mkdir(parents=True, exist_ok=True)
        cluster = _named(self.flat.get("clusters"), self._context()["cluster"])["cluster"]
        if cluster.get("certificate-authority-data"):
            self.ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        self.kubeconfig.write_text(yaml.safe_dump(self._config(None)))
        self.kubeconfig.chmod(0o600)
        out = self.kubectl("admin", "get", "--raw", "/readyz", check=False)
        if out.returncode != 0 or out.stdout.strip() != "ok":
            raise ClusterRefused(
                f"the API server of {self.admin_context!r} is not ready: "
                f"{(out.stderr or out.stdout).strip()[:300]}"
            )
        self._record()  # what `make demo` checks before starting a second demo
        return self

    def _config(self, only: str | None) -> dict[str, Any]:
        """The flattened kubeconfig with a context per person (`admin` = the chosen one)."""
        names = {"admin": self.admin_context} | {
            u.rsplit(":", 1)[-1]: u.rsplit(":", 1)[-1] for u in USERS if u != "admin"
        }
        if only is not None:
            names = {only: names[only]}
        contexts, clusters, users = [], {}, {}
        for person, source in names.items():
            context = dict(_named(self.flat.get("contexts"), source)["context"])
            clusters[context["cluster"]] = _named(self.flat.get("clusters"), context["cluster"])
            users[context["user"]] = _named(self.flat.get("users"), context["user"])
            contexts.append({"name": person, "context": context})
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": list(clusters.values()),
            "users": list(users.values()),
            "contexts": contexts,
            "current-context": contexts[0]["name"],
        }

    def kubeconfig_for(self, user: str) -> Path:
        short = user.rsplit(":", 1)[-1]
        path = self.state / f"kubeconfig-{short}"
        if not path.exists():
            path.write_text(yaml.safe_dump(self._config(short)))
            path.chmod(0o600)
        return path

    def down(self) -> None:
        """Nothing: the cluster is not ours to stop."""
