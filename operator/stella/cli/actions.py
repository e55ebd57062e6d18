"""Acting on Environments as a person: promote, clear a halt, suspend, resume, roll back.

Each of promote / env clear / env suspend / env resume creates an Action (cluster-scoped,
stella.io/v1alpha1) with your own credentials. The API server says who you are (admission
stamps it on the Action) and RBAC says whether you may (the custom verb of the action on
that Environment: promote, clear-halt, suspend); the operator carries the Action out once,
records it as evidence naming you, and writes the outcome in the Action's status.

A rollback is a new Release: a copy of an earlier Release's spec into one environment,
asking to be a rollback of it with the stella.io/rollback-of annotation. Admission lets
it through only for someone allowed to roll back there, and only to a Release that was
Deployed there. It then goes through the same gates as any promotion.

The bodies are built by pure functions (``action_body``, ``rollback_body``), and the
checks made before anything is created by pure functions of what was read
(``check_promote``, ``check_clear``), so both are tested without a cluster.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from stella import API_VERSION
from stella.cli.kube import (
    Kube,
    add_namespace_flag,
    connect,
    require_environment,
    require_release,
    split_ref,
)
from stella.cli.output import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    add_output_flag,
    age,
    check_name,
    emit,
    k8s_list,
    refused,
    table,
)
from stella.policy.rollback import rollback_body

DEFAULT_WAIT = 60.0
# metadata.generateName prefix of each action (the API server appends 5 characters).
PREFIX = {"Promote": "promote", "ClearHalt": "clear-halt", "Suspend": "suspend", "Resume": "resume"}
FINAL_PHASES = ("Done", "Refused")

PROMOTE_EPILOG = """\
examples:
  stella promote shop/shop-1-4-2 prod --reason CAB-1234
  stella promote shop-1-4-2 prod -n shop --wait

Only for an Environment whose spec.autoPromote is false; the others promote on their own.
The gates still apply after the promote: prerequisites, freeze windows, approvals.
You need the `promote` verb on that Environment (RBAC).
"""

ENV_ACTION_EPILOG = {
    "clear": """\
examples:
  stella env clear prod --reason "INC-42: registry fixed, digests verified"

A halt (a digest mismatch, a missing manifest) stops deployments to the Environment until
a person who has looked into it clears it. You need the `clear-halt` verb on it (RBAC).
""",
    "suspend": """\
examples:
  stella env suspend prod --reason "database migration until 14:00"

Nothing deploys to a suspended Environment until `stella env resume`. You need the
`suspend` verb on it (RBAC).
""",
    "resume": """\
examples:
  stella env resume prod --reason "migration done"

You need the `suspend` verb on the Environment (RBAC).
""",
}

ROLLBACK_EPILOG = """\
examples:
  stella rollback prod                          back to the Release before the current one
  stella rollback prod --to shop/shop-1-4-1     to that Release (it must have run in prod)
  stella rollback prod --dry-run                print the rollback Release, create nothing

The rollback is a new Release and goes through the same gates (approvals again, unless the
Environment says rollbackSkipsApproval). You need the `rollback` verb on the Environment.
"""

ACTION_EPILOG = """\
examples:
  stella action list                          every Action: who asked, its phase and reason
  stella action list -e prod -o yaml          prod's Actions, whole, for scripts
  stella promote shop/shop-1-4-2 prod         ask for a promotion: one Promote Action
  kubectl get act                             the same objects, as kubectl shows them
"""

ACTION_LIST_EPILOG = """\
examples:
  stella action list
  stella action list -e prod -o yaml
"""


# --- pure: bodies and checks ----------------------------------------------------------------


def action_body(
    action: str, environment: str, *, release: str | None = None, reason: str = ""
) -> dict[str, Any]:
    """The Action a command creates. ``release`` is NAMESPACE/NAME, for Promote only."""
    if action not in PREFIX:
        raise ValueError(f"unknown action {action!r}")
    prefix = f"{PREFIX[action]}-{environment}"[:57].rstrip("-.")
    spec: dict[str, Any] = {"action": action, "environment": environment}
    if release is not None:
        spec["release"] = release
    if reason:
        spec["reason"] = reason
    return {
        "apiVersion": API_VERSION,
        "kind": "Action",
        "metadata": {"generateName": f"{prefix}-"},
        "spec": spec,
    }


def auto_promotes(env: dict[str, Any]) -> bool:
    return (env.get("spec") or {}).get("autoPromote") is not False


def check_promote(env: dict[str, Any], release: dict[str, Any]) -> None:
    """Why promoting ``release`` into ``env`` makes no sense (CliError, exit 1), or None."""
    name = env["metadata"]["name"]
    meta = release["metadata"]
    ref = f"{meta.get('namespace', '?')}/{meta['name']}"
    targets = list((release.get("spec") or {}).get("environments") or [])
    if name not in targets:
        raise CliError(
            f"Release {ref} does not go to {name} (its environments: "
            f"{', '.join(targets) or 'none'}); a Release's environments cannot change, "
            "create a new Release",
            EXIT_REFUSED,
        )
    if auto_promotes(env):
        raise CliError(
            f"{name} promotes automatically; nothing to promote "
            f"(stella status {ref} shows what it waits for)",
            EXIT_REFUSED,
        )


def check_clear(env: dict[str, Any]) -> None:
    """A halt can only be cleared where there is one."""
    halted = (env.get("status") or {}).get("halted")
    if not halted:
        raise CliError(f"{env['metadata']['name']} is not halted; nothing to clear", EXIT_REFUSED)


def check_reason(reason: str | None, command: str, example: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise CliError(
            f"{command} needs --reason saying why, e.g. --reason {example!r}", EXIT_USAGE
        )
    return text


def check_one_environment(environment: str) -> str:
    if "," in environment or " " in environment.strip():
        raise CliError(
            f"{environment!r}: one Environment per call (run the command once per environment)",
            EXIT_USAGE,
        )
    return check_name(environment, "Environment")


def action_rows(actions: list[dict[str, Any]], now: datetime | None = None) -> list[list[str]]:
    rows = []
    for a in actions:
        spec, st = a.get("spec") or {}, a.get("status") or {}
        rows.append(
            [
                a["metadata"]["name"],
                spec.get("action", "?"),
                spec.get("environment", "?"),
                spec.get("release") or "-",
                st.get("actor") or "-",
                st.get("phase") or "Pending",
                st.get("reason") or "-",  # what came of it, or why it was refused
                age(a["metadata"].get("creationTimestamp"), now),
            ]
        )
    return rows


ACTION_HEADER = ["NAME", "ACTION", "ENVIRONMENT", "RELEASE", "ACTOR", "PHASE", "REASON", "AGE"]


# --- creating an Action and waiting for it ----------------------------------------------------


def wait_for_action(
    kube: Kube,
    name: str,
    timeout: float,
    *,
    interval: float = 1.0,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, Any] | None:
    """The Action's status once its phase is Done or Refused; None after ``timeout``."""
    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    deadline = clock() + timeout
    while True:
        st = kube.get("actions", name).get("status") or {}
        if st.get("phase") in FINAL_PHASES:
            return dict(st)
        if clock() >= deadline:
            return None
        sleep(min(interval, max(0.0, deadline - clock())))


def submit(
    kube: Kube, body: dict[str, Any], *, what: str, follow: str, wait: bool, timeout: float
) -> int:
    """Create the Action, say what happened and what to do next; with ``wait``, wait for
    the operator to carry it out."""
    try:
        made = kube.create("actions", body)
    except Exception as exc:
        raise refused(what, exc) from None
    name = made["metadata"]["name"]
    print(f"Action {name} created: {what}")
    if not wait:
        print(
            f"next: stella action list -e {body['spec']['environment']} "
            f"(is it Done?), then {follow}"
        )
        return EXIT_OK
    st = wait_for_action(kube, name, timeout)
    if st is None:
        raise CliError(
            f"Action {name} is still Pending after {timeout:g}s; is the operator running? "
            f"kubectl get action {name} -o yaml",
            EXIT_REFUSED,
        )
    message = st.get("message") or ""
    if st.get("phase") == "Done":
        print(f"Done: {message}" if message else "Done")
        print(f"next: {follow}")
        return EXIT_OK
    reason = st.get("reason") or "Refused"
    raise CliError(f"Action {name} refused ({reason}): {message or 'no message'}", EXIT_REFUSED)


# --- commands ---------------------------------------------------------------------------------


def cmd_promote(args: argparse.Namespace) -> int:
    environment = check_one_environment(args.environment)
    ref_ns, name = split_ref(args.release)
    check_name(name, "Release")
    kube = connect(args)
    ns = kube.namespace(args.namespace, ref_ns)
    env = require_environment(kube, environment)
    release = require_release(kube, name, ns)
    check_promote(env, release)
    ref = f"{ns.name}/{name}"
    body = action_body("Promote", environment, release=ref, reason=(args.reason or "").strip())
    return submit(
        kube,
        body,
        what=f"promote {ref} into {environment}",
        follow=f"stella status {ref} (the gates still apply)",
        wait=args.wait,
        timeout=args.timeout,
    )


def cmd_clear(args: argparse.Namespace) -> int:
    reason = check_reason(args.reason, "env clear", "INC-42 investigated, registry fixed")
    environment = check_one_environment(args.environment)
    kube = connect(args)
    check_clear(require_environment(kube, environment))
    return submit(
        kube,
        action_body("ClearHalt", environment, reason=reason),
        what=f"clear the halt on {environment}",
        follow="stella env list",
        wait=args.wait,
        timeout=args.timeout,
    )


def cmd_suspend(args: argparse.Namespace) -> int:
    reason = check_reason(args.reason, "env suspend", "database migration until 14:00")
    environment = check_one_environment(args.environment)
    kube = connect(args)
    require_environment(kube, environment)
    return submit(
        kube,
        action_body("Suspend", environment, reason=reason),
        what=f"suspend deployments to {environment}",
        follow=f"stella env resume {environment} --reason ... when it may deploy again",
        wait=args.wait,
        timeout=args.timeout,
    )


def cmd_resume(args: argparse.Namespace) -> int:
    environment = check_one_environment(args.environment)
    kube = connect(args)
    require_environment(kube, environment)
    return submit(
        kube,
        action_body("Resume", environment, reason=(args.reason or "").strip()),
        what=f"resume deployments to {environment}",
        follow="stella env list",
        wait=args.wait,
        timeout=args.timeout,
    )


def cmd_rollback(args: argparse.Namespace) -> int:
    from stella.models import EnvironmentSpec
    from stella.models.environment import EnvironmentStatus
    from stella.policy.rollback import RollbackError, deployments_from_history, plan_rollback

    environment = check_one_environment(args.environment)
    kube = connect(args)
    env = require_environment(kube, environment)
    spec = EnvironmentSpec.model_validate(env.get("spec") or {})
    status = EnvironmentStatus.model_validate(env.get("status") or {})
    to = None
    if args.to is not None:
        ref_ns, to_name = split_ref(args.to)
        check_name(to_name, "Release")
        to = f"{kube.namespace(args.namespace, ref_ns).name}/{to_name}"
    try:
        plan = plan_rollback(
            environment,
            spec,
            status.current_release,
            deployments_from_history(status.history),
            to=to,
        )
    except RollbackError as exc:
        raise CliError(exc.message, EXIT_REFUSED) from None
    ns, name = plan.to_release.split("/", 1)
    source = kube.find("releases", name, ns)
    if source is None:
        raise CliError(
            f"{plan.to_release} no longer exists, so it cannot be copied; "
            "name another Release with --to",
            EXIT_REFUSED,
        )
    body = rollback_body(source, environment, plan.to_release, datetime.now(UTC))
    if args.dry_run:
        print(json.dumps(body, indent=2))
        return EXIT_OK
    try:
        made = kube.create("releases", body, ns)
    except Exception as exc:
        raise refused("rollback", exc) from None
    made_ref = f"{ns}/{made['metadata']['name']}"
    print(f"rolling back {environment} to {plan.to_release} as Release {made_ref}")
    print(plan.message)
    print(f"next: stella status {made_ref}")
    return EXIT_OK


def cmd_action_list(args: argparse.Namespace) -> int:
    kube = connect(args)
    items = kube.list("actions")
    if args.environment:
        items = [a for a in items if (a.get("spec") or {}).get("environment") == args.environment]
    items.sort(key=lambda a: (a["metadata"].get("creationTimestamp") or "", a["metadata"]["name"]))
    if not items and args.output == "table":
        print("no Actions" + (f" for {args.environment}" if args.environment else ""))
        return EXIT_OK
    emit(args.output, k8s_list(items), lambda: table(action_rows(items), ACTION_HEADER))
    return EXIT_OK


# --- parsers ----------------------------------------------------------------------------------


def _wait_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wait",
        action="store_true",
        help="wait until the operator has carried the action out (Done or Refused)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_WAIT,
        metavar="SECONDS",
        help="how long --wait waits (default: %(default)g)",
    )


def register(sub: Any, common: list[argparse.ArgumentParser]) -> None:
    """`stella promote` and `stella rollback`."""
    fmt = argparse.RawDescriptionHelpFormatter
    pr = sub.add_parser(
        "promote",
        parents=common,
        help="promote a Release into an environment that does not promote automatically",
        description="Ask to promote one Release into one Environment whose autoPromote is "
        "false: creates an Action in your name.",
        epilog=PROMOTE_EPILOG,
        formatter_class=fmt,
    )
    pr.add_argument("release", metavar="[NS/]RELEASE", help="the Release, e.g. shop/shop-1-4-2")
    pr.add_argument("environment", metavar="ENV", help="one Environment, e.g. prod")
    add_namespace_flag(pr)
    pr.add_argument("--reason", default="", help="why (a ticket, a sentence); kept as evidence")
    _wait_flags(pr)
    pr.set_defaults(func=cmd_promote)

    rb = sub.add_parser(
        "rollback",
        parents=common,
        help="re-promote an earlier Release into an environment",
        description="Roll an Environment back to a Release that ran there before: creates "
        "a new Release (a copy into that one environment) in your name.",
        epilog=ROLLBACK_EPILOG,
        formatter_class=fmt,
    )
    rb.add_argument("environment", metavar="ENV", help="the Environment to roll back")
    rb.add_argument(
        "--to",
        metavar="[NS/]RELEASE",
        help="the Release to roll back to (default: the one deployed before the current)",
    )
    add_namespace_flag(rb, "--to when given without one")
    rb.add_argument(
        "--dry-run", action="store_true", help="print the rollback Release, create nothing"
    )
    rb.set_defaults(func=cmd_rollback)


def register_env(env_sub: Any, common: list[argparse.ArgumentParser]) -> None:
    """`stella env clear|suspend|resume`."""
    for name, func, help_text in (
        ("clear", cmd_clear, "lift a halt once its cause is understood"),
        ("suspend", cmd_suspend, "stop deployments to an environment"),
        ("resume", cmd_resume, "let deployments to a suspended environment go on"),
    ):
        p = env_sub.add_parser(
            name,
            parents=common,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ": creates an Action in your name.",
            epilog=ENV_ACTION_EPILOG[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("environment", metavar="ENV", help="the Environment, e.g. prod")
        required = name != "resume"
        p.add_argument(
            "--reason",
            default="",
            help="why; kept as evidence" + (" (required)" if required else ""),
        )
        _wait_flags(p)
        p.set_defaults(func=func)


def register_list(sub: Any, common: list[argparse.ArgumentParser]) -> None:
    """`stella action list`."""
    act = sub.add_parser(
        "action",
        help="the actions people asked for (promote, clear, suspend, resume)",
        description="Actions are the requests `stella promote` and `stella env "
        "clear|suspend|resume` create; the operator carries each out once.",
        epilog=ACTION_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    act_sub = act.add_subparsers(dest="action_command", metavar="COMMAND", required=True)
    ls = act_sub.add_parser(
        "list",
        parents=common,
        help="every Action: who asked for what, and what came of it",
        description="List Actions, oldest first: the action, its environment and release, "
        "who asked (as the API server authenticated them), its phase, what came of it (the "
        "reason) and age.",
        epilog=ACTION_LIST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ls.add_argument("-e", "--environment", metavar="ENV", help="only this Environment's")
    add_output_flag(ls)
    ls.set_defaults(func=cmd_action_list)
