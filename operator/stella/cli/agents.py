"""`stella agent enroll | revoke | list`: a platform engineer's side of deployment agents.

`enroll` makes a one-time registration token, writes only its SHA-256 and expiry to the
Agent (RBAC: patch on agents), and prints the token once, with the command the agent runs.
`revoke` contains an agent in one step: the hub refuses its certificate and tokens at the
next request.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from stella.cli.kube import connect
from stella.cli.output import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_output_flag,
    emit,
    emit_list,
)

ENROLL_EPILOG = """\
examples:
  stella agent enroll eu-1 --expires 1h
  stella agent enroll eu-1 --expires 30m -o json | jq -r .token > eu-1.token

The token is printed once and stored nowhere (the Agent keeps its SHA-256). It enrols one
agent, once, before it expires, from the networks the Agent allows (spec.allowedNetworks).
Running enroll again replaces a token not yet used.
"""


AGENT_EPILOG = """\
examples:
  stella agent enroll eu-1 --expires 1h       a one-time registration token for Agent eu-1
  stella agent list                           state, certificate expiry, last heartbeat
  stella agent revoke eu-1                    contain it: its certificate and tokens refused

docs/agents.md: an Agent's life from enrolment to revocation.
"""

REVOKE_EPILOG = """\
examples:
  stella agent revoke eu-1
  stella agent list                           eu-1 shows Revoked from now on
"""

LIST_EPILOG = """\
examples:
  stella agent list
  stella agent list -o json
"""


def _agent(kube: Any, name: str) -> dict[str, Any]:
    found = kube.find("agents", name)
    if found is None:
        raise CliError(
            f"no Agent {name}; create it first (kubectl apply -f an Agent, see docs/agents.md)",
            EXIT_USAGE,
        )
    return dict(found)


def cmd_enroll(args: argparse.Namespace) -> int:
    from stella.agents.enrollment import new_token
    from stella.policy.duration import parse_duration

    try:
        ttl = parse_duration(args.expires)
    except ValueError as exc:
        raise CliError(f"--expires {args.expires!r}: {exc}", EXIT_USAGE) from None
    if not 0 < ttl.total_seconds() <= 24 * 3600:
        raise CliError("--expires must be more than 0 and at most 24h", EXIT_USAGE)
    kube = connect(args)
    agent = _agent(kube, args.name)
    if (agent.get("spec") or {}).get("revoked"):
        raise CliError(
            f"Agent {args.name} is revoked; delete it and create a new one to enrol again",
            EXIT_USAGE,
        )
    token, digest = new_token()
    expires = (datetime.now(UTC) + ttl).strftime("%Y-%m-%dT%H:%M:%SZ")
    kube.patch(
        "agents", args.name, {"spec": {"enrollment": {"tokenSha256": digest, "expiresAt": expires}}}
    )
    out = {"agent": args.name, "token": token, "expiresAt": expires}
    emit(
        args.output,
        out,
        lambda: (
            f"registration token for agent {args.name} (valid once, until {expires}):\n\n"
            f"  {token}\n\n"
            "On the agent's machine, with the hub's CA certificate:\n\n"
            f"  STELLA_AGENT_TOKEN=<the token> stella-agent enroll --agent {args.name} \\\n"
            "      --hub https://HUB:PORT --hub-ca hub-ca.crt --dir /var/lib/stella-agent"
        ),
    )
    return EXIT_OK


def cmd_revoke(args: argparse.Namespace) -> int:
    kube = connect(args)
    _agent(kube, args.name)
    kube.patch("agents", args.name, {"spec": {"revoked": True}})
    print(
        f"Agent {args.name} revoked: its certificate and tokens are refused from its next "
        "request; to use that machine again, delete the Agent, create it anew and enrol it"
    )
    return EXIT_OK


HEADER = ["AGENT", "STATE", "CAPABILITIES", "LABELS", "CERT EXPIRES", "HEARTBEAT", "FROM"]


def _row(agent: dict[str, Any]) -> list[str]:
    spec, st = agent.get("spec") or {}, agent.get("status") or {}
    state = "Revoked" if spec.get("revoked") else st.get("state") or "Pending"
    if state == "Pending" and spec.get("enrollment"):
        state = "Pending (token issued)"
    return [
        agent["metadata"]["name"],
        state,
        ",".join(spec.get("capabilities") or []) or "-",
        ",".join(f"{k}={v}" for k, v in sorted((spec.get("labels") or {}).items())) or "-",
        (st.get("certificate") or {}).get("notAfter") or "-",
        st.get("lastHeartbeat") or "-",
        st.get("sourceAddress") or "-",
    ]


def cmd_list(args: argparse.Namespace) -> int:
    emit_list(
        args.output,
        connect(args).list("agents"),
        "no Agents yet (kubectl apply -f an Agent; see docs/agents.md)",
        _row,
        HEADER,
    )
    return EXIT_OK


def register(sub: Any, common: list[argparse.ArgumentParser]) -> None:
    agent = sub.add_parser(
        "agent",
        help="enrol, revoke and list deployment agents",
        description="Deployment agents: one-time enrolment tokens, revocation, status.",
        epilog=AGENT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    agent_sub = agent.add_subparsers(dest="agent_command", metavar="COMMAND", required=True)
    enroll = agent_sub.add_parser(
        "enroll",
        parents=common,
        help="print a one-time registration token for an Agent",
        description="Make a one-time registration token for an Agent and print it once.",
        epilog=ENROLL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    enroll.add_argument("name", metavar="NAME", help="the Agent")
    enroll.add_argument(
        "--expires",
        default="1h",
        metavar="DURATION",
        help="how long the token works (default 1h, at most 24h)",
    )
    add_output_flag(enroll)
    enroll.set_defaults(func=cmd_enroll)
    revoke = agent_sub.add_parser(
        "revoke",
        parents=common,
        help="contain an agent now: its certificate and tokens stop working",
        description="Revoke an Agent: the hub refuses its certificate and tokens from the "
        "next request on.",
        epilog=REVOKE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    revoke.add_argument("name", metavar="NAME", help="the Agent")
    revoke.set_defaults(func=cmd_revoke)
    ls = agent_sub.add_parser(
        "list",
        parents=common,
        help="every Agent: state, certificate expiry, last heartbeat",
        epilog=LIST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_output_flag(ls)
    ls.set_defaults(func=cmd_list)
