"""`stella operator run`: the operator itself (in a Pod, the chart runs this)."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from stella.cli.output import EXIT_OK, EXIT_USAGE, CliError

RUN_EPILOG = """\
The operator reads its settings from STELLA_* environment variables (see
operator/stella/settings.py) and the cluster from KUBECONFIG, or from its service account
inside a Pod. It serves /healthz, /readyz and /metrics on --http-port.
"""


def cmd_run(args: argparse.Namespace) -> int:
    if getattr(args, "context", None):
        raise CliError(
            "operator run uses the kubeconfig's current context (or STELLA_KUBE_CONTEXT); "
            "--context is for the people commands",
            EXIT_USAGE,
        )
    if getattr(args, "kubeconfig", None):
        os.environ["KUBECONFIG"] = args.kubeconfig
    import logging

    import kopf

    from stella.handlers.run import run
    from stella.settings import load

    kopf.configure(verbose=args.verbose, debug=args.debug)
    logging.getLogger("stella").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    settings = load()
    if args.http_port is not None:
        settings = type(settings)(**{**settings.__dict__, "http_port": args.http_port})
    asyncio.run(run(settings))
    return EXIT_OK


def register(sub: Any) -> None:
    op = sub.add_parser(
        "operator",
        help="run the operator",
        description="Run Stella's operator: the promotion engine and admission webhooks.",
    )
    op_sub = op.add_subparsers(dest="operator_command", metavar="COMMAND", required=True)
    run = op_sub.add_parser(
        "run",
        help="run the operator against the current kubeconfig",
        description="Run the operator in the foreground until SIGTERM or Ctrl-C.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--http-port",
        type=int,
        metavar="PORT",
        help="port of /healthz, /readyz and /metrics (default 8080)",
    )
    run.add_argument("--verbose", action="store_true", help="log more (kopf and stella)")
    run.add_argument("--debug", action="store_true", help="log kopf's debug messages")
    run.set_defaults(func=cmd_run)
