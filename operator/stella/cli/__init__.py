"""`stella`: the commands people and scripts use, and the operator's entry point.

One module per command group (as in kubectl's and argocd's command trees):

- ``people``   status, approve, reject
- ``actions``  promote, rollback, env clear|suspend|resume, action list
- ``envs``     env list
- ``evidence`` evidence verify|export|show|keys|install-log
- ``registry`` release create --from-tags
- ``operator`` operator run, admission run
- ``web``      web (the console)
- ``plugins``  plugin sign|reenable|list
- ``completion`` completion bash|zsh

and the helpers they share: ``output`` (tables, ``-o json|yaml``, one-line failures, exit
codes) and ``kube`` (kubeconfig, ``--context``, namespaces, the few API calls).
Heavy imports (the Kubernetes client, the evidence and registry code) happen inside the
commands, so ``stella --help`` and completion stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable, Sequence

from stella import __version__
from stella.cli import (
    actions,
    agents,
    completion,
    dora,
    envs,
    evidence,
    operator,
    passport,
    people,
    plugins,
    registry,
    web,
)
from stella.cli.kube import add_connection_flags
from stella.cli.output import (
    EXIT_CODES_HELP,
    EXIT_PIPE,
    EXIT_USAGE,
    fail,
    translate,
)

Command = Callable[[argparse.Namespace], int]

DESCRIPTION = """\
Stella promotes digest-pinned Releases through gated Environments (dev -> staging -> prod)
and keeps a signed, tamper-evident evidence trail. Every command acts as you, with your
kubeconfig credentials: the API server says who you are and RBAC what you may do.
"""

EPILOG = f"""\
examples:
  stella status shop/shop-1-4-2                   where a Release stands, per environment
  stella approve shop/shop-1-4-2 prod --comment CAB-1234
  stella promote shop/shop-1-4-2 prod --wait      where autoPromote is false
  stella env list -o json                         environments in path order, for scripts
  stella --context alice env suspend prod --reason "migration"
  stella evidence verify --log postgresql://reader@db/stella

Run `stella COMMAND --help` for each command's flags and examples.
The global flags --kubeconfig, --context and --request-timeout go before or after COMMAND.

{EXIT_CODES_HELP}"""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    add_connection_flags(common)
    parents = [common]
    parser = argparse.ArgumentParser(
        prog="stella",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=parents,
    )
    parser.add_argument("--version", action="version", version=f"stella {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    people.register(sub, parents)
    actions.register(sub, parents)
    env = sub.add_parser(
        "env",
        help="list environments; clear a halt, suspend, resume",
        description="Inspect Environments and act on them (each action in your name).",
        epilog="examples:\n"
        "  stella env list\n"
        '  stella env clear prod --reason "INC-42: registry fixed"\n'
        '  stella env suspend prod --reason "database migration"\n'
        "  stella env resume prod\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    env_sub = env.add_subparsers(dest="env_command", metavar="COMMAND", required=True)
    envs.register(env_sub, parents)
    actions.register_env(env_sub, parents)
    actions.register_list(sub, parents)
    registry.register(sub)
    evidence.register(sub, parents)
    dora.register(sub, parents)
    passport.register(sub)
    agents.register(sub, parents)
    plugins.register(sub, parents)
    completion.register(sub, parser)
    operator.register(sub)
    operator.register_admission(sub)
    web.register(sub, parents)
    _wrap_long_descriptions(parser)
    return parser


#: the width the hand-wrapped examples and epilogs keep to
HELP_WIDTH = 90


def _wrap_long_descriptions(parser: argparse.ArgumentParser) -> None:
    """Wrap each description line longer than HELP_WIDTH. The commands use the raw
    formatter so their examples keep their layout, which also left one-sentence
    descriptions as single lines of up to 360 characters that a terminal broke mid-word;
    lines already short (laid out by hand) are kept as they are."""
    if parser.description:
        parser.description = "\n".join(
            textwrap.fill(line, HELP_WIDTH) if len(line) > HELP_WIDTH else line
            for line in parser.description.splitlines()
        )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _wrap_long_descriptions(child)


def _quiet_broken_pipe() -> int:
    """The reader went away (`stella env list | head -1`): stop quietly, as Unix tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        func: Command | None = getattr(args, "func", None)
        if func is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        code = func(args)
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except Exception as exc:
        known = translate(exc)
        if known is None:
            raise
        return fail(*known)


if __name__ == "__main__":
    raise SystemExit(main())
