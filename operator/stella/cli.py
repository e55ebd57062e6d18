"""`stella`: run the operator, and the commands people use day to day.

Output is for people: tables with aligned columns, errors that say what to do, exit
codes that scripts can trust (0 ok, 1 the thing asked for is not so, 2 bad usage).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import Any

from stella import __version__

Command = Callable[[argparse.Namespace], int]


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    cells = [list(header), *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _operator_run(args: argparse.Namespace) -> int:
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
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stella",
        description="Stella: promote digest-pinned Releases through gated Environments, "
        "with tamper-evident evidence.",
    )
    parser.add_argument("--version", action="version", version=f"stella {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    op = sub.add_parser("operator", help="run the operator")
    op_sub = op.add_subparsers(dest="operator_command", metavar="ACTION")
    run = op_sub.add_parser("run", help="run the operator against the current kubeconfig")
    run.add_argument("--http-port", type=int, help="port of /healthz and /metrics (default 8080)")
    run.add_argument("--verbose", action="store_true")
    run.add_argument("--debug", action="store_true")
    run.set_defaults(func=_operator_run)

    from stella.cli_envs import register as register_envs
    from stella.cli_people import register as register_people

    register_people(sub)
    register_envs(sub)
    for module in ("stella.evidence.cli", "stella.registry.cli"):
        _optional_register(module, sub)
    return parser


def _optional_register(module: str, sub: Any) -> None:
    """Subcommand trees live beside their domain; each module adds its own."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError:
        return
    mod.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
