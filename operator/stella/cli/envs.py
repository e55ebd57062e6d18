"""`stella env list`: every Environment in promotion path order, and how it stands."""

from __future__ import annotations

import argparse
from typing import Any

from stella.cli.kube import connect, path_order
from stella.cli.output import EXIT_OK, add_output_flag, emit, k8s_list, table

LIST_EPILOG = """\
examples:
  stella env list
  stella env list -o json | jq -r '.items[].metadata.name'

Environments come in promotion path order: each after the ones it requires.
"""

HEADER = ["ENVIRONMENT", "REQUIRES", "PROMOTION", "CURRENT", "DEPLOYING", "HALTED", "STATE"]


def environment_row(env: dict[str, Any]) -> list[str]:
    spec, st = env.get("spec") or {}, env.get("status") or {}
    ready: dict[str, Any] = next(
        (c for c in st.get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    halted = (st.get("halted") or {}).get("reason")
    if not halted and (spec.get("suspended") or st.get("suspended")):
        halted = "suspended"
    return [
        env["metadata"]["name"],
        ",".join(spec.get("requires") or []) or "-",
        "manual" if spec.get("autoPromote") is False else "auto",
        st.get("currentRelease") or "-",
        st.get("inFlight") or "-",
        halted or "-",
        ready.get("reason") or "-",
    ]


def environments_table(environments: list[dict[str, Any]]) -> str:
    return table([environment_row(e) for e in environments], HEADER)


def cmd_list(args: argparse.Namespace) -> int:
    items = path_order(connect(args).list("environments"))
    if not items and args.output == "table":
        print("no Environments yet (kubectl apply -f an Environment; see samples/)")
        return EXIT_OK
    emit(args.output, k8s_list(items), lambda: environments_table(items))
    return EXIT_OK


def register(env_sub: Any, common: list[argparse.ArgumentParser]) -> None:
    ls = env_sub.add_parser(
        "list",
        parents=common,
        help="every environment in path order: current release and state",
        description="List Environments in promotion path order: what each requires, "
        "whether it promotes automatically, the Release deployed there, the one deploying, "
        "a halt or suspension, and its state.",
        epilog=LIST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_output_flag(ls)
    ls.set_defaults(func=cmd_list)
