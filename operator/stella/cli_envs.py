"""`stella rollback` and `stella env ...`: actions on Environments, as the caller.

A rollback is a new Release: a copy of the earlier Release's spec into one environment,
marked stella.io/rollback-of, created with the caller's own credentials. It goes through
the same gates (approvals again unless the Environment says rollbackSkipsApproval), and
it leaves the same evidence as any promotion.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from stella import API_VERSION, GROUP, VERSION
from stella.cli_people import _api_error, _kube


def rollback(args: argparse.Namespace) -> int:
    from kubernetes.client.exceptions import ApiException

    from stella.cli import fail
    from stella.models import EnvironmentSpec
    from stella.models.environment import EnvironmentStatus
    from stella.policy.rollback import RollbackError, deployments_from_history, plan_rollback

    api = _kube()
    try:
        env = api.get_cluster_custom_object(GROUP, VERSION, "environments", args.environment)
    except ApiException as exc:
        return fail(_api_error(exc))
    spec = EnvironmentSpec.model_validate(env.get("spec") or {})
    status = EnvironmentStatus.model_validate(env.get("status") or {})
    to = args.to if args.to is None or "/" in args.to else f"{args.namespace}/{args.to}"
    try:
        plan = plan_rollback(
            args.environment,
            spec,
            status.current_release,
            deployments_from_history(status.history),
            to=to,
        )
    except RollbackError as exc:
        return fail(exc.message)
    ns, name = plan.to_release.split("/", 1)
    try:
        source = api.get_namespaced_custom_object(GROUP, VERSION, ns, "releases", name)
    except ApiException as exc:
        return fail(f"cannot read {plan.to_release}: {_api_error(exc)}")
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Release",
        "metadata": {
            "name": f"{name}-rb-{stamp}"[:63].rstrip("-"),
            "annotations": {"stella.io/rollback-of": plan.to_release},
        },
        "spec": {**source["spec"], "environments": [args.environment]},
    }
    if args.dry_run:
        print(json.dumps(body, indent=2))
        return 0
    try:
        made = api.create_namespaced_custom_object(GROUP, VERSION, ns, "releases", body)
    except ApiException as exc:
        return fail(f"rollback refused: {_api_error(exc)}")
    print(
        f"rolling back {args.environment} to {plan.to_release} "
        f"as Release {ns}/{made['metadata']['name']}"
    )
    print(plan.message)
    return 0


def clear(args: argparse.Namespace) -> int:
    from kubernetes.client.exceptions import ApiException

    from stella.cli import fail

    if not args.reason:
        return fail(
            "say why the halt may be lifted: --reason 'INC-42 investigated, registry fixed'", 2
        )
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"metadata": {"annotations": {"stella.io/clear-halt": f"{stamp} {args.reason}"}}}
    try:
        _kube().patch_cluster_custom_object(GROUP, VERSION, "environments", args.environment, patch)
    except ApiException as exc:
        return fail(_api_error(exc))
    print(f"asked the operator to clear the halt on {args.environment} ({args.reason})")
    return 0


def suspend(args: argparse.Namespace, value: bool) -> int:
    from kubernetes.client.exceptions import ApiException

    from stella.cli import fail

    try:
        _kube().patch_cluster_custom_object(
            GROUP, VERSION, "environments", args.environment, {"spec": {"suspended": value}}
        )
    except ApiException as exc:
        return fail(_api_error(exc))
    print(f"{args.environment} {'suspended: nothing deploys there' if value else 'resumed'}")
    return 0


def environments(args: argparse.Namespace) -> int:
    from stella.cli import table

    items = _kube().list_cluster_custom_object(GROUP, VERSION, "environments")["items"]
    rows = []
    for env in sorted(items, key=lambda e: e["metadata"]["name"]):
        st = env.get("status") or {}
        ready: dict[str, Any] = next(
            (c for c in st.get("conditions", []) if c["type"] == "Ready"), {}
        )
        rows.append(
            [
                env["metadata"]["name"],
                ",".join(env["spec"].get("requires", [])) or "-",
                st.get("currentRelease") or "-",
                st.get("inFlight") or "-",
                (st.get("halted") or {}).get("reason")
                or ("suspended" if env["spec"].get("suspended") else "-"),
                ready.get("reason", "-"),
            ]
        )
    print(table(rows, ["ENVIRONMENT", "REQUIRES", "CURRENT", "DEPLOYING", "HALTED", "STATE"]))
    return 0


def register(sub: Any) -> None:
    rb = sub.add_parser("rollback", help="re-promote an earlier Release into an environment")
    rb.add_argument("environment")
    rb.add_argument(
        "--to", help="the Release to roll back to (default: the one before the current)"
    )
    rb.add_argument(
        "-n", "--namespace", default="default", help="namespace of --to when given bare"
    )
    rb.add_argument(
        "--dry-run", action="store_true", help="print the rollback Release, create nothing"
    )
    rb.set_defaults(func=rollback)

    env = sub.add_parser("env", help="inspect and act on environments")
    env_sub = env.add_subparsers(dest="env_command", metavar="ACTION")
    ls = env_sub.add_parser("list", help="every environment, its current release and state")
    ls.set_defaults(func=environments)
    cl = env_sub.add_parser("clear", help="lift a halt once the security failure is understood")
    cl.add_argument("environment")
    cl.add_argument("--reason", required=False, default="")
    cl.set_defaults(func=clear)
    for action, value in (("suspend", True), ("resume", False)):
        p = env_sub.add_parser(action, help=f"{action} deployments to an environment")
        p.add_argument("environment")
        p.set_defaults(func=lambda a, v=value: suspend(a, v))
