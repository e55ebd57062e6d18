"""Day-to-day commands: status, approve, reject, rollback.

They act with the caller's own kubeconfig credentials, so the API server — not Stella —
says who did what, and RBAC decides whether they may.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from stella import API_VERSION, GROUP, VERSION


def _kube() -> Any:
    from kubernetes import client, config

    try:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    except Exception as exc:  # config errors come in many types; all mean the same here
        raise SystemExit(f"error: cannot load a kubeconfig ({exc}); set KUBECONFIG") from None
    return client.CustomObjectsApi()


def _api_error(exc: Any) -> str:
    import json

    try:
        body = json.loads(exc.body)
        return str(body.get("message", exc.reason))
    except (ValueError, AttributeError, TypeError):
        return str(getattr(exc, "reason", exc))


def _split_ref(args: argparse.Namespace) -> None:
    """Accept NAMESPACE/RELEASE wherever RELEASE is asked (as the operator's messages write it)."""
    release = getattr(args, "release", None)
    if release and "/" in release:
        args.namespace, args.release = release.split("/", 1)


def status(args: argparse.Namespace) -> int:
    from kubernetes.client.exceptions import ApiException

    from stella.cli import fail, table

    _split_ref(args)
    api = _kube()
    try:
        if args.release:
            items = [
                api.get_namespaced_custom_object(
                    GROUP, VERSION, args.namespace, "releases", args.release
                )
            ]
        else:
            items = api.list_namespaced_custom_object(GROUP, VERSION, args.namespace, "releases")[
                "items"
            ]
    except ApiException as exc:
        return fail(_api_error(exc))
    if not items:
        print(f"no Releases in namespace {args.namespace}")
        return 0
    for rel in items:
        meta, spec, st = rel["metadata"], rel["spec"], rel.get("status") or {}
        ready = next((c for c in st.get("conditions", []) if c["type"] == "Ready"), None)
        print(
            f"Release {meta['namespace']}/{meta['name']}  version {spec['version']}  "
            f"ready={ready['status'] if ready else 'Unknown'}"
            + (f" ({ready['reason']})" if ready else "")
        )
        rows = []
        for env in st.get("environments", []):
            approvals = ", ".join(
                a["approver"] for a in env.get("approvals", []) if a["decision"] == "Approve"
            )
            rows.append(
                [
                    env["name"],
                    env["phase"],
                    env.get("reason", ""),
                    approvals or "-",
                    env.get("message", ""),
                ]
            )
        if not rows:
            rows = [
                [e, "Pending", "NotYetSeen", "-", "the operator has not processed this Release yet"]
                for e in spec["environments"]
            ]
        print(table(rows, ["ENVIRONMENT", "PHASE", "REASON", "APPROVED BY", "MESSAGE"]))
        print()
    return 0


def decide(args: argparse.Namespace, decision: str) -> int:
    from kubernetes.client.exceptions import ApiException

    from stella.cli import fail

    _split_ref(args)
    if decision == "Reject" and not args.comment:
        return fail("a rejection needs --comment saying why", 2)
    api = _kube()
    body = {
        "apiVersion": API_VERSION,
        "kind": "Approval",
        "metadata": {"generateName": f"{args.release}-{args.environment}-"[:58]},
        "spec": {
            "release": args.release,
            "environment": args.environment,
            "decision": decision,
            "comment": args.comment or "",
        },
    }
    try:
        made = api.create_namespaced_custom_object(
            GROUP, VERSION, args.namespace, "approvals", body
        )
    except ApiException as exc:
        return fail(f"{decision.lower()} refused: {_api_error(exc)}")
    verb = "approved" if decision == "Approve" else "rejected"
    print(
        f"{verb} {args.release} for {args.environment} "
        f"(Approval {args.namespace}/{made['metadata']['name']})"
    )
    return 0


def promote(args: argparse.Namespace) -> int:
    """For environments with autoPromote: false — a person says "go" for one release."""
    from kubernetes.client.exceptions import ApiException

    from stella.cli import fail

    _split_ref(args)
    api = _kube()
    try:
        rel = api.get_namespaced_custom_object(
            GROUP, VERSION, args.namespace, "releases", args.release
        )
        asked = {
            e.strip()
            for e in (rel["metadata"].get("annotations") or {})
            .get("stella.io/promote", "")
            .split(",")
            if e.strip()
        }
        asked.add(args.environment)
        api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            args.namespace,
            "releases",
            args.release,
            {"metadata": {"annotations": {"stella.io/promote": ",".join(sorted(asked))}}},
        )
    except ApiException as exc:
        return fail(f"promote refused: {_api_error(exc)}")
    print(f"asked to promote {args.release} to {args.environment}; the gates still apply")
    return 0


def register(sub: Any) -> None:
    st = sub.add_parser("status", help="show where Releases stand, per environment")
    st.add_argument("release", nargs="?")
    st.add_argument("-n", "--namespace", default="default")
    st.set_defaults(func=status)

    for name, decision in (("approve", "Approve"), ("reject", "Reject")):
        p = sub.add_parser(name, help=f"{name} a Release for an environment, as yourself")
        p.add_argument("release")
        p.add_argument("environment")
        p.add_argument("-n", "--namespace", default="default")
        p.add_argument("--comment", default="")
        p.set_defaults(func=lambda a, d=decision: decide(a, d))

    pr = sub.add_parser("promote", help="ask to promote a Release where autoPromote is false")
    pr.add_argument("release")
    pr.add_argument("environment")
    pr.add_argument("-n", "--namespace", default="default")
    pr.set_defaults(func=promote)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(2)
