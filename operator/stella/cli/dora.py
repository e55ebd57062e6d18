"""`stella dora`: DORA's four keys per Environment, from the evidence trail — verified
first (signatures, chains, ConfigMaps and log agreeing), so the figures are only ever
computed from records nobody altered."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TextIO

from stella.cli import evidence_sources as evidence
from stella.cli.output import EXIT_OK, EXIT_REFUSED, CliError, dump, table
from stella.evidence.dora import format_duration

DESCRIPTION = """\
DORA's four keys per Environment, computed from the signed evidence trail (the same
sources as `stella evidence verify`, which runs first: evidence that does not verify
gives no figures):

  deployments    promotions that finished Deployed, and per day over the period
  lead time      from a Release's creation to its deployment there (p50, p90); for
                 the last Environment of your path, DORA's lead time for changes
  change failure (Failed + RolledBack) / all finished promotions
  restore        from the first failure of a run to the next successful deployment (p50)
"""
EPILOG = """\
examples:
  stella dora --since 30d
  stella dora --environment prod --since 2026-11-01T00:00:00Z -o json
  stella dora --bundle bundle.json          # offline, from stella evidence export
"""


def register(
    subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: list[argparse.ArgumentParser] | None = None,
) -> None:
    p = subparsers.add_parser(
        "dora",
        parents=list(common or []),
        help="DORA metrics per environment, from the verified evidence",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evidence.sources(p)
    p.add_argument("--environment", "-e", metavar="ENV", help="only this environment")
    p.add_argument(
        "--since",
        type=evidence.parse_since,
        metavar="T",
        help="the period's start (RFC 3339, or an age: 24h, 30d); default: each "
        "environment's first finished promotion",
    )
    p.add_argument(
        "--trusted-keys",
        metavar="PATH",
        help="pin the trusted public keys (as for stella evidence verify --trusted-keys)",
    )
    evidence.output(p)
    p.set_defaults(func=cmd_dora)


def cmd_dora(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from stella.evidence.dora import dora
    from stella.evidence.dsse import parse_envelope
    from stella.evidence.packet import parse_statement

    out = out if out is not None else sys.stdout
    src = evidence.load_sources(args)
    # With --environment only that chain is verified and read: its figures need nothing
    # else (a Release's creation time is in each packet).
    report, problems = evidence.check(src, args.trusted_keys, args.environment)
    findings = problems + report.findings
    if findings:
        raise CliError(
            f"the evidence does not verify ({len(findings)} findings, e.g. {findings[0]}); "
            "DORA figures are computed only from evidence that verifies: run "
            "`stella evidence verify` to see every finding",
            EXIT_REFUSED,
        )
    # Every log entry verified above (and matched its ConfigMap entry for entry).
    predicates = [
        parse_statement(parse_envelope(e.envelope).payload_bytes()).predicate
        for e in src.log
        if args.environment is None or e.chain == args.environment
    ]
    rows = dora(predicates, now=datetime.now(UTC), since=args.since, environment=args.environment)
    if args.output != "table":
        print(dump({"environments": [_doc(r) for r in rows]}, args.output), file=out)
        return EXIT_OK
    if not rows:
        print("no finished promotions in the evidence for that period", file=out)
        return EXIT_OK
    print(
        table(
            [
                (
                    r.environment,
                    r.deployments,
                    f"{r.per_day:.2f}",
                    format_duration(r.lead_time_p50),
                    format_duration(r.lead_time_p90),
                    _percent(r.change_failure_rate),
                    format_duration(r.time_to_restore_p50),
                )
                for r in rows
            ],
            (
                "ENVIRONMENT",
                "DEPLOYMENTS",
                "PER DAY",
                "LEAD TIME P50",
                "LEAD TIME P90",
                "CHANGE FAILURE",
                "RESTORE P50",
            ),
        ),
        file=out,
    )
    return EXIT_OK


def _doc(r: object) -> dict[str, object]:
    from dataclasses import asdict, is_dataclass

    assert is_dataclass(r) and not isinstance(r, type)
    return {_camel(k): v for k, v in asdict(r).items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _duration(seconds: float | None) -> str:
    return format_duration(seconds)
