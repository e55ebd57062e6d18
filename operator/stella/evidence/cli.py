"""``stella evidence verify | export | show | keys``.

Wire it with one line in ``stella/cli.py``: ``stella.evidence.cli.register(subparsers)``;
each subcommand sets ``func`` (``args.func(args) -> int`` is the exit code).

Sources: the evidence ConfigMaps and published keys in ``--namespace`` (kubeconfig, or
in-cluster config), and the external log at ``--log`` (``postgresql://...`` — the password
from ``PGPASSWORD``/``~/.pgpass``, never on the command line — or a JSON-lines file path);
or, offline, a bundle written by ``export`` (``--bundle``).

Exit codes: 0 everything holds; 1 verification found problems (each is printed, naming
the ConfigMap, log row or chain position); 2 the sources could not be read.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from stella.evidence.bundle import Bundle, read_bundle, write_bundle
from stella.evidence.dsse import parse_envelope, verify_envelope
from stella.evidence.errors import EvidenceError, MalformedPacket
from stella.evidence.factory import open_log
from stella.evidence.findings import Finding
from stella.evidence.keys import KeyRing, spki_fingerprint
from stella.evidence.log_jsonl import JsonlLog
from stella.evidence.manifest import configmap_name
from stella.evidence.packet import CLUSTER_CHAIN, Statement, parse_statement
from stella.evidence.records import LogEntry, StoredPacket
from stella.evidence.store_configmap import ConfigMapStore
from stella.evidence.verify import verify
from stella.models.common import rfc3339

DEFAULT_NAMESPACE = os.environ.get("STELLA_NAMESPACE", "stella-system")
DEFAULT_LOG = os.environ.get("STELLA_EVIDENCE_LOG", "")
EXIT_OK, EXIT_FINDINGS, EXIT_UNAVAILABLE = 0, 1, 2


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ev = subparsers.add_parser(
        "evidence",
        help="verify, export and inspect the signed evidence trail",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ev.add_subparsers(dest="evidence_command", metavar="COMMAND", required=True)

    def sources(p: argparse.ArgumentParser, bundle: bool = True) -> None:
        p.add_argument(
            "--namespace",
            "-n",
            default=DEFAULT_NAMESPACE,
            help="the operator's namespace (default: %(default)s)",
        )
        p.add_argument(
            "--log",
            default=DEFAULT_LOG,
            metavar="URL",
            help="external log: postgresql://user@host/db or a .jsonl path "
            "(default: $STELLA_EVIDENCE_LOG)",
        )
        p.add_argument("--kubeconfig", default=None)
        p.add_argument("--context", default=None)
        if bundle:
            p.add_argument(
                "--bundle",
                metavar="FILE",
                help="read an exported bundle instead of the cluster and the log",
            )

    p = sub.add_parser("verify", help="check every signature, chain link and store agreement")
    sources(p)
    p.add_argument("--environment", "-e", help="only this environment's chain")
    p.add_argument(
        "--since",
        type=parse_since,
        metavar="T",
        help="only packets recorded at/after T (RFC 3339, or an age: 24h, 7d)",
    )
    p.add_argument(
        "--trusted-keys",
        metavar="FILE",
        help="pin the trusted public keys: a bundle, a JSON {keyid: pem} file, or "
        "a directory of <keyid>.pem files",
    )
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("export", help="write an offline bundle: packets, keys, log entries")
    sources(p, bundle=False)
    p.add_argument("--out", "-o", required=True, metavar="FILE")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("show", help="print one packet readably")
    sources(p)
    p.add_argument("packet", help="ConfigMap name, packet id (prefix), or ENVIRONMENT#SEQUENCE")
    p.add_argument("--json", action="store_true", help="print the decoded statement as JSON")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("keys", help="list the published public keys")
    sources(p)
    p.add_argument("--out-dir", metavar="DIR", help="also write each key as <keyid>.pem")
    p.add_argument("--json", action="store_true", help="print {keyid: pem} as JSON")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser(
        "install-log",
        help="create the PostgreSQL log: schema, append-only table, triggers, roles",
        description="Create (or bring up to date; idempotent) the external evidence log in "
        "PostgreSQL and its roles. Run once with an administrator's DSN; the operator then "
        "uses the writer role (STELLA_EVIDENCE_LOG=postgresql://WRITER@host/db, password "
        "from PGPASSWORD), auditors the reader role. Passwords are read from files (or '-' "
        "for standard input), never from the command line.",
    )
    p.add_argument(
        "--dsn",
        required=True,
        metavar="URL",
        help="administrator DSN, postgresql://admin@host:port/db (password from PGPASSWORD)",
    )
    p.add_argument("--writer-role", default="stella_evidence_writer")
    p.add_argument("--writer-password-file", metavar="FILE", help="set the writer's password")
    p.add_argument("--reader-role", help="also create a SELECT-only LOGIN role for auditors")
    p.add_argument("--reader-password-file", metavar="FILE", help="set the reader's password")
    p.add_argument("--owner-role", default="stella_evidence_owner", help="NOLOGIN table owner")
    p.set_defaults(func=cmd_install_log)


# --- helpers ------------------------------------------------------------------------


def parse_since(text: str) -> datetime:
    m = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(m.group(1))})
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a time or an age: {text!r}") from exc
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@dataclass
class Sources:
    keys: dict[str, str]
    configmaps: list[StoredPacket]
    log: list[LogEntry]
    problems: list[Finding]
    namespace: str


def _api_client(args: argparse.Namespace) -> Any:
    injected = getattr(args, "api_client", None)
    if injected is not None:
        return injected
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=args.kubeconfig, context=args.context
        )
    except Exception:
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
    return k8s_client.ApiClient()


def load_sources(args: argparse.Namespace) -> Sources:
    """Read keys, ConfigMaps and log entries from a bundle or from the cluster + log."""
    if getattr(args, "bundle", None):
        b = read_bundle(args.bundle)
        problems = [Finding("log-malformed", p, "log line does not parse") for p in b.log_problems]
        return Sources(b.keys, b.configmaps, b.log, problems, b.namespace)
    if not args.log:
        raise MalformedPacket("no external log given: pass --log or set STELLA_EVIDENCE_LOG")
    store = ConfigMapStore(_api_client(args), args.namespace)
    log = open_log(args.log)
    try:
        entries = log.entries()
        problems = []
        if isinstance(log, JsonlLog):
            problems = [
                Finding(
                    "log-malformed",
                    f"log line {n}",
                    "line does not parse as an entry: torn write or tampering",
                )
                for n in log.malformed
            ]
    finally:
        log.close()
    return Sources(store.published_keys(), store.list(), entries, problems, args.namespace)


def load_trusted(path: str) -> dict[str, str]:
    p = Path(path)
    if p.is_dir():
        return {f.stem: f.read_text() for f in sorted(p.glob("*.pem"))}
    data = json.loads(p.read_text())
    if isinstance(data, dict) and data.get("format", "").startswith("stella.io/evidence-bundle"):
        return Bundle.from_dict(data).keys
    if not isinstance(data, dict):
        raise MalformedPacket(f"{path}: expected a JSON object of keyid -> PEM")
    return {str(k): str(v) for k, v in data.items()}


def _ring(keys: Mapping[str, str], problems: list[Finding], what: str) -> KeyRing:
    ring = KeyRing()
    for key_id, pem in keys.items():
        try:
            ring.add(key_id, pem)
        except MalformedPacket as exc:
            problems.append(Finding("key-invalid", f"{what} key {key_id}", exc.message))
    return ring


def _fail(out: TextIO, exc: Exception) -> int:
    message = exc.message if isinstance(exc, EvidenceError) else f"{type(exc).__name__}: {exc}"
    print(f"error: {message}", file=out)
    return EXIT_UNAVAILABLE


# --- commands -------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        src = load_sources(args)
        trusted = load_trusted(args.trusted_keys) if args.trusted_keys else None
    except (EvidenceError, OSError, ValueError) as exc:
        return _fail(out, exc)
    problems = list(src.problems)
    ring = _ring(src.keys, problems, "published")
    pinned = _ring(trusted, problems, "pinned") if trusted is not None else None
    report = verify(
        src.configmaps,
        src.log,
        ring,
        environment=args.environment,
        since=args.since,
        trusted_keys=pinned,
    )
    findings = problems + report.findings
    if args.json:
        json.dump(
            {
                "ok": not findings,
                "configMaps": report.configmaps,
                "logEntries": report.log_entries,
                "signatures": report.signatures,
                "heads": report.heads,
                "findings": [f.__dict__ for f in findings],
            },
            out,
            indent=2,
        )
        print(file=out)
    else:
        for f in findings:
            print(f"FAIL {f}", file=out)
        print(
            report.summary() if not problems else f"evidence FAILED ({len(findings)} findings)",
            file=out,
        )
    return EXIT_OK if not findings else EXIT_FINDINGS


def cmd_export(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        src = load_sources(args)
        write_bundle(
            args.out,
            keys=src.keys,
            configmaps=src.configmaps,
            log=src.log,
            namespace=src.namespace,
            log_problems=[p.item for p in src.problems],
        )
    except (EvidenceError, OSError, ValueError) as exc:
        return _fail(out, exc)
    print(
        f"wrote {args.out}: {len(src.configmaps)} packets, {len(src.keys)} keys, "
        f"{len(src.log)} log entries",
        file=out,
    )
    return EXIT_OK


def _find_packet(src: Sources, ref: str) -> tuple[str, str | dict[str, Any]] | None:
    m = re.fullmatch(r"(.+)#(\d+)", ref)
    name = ref
    if m:
        chain = CLUSTER_CHAIN if m.group(1) in ("cluster", CLUSTER_CHAIN) else m.group(1)
        name = configmap_name(chain, int(m.group(2)))
    for cm in src.configmaps:
        if cm.name == name or cm.annotations.get("stella.io/packet-id", "").startswith(ref):
            return f"ConfigMap {cm.name}", cm.envelope_json
    for e in src.log:
        if e.packet_id.startswith(ref) or configmap_name(e.chain, e.sequence) == name:
            return f"log {e.chain}#{e.sequence}", e.envelope
    return None


def render(statement: Statement, *, where: str, key_id: str | None, verified: str) -> str:
    p = statement.predicate
    lines = [
        f"{p.kind}  {p.chain}#{p.sequence}  ({where})",
        f"  recorded      {rfc3339(p.recorded_at)} by stella {p.operator.version}"
        + (f" ({p.operator.instance})" if p.operator.instance else ""),
        f"  packet id     {p.packet_id}",
        f"  digest        {statement.digest()}",
        f"  previous      {p.previous_digest or '(first of its chain)'}",
        f"  signature     {verified}" + (f" (key {key_id})" if key_id else ""),
    ]
    if p.environment:
        lines.append(f"  environment   {p.environment}")
    if p.release:
        r = p.release
        version = f" {r.version}" if r.version else ""
        lines.append(f"  release       {r.namespace}/{r.name}{version}")
    if p.agent:
        lines.append(f"  agent         {p.agent.name} {p.agent.fingerprint or ''}".rstrip())
    if p.actor:
        lines.append(f"  actor         {p.actor}")
    lines.append("  subjects")
    lines += [f"    {s.name}@sha256:{s.digest['sha256']}" for s in statement.subject]
    if p.approvals:
        lines.append("  approvals")
        for a in p.approvals:
            counted = "counted" if a.counted else f"not counted: {a.reason or '-'}"
            lines.append(
                f"    {a.decision:<7} {a.approver} [{', '.join(a.groups)}] "
                f"{rfc3339(a.at)} ({counted})"
            )
    if p.policy:
        lines.append(f"  policy        {p.policy.outcome}")
        lines += [f"    - {reason}" for reason in p.policy.reasons]
        if p.policy.inputs:
            lines.append("    inputs " + json.dumps(p.policy.inputs, sort_keys=True))
    if p.outcome:
        o = p.outcome
        lines.append(f"  outcome       {o.result} {o.reason} {o.message}".rstrip())
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        src = load_sources(args)
    except (EvidenceError, OSError, ValueError) as exc:
        return _fail(out, exc)
    found = _find_packet(src, args.packet)
    if found is None:
        print(f"error: no packet {args.packet!r}", file=out)
        return EXIT_FINDINGS
    where, raw = found
    try:
        env = parse_envelope(raw if isinstance(raw, str) else dict(raw))
        statement = parse_statement(env.payload_bytes())
    except MalformedPacket as exc:
        print(f"{where}: {exc.message}", file=out)
        return EXIT_FINDINGS
    try:
        key_id: str | None = verify_envelope(env, _ring(src.keys, [], "published"))
        verified = "verified"
    except EvidenceError as exc:
        key_id, verified = None, f"NOT VERIFIED: {exc.message}"
    if args.json:
        print(json.dumps(json.loads(env.payload_bytes()), indent=2, sort_keys=True), file=out)
    else:
        print(render(statement, where=where, key_id=key_id, verified=verified), file=out)
    return EXIT_OK if key_id else EXIT_FINDINGS


def cmd_keys(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        if getattr(args, "bundle", None):
            keys = read_bundle(args.bundle).keys
        else:
            keys = ConfigMapStore(_api_client(args), args.namespace).published_keys()
    except (EvidenceError, OSError, ValueError) as exc:
        return _fail(out, exc)
    if args.out_dir:
        d = Path(args.out_dir)
        d.mkdir(parents=True, exist_ok=True)
        for key_id, pem in keys.items():
            (d / (re.sub(r"[^A-Za-z0-9._-]", "_", key_id) + ".pem")).write_text(pem)
    if args.json:
        json.dump(keys, out, indent=2, sort_keys=True)
        print(file=out)
    else:
        for key_id, pem in sorted(keys.items()):
            print(f"{key_id}  sha256:{spki_fingerprint(pem)}", file=out)
            print(pem.rstrip(), file=out)
    return EXIT_OK


def _read_secret(path: str | None) -> str | None:
    if path is None:
        return None
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return text.rstrip("\r\n")


def cmd_install_log(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    import psycopg

    from stella.evidence import log_postgres

    if not args.dsn.startswith(("postgresql://", "postgres://")):
        print("error: --dsn must be postgresql://admin@host:port/db", file=out)
        return EXIT_UNAVAILABLE
    try:
        log_postgres.install(
            args.dsn,
            writer_role=args.writer_role,
            writer_password=_read_secret(args.writer_password_file),
            owner_role=args.owner_role,
            reader_role=args.reader_role,
            reader_password=_read_secret(args.reader_password_file),
        )
    except (EvidenceError, OSError) as exc:
        return _fail(out, exc)
    except psycopg.Error as exc:  # never the DSN: it may hold a password
        detail = exc.diag.message_primary or type(exc).__name__
        print(f"error: PostgreSQL refused the install ({exc.sqlstate}): {detail}", file=out)
        return EXIT_UNAVAILABLE
    table = f"{log_postgres.SCHEMA}.{log_postgres.TABLE}"
    roles = f"writer {args.writer_role}" + (
        f", reader {args.reader_role}" if args.reader_role else ""
    )
    print(f"evidence log ready: {table} (append-only), roles: {roles}", file=out)
    return EXIT_OK
