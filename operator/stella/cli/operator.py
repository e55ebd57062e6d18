"""`stella operator run` and `stella admission run`: the operator's two processes (in
Pods, the chart runs them as the Deployments stella-operator and stella-admission)."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from stella.cli.output import EXIT_OK, EXIT_USAGE, CliError

RUN_EPILOG = """\
examples:
  stella operator run                         the cluster of KUBECONFIG's current context
  STELLA_NAMESPACE=stella-system stella operator run --http-port 9090 --verbose

The operator reads its settings from STELLA_* environment variables (see
operator/stella/settings.py) and the cluster from KUBECONFIG, or from its service account
inside a Pod. It serves /healthz, /readyz and /metrics on --http-port.
"""


ADMISSION_EPILOG = """\
examples:
  STELLA_WEBHOOK_CERT=tls.crt STELLA_WEBHOOK_KEY=tls.key stella admission run
  STELLA_WEBHOOK_CERT=tls.crt STELLA_WEBHOOK_KEY=tls.key stella admission run --http-port 8081

Admission reads the same STELLA_* settings as the operator: the serving certificate
(STELLA_WEBHOOK_CERT, STELLA_WEBHOOK_KEY, required), STELLA_WEBHOOK_HOST/PORT, the
per-person rate (STELLA_WEBHOOK_RATE/BURST), and STELLA_SERVICE_ACCOUNT, the operator's
identity (whose own writes admission lets through). It serves /healthz, /readyz and
/metrics on --http-port. It writes nothing but Events of refusals.
"""


def _settings(args: argparse.Namespace, command: str) -> Any:
    if getattr(args, "context", None):
        raise CliError(
            f"{command} uses the kubeconfig's current context (or STELLA_KUBE_CONTEXT); "
            "--context is for the people commands",
            EXIT_USAGE,
        )
    if getattr(args, "kubeconfig", None):
        os.environ["KUBECONFIG"] = args.kubeconfig
    from stella.settings import load

    settings = load()
    if args.http_port is not None:
        settings = type(settings)(**{**settings.__dict__, "http_port": args.http_port})
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    import logging

    import kopf

    from stella.handlers.run import run

    settings = _settings(args, "operator run")
    kopf.configure(verbose=args.verbose, debug=args.debug)
    logging.getLogger("stella").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    asyncio.run(run(settings))
    return EXIT_OK


def cmd_admission(args: argparse.Namespace) -> int:
    import logging

    from stella.handlers.admission_process import NoCertificate, run_admission

    settings = _settings(args, "admission run")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="[%(asctime)s] %(name)-20s [%(levelname)-8s] %(message)s",
    )
    try:
        asyncio.run(run_admission(settings))
    except NoCertificate as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    return EXIT_OK


def _run_parser(sub: Any, name: str, what: str, description: str, epilog: str) -> Any:
    """`stella <name> run`, with the --http-port and --verbose both processes take."""
    examples = epilog.split("\n\n", 1)[0]  # the run command's examples, for the group too
    parser = sub.add_parser(
        name,
        help=f"run {what}",
        description=description,
        epilog=examples + "\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub_run = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)
    run = sub_run.add_parser(
        "run",
        help=f"run {what} against the current kubeconfig",
        description=f"Run {what} in the foreground until SIGTERM or Ctrl-C.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--http-port",
        type=int,
        metavar="PORT",
        help="port of /healthz, /readyz and /metrics (default 8080)",
    )
    run.add_argument("--verbose", action="store_true", help="log more")
    return run


def register(sub: Any) -> None:
    run = _run_parser(
        sub,
        "operator",
        "the operator",
        "Run Stella's operator: the promotion engine (and, given a serving certificate, the "
        "admission webhooks in the same process; the chart runs them apart, as `stella "
        "admission run`).",
        RUN_EPILOG,
    )
    run.add_argument("--debug", action="store_true", help="log kopf's debug messages")
    run.set_defaults(func=cmd_run)


def register_admission(sub: Any) -> None:
    run = _run_parser(
        sub,
        "admission",
        "Stella's admission webhooks (their own process)",
        "Serve Stella's admission webhooks in a process of their own, apart from the "
        "promotion engine (the chart's Deployment stella-admission).",
        ADMISSION_EPILOG,
    )
    run.set_defaults(func=cmd_admission)
