"""`stella-agent`: the deployment agent, run in the target network.

    stella-agent enroll --agent NAME --hub URL --hub-ca FILE --dir DIR   (token: STELLA_AGENT_TOKEN)
    stella-agent run    --hub URL --hub-ca FILE --dir DIR [--capability C ...]

`enroll` makes the agent's key here (it never leaves DIR), sends a CSR with the one-time
token, and keeps the certificate the hub returns. `run` dials out to the hub over mTLS,
logs in, sends a heartbeat every --interval seconds, refreshes its session before it
expires (the refresh token rotates each time) and renews its certificate when a third of
its lifetime is left. With --tasks it long-polls the hub for deployment tasks and carries
each out in this cluster (agents/executor.py), with the cluster identity KUBECONFIG names.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("stella.agent")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stella-agent", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, text in (
        ("enroll", "enrol once with a registration token"),
        ("run", "dial out to the hub and stay connected"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--hub", required=True, metavar="URL", help="https://HOST:PORT of the hub")
        p.add_argument(
            "--hub-ca",
            required=True,
            type=Path,
            metavar="FILE",
            help="the hub's CA certificate (PEM)",
        )
        p.add_argument(
            "--dir",
            required=True,
            type=Path,
            metavar="DIR",
            help="where the agent keeps its key and certificate",
        )
    enroll = sub.choices["enroll"]
    enroll.add_argument("--agent", required=True, metavar="NAME", help="the Agent's name")
    enroll.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="read the token from FILE (else STELLA_AGENT_TOKEN)",
    )
    enroll.add_argument(
        "--if-needed",
        action="store_true",
        help="do nothing when DIR already holds a certificate (an init container's run: a "
        "restarted agent keeps its identity; the one-time token is spent)",
    )
    run = sub.choices["run"]
    run.add_argument(
        "--capability",
        action="append",
        default=[],
        metavar="C",
        help="a capability to report (repeat)",
    )
    run.add_argument(
        "--interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="heartbeat interval (default 30)",
    )
    run.add_argument(
        "--once", action="store_true", help="one heartbeat (and one pass over tasks), then exit"
    )
    run.add_argument(
        "--tasks",
        action="store_true",
        help="carry out deployment tasks in this cluster (KUBECONFIG: the agent's own identity)",
    )
    return parser


def cmd_enroll(args: argparse.Namespace) -> int:
    from stella.agents.client import HubClient, HubError, Identity

    if args.if_needed and Identity(args.dir).cert.exists():
        print(f"already enrolled: certificate in {Identity(args.dir).cert}")
        return 0
    token = (
        args.token_file.read_text().strip()
        if args.token_file
        else os.environ.get("STELLA_AGENT_TOKEN", "").strip()
    )
    if not token:
        print("stella-agent: give the token in STELLA_AGENT_TOKEN or --token-file", file=sys.stderr)
        return 2
    identity = Identity(args.dir)
    try:
        out = HubClient(args.hub, args.hub_ca).enroll(
            args.agent, token, identity.new_csr(args.agent)
        )
    except HubError as exc:
        print(f"stella-agent: {exc}", file=sys.stderr)
        return 1
    identity.keep(out["certificate"], out["ca"])
    print(f"enrolled as {args.agent}; certificate in {identity.cert}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from cryptography import x509

    from stella.agents.ca import agent_of
    from stella.agents.client import HubClient, HubError, Identity, Session

    identity = Identity(args.dir)
    if not identity.cert.exists():
        print(
            f"stella-agent: no certificate in {args.dir}; run `stella-agent enroll` first",
            file=sys.stderr,
        )
        return 2
    executor = None
    if args.tasks:
        from stella.agents.executor import Executor
        from stella.k8s.client import api_client

        executor = Executor(api_client())  # KUBECONFIG: this cluster, this agent's own identity
    try:
        session = Session(HubClient(args.hub, args.hub_ca, identity))
        while True:
            session.call(session.hub.heartbeat, list(args.capability))
            log.info("heartbeat sent")
            if executor is not None:
                wait = 0 if args.once else min(args.interval, 25)
                for task in session.call(session.hub.tasks, wait=wait):
                    name = str(task["name"])
                    log.info("task %s: %s", name, task["phase"])
                    final = executor.run(
                        task, _reporter(session, name), _credentials(session, name)
                    )
                    log.info("task %s: %s", name, final)
            if args.once:
                return 0
            cert = x509.load_pem_x509_certificate(identity.cert.read_bytes())
            left = cert.not_valid_after_utc - datetime.now(UTC)
            if left < (cert.not_valid_after_utc - cert.not_valid_before_utc) / 3:
                csr = identity.new_csr(agent_of(cert) or "agent")
                out = session.call(session.hub.renew, csr)
                identity.keep(out["certificate"], out["ca"])
                session = Session(HubClient(args.hub, args.hub_ca, identity))
                log.info("certificate renewed")
            if executor is None:
                time.sleep(args.interval)
    except HubError as exc:
        print(f"stella-agent: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _credentials(session: Any, task: str) -> Callable[[], list[dict[str, Any]]]:
    def fetch() -> list[dict[str, Any]]:
        # This request's key, in memory only: the retries of session.call (a hub restarted
        # before its answer arrived) carry it, so the hub answers them again; nothing else
        # has it (agents/task_credentials.py).
        request = secrets.token_urlsafe(32)
        return list(session.call(session.hub.credentials, task, request))

    return fetch


def _reporter(session: Any, task: str) -> Callable[[str, dict[str, Any]], None]:
    def report(phase: str, body: dict[str, Any]) -> None:
        session.call(session.hub.report, task, phase, body)

    return report


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = _parser().parse_args(argv)
    return cmd_enroll(args) if args.command == "enroll" else cmd_run(args)


if __name__ == "__main__":
    raise SystemExit(main())
