"""`stella status`, `stella approve`, `stella reject`: what a requester and an approver run.

An approval is an Approval object created with your own credentials: admission records
you (from the API server's authentication) as the approver and checks your right to
approve that Environment; the operator decides whether it counts.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from stella import API_VERSION
from stella.cli.kube import (
    Kube,
    add_namespace_flag,
    connect,
    release_not_found,
    require_release,
    split_ref,
    unknown_environment,
)
from stella.cli.output import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_output_flag,
    check_name,
    emit,
    k8s_list,
    refused,
    table,
)
from stella.policy.late_decisions import DECIDED_PHASES
from stella.policy.summary import requester_shown

STATUS_EPILOG = """\
examples:
  stella status shop/shop-1-4-2        one Release: a row per environment
  stella status -n shop                every Release in namespace shop
  stella status -A -o json             every Release, as JSON for scripts
"""

DECIDE_EPILOG = """\
examples:
  stella approve shop/shop-1-4-2 prod --comment CAB-1234
  stella reject  shop/shop-1-4-2 prod --comment "fails the load test"

The Release comes first, then the Environment. You approve as yourself (your kubeconfig
context); the Environment says how many approvals it needs and from which groups, and
the person who requested a Release can never approve it.
"""


# --- status -------------------------------------------------------------------------------


LIVE = " (live)"


def live_releases(environments: list[dict[str, Any]]) -> dict[str, str]:
    """Environment name -> the Release running there (``status.currentRelease``,
    NAMESPACE/NAME): of the Releases that say ``Deployed`` somewhere, the one that is live."""
    return {
        e["metadata"]["name"]: str(current)
        for e in environments
        if (current := (e.get("status") or {}).get("currentRelease"))
    }


def release_rows(rel: dict[str, Any], live: Mapping[str, str] | None = None) -> list[list[str]]:
    """A row per environment; the phase of the environment where this Release is the one
    running now (``live``: environment -> NAMESPACE/NAME) is marked ``(live)``."""
    spec, st = rel.get("spec") or {}, rel.get("status") or {}
    meta = rel.get("metadata") or {}
    key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    rows = []
    for env in st.get("environments") or []:
        approvals = ", ".join(
            a.get("approver", "?")
            for a in env.get("approvals") or []
            if a.get("decision") == "Approve"
        )
        rows.append(
            [
                env.get("name", "?"),
                env.get("phase", "?")
                + (LIVE if (live or {}).get(env.get("name", "")) == key else ""),
                env.get("reason") or "-",
                approvals or "-",
                env.get("message", ""),
            ]
        )
    if not rows:
        rows = [
            [e, "Pending", "NotYetSeen", "-", "the operator has not processed this Release yet"]
            for e in spec.get("environments") or []
        ]
    return rows


def status_text(releases: list[dict[str, Any]], live: Mapping[str, str] | None = None) -> str:
    blocks = []
    for rel in releases:
        meta, spec, st = rel["metadata"], rel.get("spec") or {}, rel.get("status") or {}
        ready = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), None)
        requester = requester_shown(rel)  # admission's stamp, not the display-only status
        head = (
            f"Release {meta.get('namespace', '?')}/{meta['name']}  "
            f"version {spec.get('version', '?')}  "
            f"requested by {requester or '(not recorded)'}  "
            f"ready={ready['status'] if ready else 'Unknown'}"
            + (f" ({ready.get('reason', '')})" if ready else "")
        )
        blocks.append(
            head
            + "\n"
            + table(
                release_rows(rel, live),
                ["ENVIRONMENT", "PHASE", "REASON", "APPROVED BY", "MESSAGE"],
            )
        )
    return "\n\n".join(blocks)


def _live(kube: Kube) -> dict[str, str]:
    """What runs where, for the ``(live)`` marker; none when you may not list
    Environments (the marker is a hint, the status is the answer)."""
    from kubernetes.client.exceptions import ApiException

    try:
        return live_releases(kube.list("environments"))
    except ApiException:
        return {}


def cmd_status(args: argparse.Namespace) -> int:
    kube = connect(args)
    if args.release:
        ref_ns, name = split_ref(args.release)
        ns = kube.namespace(args.namespace, ref_ns)
        check_name(name, "Release")
        rel = kube.find("releases", name, ns.name)
        if rel is None:
            raise release_not_found(name, ns)
        emit(args.output, rel, lambda: status_text([rel], _live(kube)))
        return EXIT_OK
    if args.all_namespaces:
        items = kube.list("releases")
        where = "any namespace"
    else:
        ns = kube.namespace(args.namespace)
        items = kube.list("releases", ns.name)
        # A new user's context often points at `default`; say where else to look.
        where = f"namespace {ns.name} ({ns.source}); `stella status -A` shows every namespace"
    items.sort(key=lambda r: (r["metadata"].get("namespace", ""), r["metadata"]["name"]))
    if not items and args.output == "table":
        print(f"no Releases in {where}")
        return EXIT_OK
    emit(args.output, k8s_list(items), lambda: status_text(items, _live(kube)))
    return EXIT_OK


# --- approve / reject ---------------------------------------------------------------------


def generate_name(*parts: str, limit: int = 57) -> str:
    """A metadata.generateName prefix: the parts joined by '-', cut to ``limit``, always
    ending in '-' after a letter or digit (the API server appends 5 characters)."""
    base = "-".join(p for p in parts if p)[:limit].rstrip("-.")
    return f"{base}-"


def approval_body(release: str, environment: str, decision: str, comment: str) -> dict[str, Any]:
    """The Approval `stella approve|reject` creates (in the Release's namespace)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Approval",
        "metadata": {"generateName": generate_name(release, environment)},
        "spec": {
            "release": release,
            "environment": environment,
            "decision": decision,
            "comment": comment,
        },
    }


def check_decision_args(release_ref: str, environment: str) -> None:
    """Swapped or malformed arguments, said in one line (exit 2)."""
    if "/" in environment:
        raise CliError(
            f"{environment!r} looks like a Release, not an Environment: write "
            "RELEASE ENVIRONMENT, e.g. stella approve shop/shop-1-4-2 prod",
            EXIT_USAGE,
        )
    _, name = split_ref(release_ref)
    check_name(name, "Release")
    check_name(environment, "Environment")


def _decide(args: argparse.Namespace, decision: str) -> int:
    verb = "approve" if decision == "Approve" else "reject"
    comment = (args.comment or "").strip()
    if decision == "Reject" and not comment:
        raise CliError(
            "a rejection needs --comment saying why, e.g. --comment 'fails the load test'",
            EXIT_USAGE,
        )
    check_decision_args(args.release, args.environment)
    kube = connect(args)
    ref_ns, name = split_ref(args.release)
    ns = kube.namespace(args.namespace, ref_ns)
    _check_environment(kube, args.environment, swapped_with=name, verb=verb)
    rel = require_release(kube, name, ns)
    targets = list((rel.get("spec") or {}).get("environments") or [])
    if args.environment not in targets:
        raise CliError(
            f"Release {ns.name}/{name} does not go to {args.environment} "
            f"(its environments: {', '.join(targets) or 'none'})"
        )
    body = approval_body(name, args.environment, decision, comment)
    try:
        made = kube.create("approvals", body, ns.name)
    except Exception as exc:
        error = refused(verb, exc)
        if "is forbidden: User" in error.message:  # RBAC, not an admission rule: say which right
            error = CliError(
                f"{error.message}; deciding takes the right to create approvals.stella.io in "
                f"{ns.name} (ClusterRole stella-approver, which the chart binds to "
                f"groups.approvers); `kubectl auth can-i create approvals.stella.io -n {ns.name}` "
                "shows yours",
                error.code,
            )
        raise error from None
    done = "approved" if decision == "Approve" else "rejected"
    print(
        f"{done} {ns.name}/{name} for {args.environment} "
        f"(Approval {ns.name}/{made['metadata']['name']})"
    )
    if note := late_note(rel, args.environment):
        print(note)
    print(f"next: stella status {ns.name}/{name}")
    return EXIT_OK


def late_note(rel: Mapping[str, Any], environment: str) -> str | None:
    """A decision on a promotion already decided, as the Release's status read just now
    says: the engine will answer it with AlreadyDecided (policy.late_decisions); the
    person hears it now rather than from the Approval's status later."""
    for e in (rel.get("status") or {}).get("environments") or []:
        if not isinstance(e, Mapping) or e.get("name") != environment:
            continue
        phase = e.get("phase")
        if phase in DECIDED_PHASES:
            return (
                f"note: {environment} is already {phase} for this Release: this decision "
                "is kept as evidence but does not count (AlreadyDecided)"
            )
    return None


def _check_environment(kube: Kube, environment: str, *, swapped_with: str, verb: str) -> None:
    if kube.find("environments", environment) is not None:
        return
    if kube.find("environments", swapped_with) is not None:
        raise CliError(
            f"{swapped_with!r} is an Environment: write the Release first, "
            f"e.g. stella {verb} shop/shop-1-4-2 {swapped_with}",
            EXIT_USAGE,
        )
    raise unknown_environment(environment, kube.list("environments"))


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, "Approve")


def cmd_reject(args: argparse.Namespace) -> int:
    return _decide(args, "Reject")


def register(sub: Any, common: list[argparse.ArgumentParser]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    st = sub.add_parser(
        "status",
        parents=common,
        help="where Releases stand, per environment",
        description="Show where a Release (or every Release of a namespace) stands in each "
        "environment: phase, why, and who approved.",
        epilog=STATUS_EPILOG,
        formatter_class=fmt,
    )
    st.add_argument("release", nargs="?", metavar="[NS/]RELEASE", help="one Release")
    add_namespace_flag(st)
    st.add_argument(
        "-A", "--all-namespaces", action="store_true", help="every Release you may read"
    )
    add_output_flag(st)
    st.set_defaults(func=cmd_status)

    for name, func, what in (
        ("approve", cmd_approve, "approve a Release for an environment, as yourself"),
        ("reject", cmd_reject, "reject a Release for an environment, as yourself"),
    ):
        p = sub.add_parser(
            name,
            parents=common,
            help=what,
            description=what[0].upper() + what[1:] + ".",
            epilog=DECIDE_EPILOG,
            formatter_class=fmt,
        )
        p.add_argument("release", metavar="[NS/]RELEASE", help="the Release, e.g. shop/shop-1-4-2")
        p.add_argument("environment", metavar="ENV", help="the Environment, e.g. prod")
        add_namespace_flag(p)
        p.add_argument(
            "--comment",
            default="",
            help="a ticket or a sentence, kept as evidence"
            + (" (required)" if name == "reject" else ""),
        )
        p.set_defaults(func=func)
