"""`stella web`: the console (pipelines, approvals inbox, environments), its own process."""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

from stella.cli.output import EXIT_OK, EXIT_USAGE, CliError

WEB_EPILOG = """\
examples:
  stella web --cert tls.crt --key tls.key     https://127.0.0.1:8443/, as KUBECONFIG's identity
  stella web --cert tls.crt --key tls.key --host 0.0.0.0 --port 9443

The console reads the cluster through its own watches with the identity of KUBECONFIG (or
its service account in a Pod): it needs only to review tokens and list/watch Stella's
kinds. People log in with their own Kubernetes bearer token; every approval is made with
that token, so the API server's admission, RBAC and separation of duties apply.
TLS only. Settings: STELLA_WEB_CERT, STELLA_WEB_KEY, STELLA_WEB_HOST, STELLA_WEB_PORT,
STELLA_WEB_ACCESS_SECONDS (900), STELLA_WEB_RATE/BURST (per person). See docs/console.md.
"""


def cmd_web(args: argparse.Namespace) -> int:
    if getattr(args, "kubeconfig", None):
        os.environ["KUBECONFIG"] = args.kubeconfig
    if getattr(args, "context", None):
        os.environ["STELLA_KUBE_CONTEXT"] = args.context
    import asyncio
    import logging

    from stella.web.server import WebSettings, serve, tls_context

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = WebSettings.from_env(
        certfile=args.cert, keyfile=args.key, host=args.host, port=args.port
    )
    try:
        tls_context(settings)
    except (ValueError, OSError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings))
    return EXIT_OK


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    web = sub.add_parser(
        "web",
        help="run the web console",
        description="Serve Stella's web console over TLS until SIGTERM or Ctrl-C.",
        epilog=WEB_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=parents,
    )
    web.add_argument("--cert", help="the serving certificate (PEM); or STELLA_WEB_CERT")
    web.add_argument("--key", help="its private key (PEM); or STELLA_WEB_KEY")
    web.add_argument("--host", help="the address to listen on (default 127.0.0.1)")
    web.add_argument("--port", type=int, help="the port (default 8443)")
    web.set_defaults(func=cmd_web)
