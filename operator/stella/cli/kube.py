"""Talking to the API server as the person running `stella`.

Every command acts with the caller's own kubeconfig credentials, so the API server — not
Stella — says who did what, and RBAC decides whether they may. The global flags
``--kubeconfig`` and ``--context`` pick the file and context (as with kubectl); a
namespaced command's namespace is ``-n``, else the context's namespace, else ``default``,
and a "not found" says which one was used and why.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any

from stella import GROUP, VERSION
from stella.cli.output import EXIT_UNAVAILABLE, EXIT_USAGE, CliError

DEFAULT_TIMEOUT = 30.0
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """The global flags; accepted before or after the command (defaults suppressed, so a
    subcommand does not overwrite a value given before it)."""
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)",
    )
    parser.add_argument(
        "--context",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="kubeconfig context to use (default: the current context)",
    )
    parser.add_argument(
        "--request-timeout",
        metavar="SECONDS",
        type=float,
        default=argparse.SUPPRESS,
        help=f"give up on an API request after this long (default: {DEFAULT_TIMEOUT:g})",
    )


def add_namespace_flag(parser: argparse.ArgumentParser, what: str = "the Release") -> None:
    parser.add_argument(
        "-n",
        "--namespace",
        default=None,
        help=f"namespace of {what} (default: your kubeconfig context's namespace, else 'default')",
    )


NAMESPACE_FROM_REF = "from NS/NAME"
NAMESPACE_FROM_FLAG = "from -n"


@dataclass(frozen=True)
class Namespace:
    """A namespace and why it is the one used, for messages ("from -n")."""

    name: str
    source: str

    def __str__(self) -> str:
        return self.name


@dataclass
class Kube:
    """The API server as the caller: custom objects of group stella.io."""

    api_client: Any
    server: str
    context: str | None = None
    context_namespace: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    _custom: Any = field(default=None, repr=False)

    @property
    def custom(self) -> Any:
        if self._custom is None:
            from kubernetes import client

            self._custom = client.CustomObjectsApi(self.api_client)
        return self._custom

    def _timeout(self) -> tuple[float, float]:
        return (min(10.0, self.timeout), self.timeout)

    def namespace(self, flag: str | None, ref_namespace: str | None = None) -> Namespace:
        """The namespace to use: NS/NAME, -n, the context's, else default."""
        if ref_namespace:
            return Namespace(check_namespace(ref_namespace), NAMESPACE_FROM_REF)
        if flag:
            return Namespace(check_namespace(flag), NAMESPACE_FROM_FLAG)
        if self.context_namespace:
            return Namespace(self.context_namespace, "from your kubeconfig context")
        return Namespace("default", "your kubeconfig context sets none")

    # --- the few calls the CLI makes ---------------------------------------------------------

    def get(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        if namespace is None:
            obj = self.custom.get_cluster_custom_object(
                GROUP, VERSION, plural, name, _request_timeout=self._timeout()
            )
        else:
            obj = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, _request_timeout=self._timeout()
            )
        return dict(obj)

    def find(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """``get``, or None when there is no such object."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self.get(plural, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        if namespace is None:
            doc = self.custom.list_cluster_custom_object(
                GROUP, VERSION, plural, _request_timeout=self._timeout()
            )
        else:
            doc = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, _request_timeout=self._timeout()
            )
        return list(doc.get("items") or [])

    def create(
        self, plural: str, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        if namespace is None:
            made = self.custom.create_cluster_custom_object(
                GROUP, VERSION, plural, body, _request_timeout=self._timeout()
            )
        else:
            made = self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, body, _request_timeout=self._timeout()
            )
        return dict(made)

    def patch(self, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A merge patch of a cluster-scoped object."""
        return dict(
            self.custom.patch_cluster_custom_object(
                GROUP, VERSION, plural, name, body, _request_timeout=self._timeout()
            )
        )


def check_namespace(name: str) -> str:
    from stella.cli.output import check_name

    return check_name(name, "namespace", label=True)


def context_names(config_file: str | None) -> tuple[list[str], str | None, dict[str, str]]:
    """Context names, the current one, and each context's namespace (where it sets one)."""
    from kubernetes import config

    contexts, current = config.list_kube_config_contexts(config_file=config_file)  # type: ignore[no-untyped-call]
    names = [str(c["name"]) for c in contexts]
    namespaces = {
        str(c["name"]): str((c.get("context") or {}).get("namespace"))
        for c in contexts
        if (c.get("context") or {}).get("namespace")
    }
    return names, (str(current["name"]) if current else None), namespaces


def connect(args: argparse.Namespace) -> Kube:
    """A :class:`Kube` from the global flags (or, inside a Pod without a kubeconfig, the
    service account). Raises :class:`CliError`; the Kubernetes client's ConfigException
    is translated by ``main``."""
    from kubernetes import client, config

    config_file: str | None = getattr(args, "kubeconfig", None)
    context: str | None = getattr(args, "context", None)
    timeout = float(getattr(args, "request_timeout", DEFAULT_TIMEOUT) or DEFAULT_TIMEOUT)
    if config_file is not None and not os.path.exists(config_file):
        raise CliError(f"--kubeconfig {config_file}: no such file", EXIT_USAGE)
    cfg = client.Configuration()
    if _in_cluster(config_file):
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        ns = _read(SERVICE_ACCOUNT_NAMESPACE)
        return Kube(client.ApiClient(cfg), str(cfg.host), None, ns, timeout)
    if config_file is None:
        paths = [
            os.path.expanduser(p)
            for p in (os.environ.get("KUBECONFIG") or "~/.kube/config").split(os.pathsep)
            if p
        ]
        if not any(os.path.exists(p) for p in paths):
            raise CliError(
                f"no kubeconfig at {os.pathsep.join(paths)}; set KUBECONFIG or pass --kubeconfig",
                EXIT_UNAVAILABLE,
            )
    names, current, namespaces = context_names(config_file)
    if context is not None and context not in names:
        raise CliError(
            f"no context {context!r} in your kubeconfig; contexts: {', '.join(names) or 'none'}",
            EXIT_USAGE,
        )
    used = context or current
    if used is None:
        raise CliError(
            "your kubeconfig sets no current context; pass --context "
            f"({', '.join(names) or 'it has none'})",
            EXIT_USAGE,
        )
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=config_file, context=used, client_configuration=cfg, persist_config=False
    )
    return Kube(client.ApiClient(cfg), str(cfg.host), used, namespaces.get(used), timeout)


def _in_cluster(config_file: str | None) -> bool:
    if config_file is not None or os.environ.get("KUBECONFIG"):
        return False
    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return False
    return not os.path.exists(os.path.expanduser("~/.kube/config"))


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def split_ref(ref: str) -> tuple[str | None, str]:
    """``NS/NAME`` -> (NS, NAME); ``NAME`` -> (None, NAME). Usage error on more slashes."""
    if ref.count("/") > 1 or ref.startswith("/") or ref.endswith("/"):
        raise CliError(f"{ref!r}: write a Release as NAME or NAMESPACE/NAME", EXIT_USAGE)
    if "/" in ref:
        ns, name = ref.split("/", 1)
        return ns, name
    return None, ref


# --- Environments: looked up by every command that names one ------------------------------


def path_order(environments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Environments in promotion path order (topological by spec.requires, ties by name);
    any on a cycle, or behind one, last, by name."""
    from stella.policy.path import check_graph

    by_name = {e["metadata"]["name"]: e for e in environments}
    graph = {n: list((e.get("spec") or {}).get("requires") or []) for n, e in by_name.items()}
    order = list(check_graph(graph).order)
    rest = sorted(set(by_name) - set(order))
    return [by_name[n] for n in order + rest]


def unknown_environment(name: str, environments: list[dict[str, Any]]) -> CliError:
    names = [e["metadata"]["name"] for e in path_order(environments)]
    close = _close_matches(name, names)
    hint = f" (did you mean {close}?)" if close else ""
    listed = ", ".join(names) if names else "none exist yet (kubectl get env)"
    return CliError(f"no Environment {name!r}{hint}; Environments: {listed}", EXIT_USAGE)


def _close_matches(name: str, names: list[str]) -> str:
    import difflib

    return " or ".join(repr(m) for m in difflib.get_close_matches(name, names, n=1, cutoff=0.6))


def require_environment(kube: Kube, name: str) -> dict[str, Any]:
    """The Environment ``name``, or a usage error (exit 2) listing the ones that exist."""
    from stella.cli.output import check_name

    check_name(name, "Environment")
    env = kube.find("environments", name)
    if env is None:
        raise unknown_environment(name, kube.list("environments"))
    return env


def release_not_found(name: str, namespace: Namespace) -> CliError:
    # Named explicitly (NS/NAME, -n), the namespace is right and the name is not: say how
    # to list the names there rather than repeat the switches the person already used.
    if namespace.source in (NAMESPACE_FROM_REF, NAMESPACE_FROM_FLAG):
        hint = f"`stella status -n {namespace.name}` lists the Releases there"
    else:
        hint = "use NS/NAME or -n"
    return CliError(
        f"Release {name} not found in namespace {namespace.name} ({namespace.source}); {hint}",
        1,
    )


def require_release(kube: Kube, name: str, namespace: Namespace) -> dict[str, Any]:
    """The Release, or "not found" naming the namespace looked in and why (exit 1)."""
    from stella.cli.output import check_name

    check_name(name, "Release")
    rel = kube.find("releases", name, namespace.name)
    if rel is None:
        raise release_not_found(name, namespace)
    return rel
