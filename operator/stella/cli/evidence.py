"""`stella evidence verify | export | show | keys | install-log`: the auditor's tools.

Sources: the evidence ConfigMaps and published keys in ``--namespace`` (the operator's
namespace, read with your kubeconfig), and the external log at ``--log``
(``postgresql://...``, the password from ``PGPASSWORD``/``~/.pgpass``, never on the command
line; or a JSON-lines file path); or, offline, a bundle written by ``export``
(``--bundle``).

Exit codes: 0 everything holds; 1 verification found problems (each is printed, naming
the ConfigMap, log row or chain position); 2 bad usage (a flag, or a file you named that
cannot be read); 3 a source could not be reached (the API server, PostgreSQL).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from stella.cli.evidence_sources import (
    Sources,
    api_client,
    check,
    check_environment,
    key_file_name,
    key_ring,
    load_sources,
    output,
    parse_jobs,
    parse_since,
    source_error,
    sources,
)
from stella.cli.output import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    dump,
)

if TYPE_CHECKING:
    from stella.evidence.packet import Statement

EXIT_FINDINGS = EXIT_REFUSED

EVIDENCE_DESCRIPTION = """\
Verify, export and inspect Stella's signed evidence trail: every promotion decision is an
in-toto Statement in a signed DSSE envelope, stored as an immutable ConfigMap and in an
external append-only log, hash-chained per Environment.
"""

EVIDENCE_EPILOG = """\
examples:
  PGPASSWORD=... stella evidence verify --log postgresql://reader@db:5432/stella
  stella evidence verify --environment prod --since 7d --log evidence.jsonl
  stella evidence export --out bundle.json --log postgresql://reader@db/stella
  stella evidence verify --bundle bundle.json --trusted-keys keys/    # offline
  stella evidence show prod#12 --bundle bundle.json
  stella evidence keys --out-dir keys/

exit codes: 0 everything holds; 1 verification found problems (each printed, naming the
ConfigMap, log row or chain position); 2 bad usage (a flag, or a file you named that
cannot be read); 3 a source could not be reached (the API server, PostgreSQL).
"""


def register(
    subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: list[argparse.ArgumentParser] | None = None,
) -> None:
    parents = list(common or [])
    ev = subparsers.add_parser(
        "evidence",
        help="verify, export and inspect the signed evidence trail",
        description=EVIDENCE_DESCRIPTION,
        epilog=EVIDENCE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ev.add_subparsers(dest="evidence_command", metavar="COMMAND", required=True)

    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "verify",
        parents=parents,
        help="check every signature, chain link and store agreement",
        description="Check every signature, every chain link, and that the ConfigMaps and "
        "the external log agree entry for entry: a deleted, altered or re-created record "
        "is reported.",
        epilog="examples:\n"
        "  stella evidence verify --log postgresql://reader@db/stella\n"
        "  stella evidence verify -e prod --since 24h -o json\n"
        "  stella evidence verify --bundle bundle.json --trusted-keys keys/\n",
        formatter_class=fmt,
    )
    sources(p)
    p.add_argument("--environment", "-e", metavar="ENV", help="only this environment's chain")
    p.add_argument(
        "--since",
        type=parse_since,
        metavar="T",
        help="only packets recorded at/after T (RFC 3339, or an age: 24h, 7d)",
    )
    p.add_argument(
        "--trusted-keys",
        metavar="PATH",
        help="pin the trusted public keys: a directory of .pem files (as `keys --out-dir` "
        "writes), one .pem file, a bundle, or a JSON {keyid: pem} file",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=parse_jobs,
        default=None,
        metavar="N",
        help="check signatures on N cores (default: every core; 1: in this thread only): in "
        "N threads for N=2, in N processes for more; a few thousand packets or fewer "
        "always run in this thread",
    )
    output(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "export",
        parents=parents,
        help="write an offline bundle: packets, keys, log entries",
        description="Write one JSON file with every packet, published key and log entry, "
        "to verify later without the cluster (verify --bundle).",
        epilog="examples:\n  stella evidence export --out bundle.json --log evidence.jsonl\n"
        "  stella evidence export --format sigstore-bundle --out evidence/ --bundle bundle.json\n",
        formatter_class=fmt,
    )
    sources(p)
    p.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="the bundle file to write (with --format sigstore-bundle: a directory)",
    )
    p.add_argument(
        "--format",
        choices=("stella", "sigstore-bundle"),
        default="stella",
        help="stella (default): one file for verify --bundle; sigstore-bundle: each packet "
        "as a Sigstore bundle (PACKET.sigstore.json) and the public keys (keys/KEYID.pem), "
        "for cosign verify-blob-attestation --bundle --key --offline",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "show",
        parents=parents,
        help="print one packet readably",
        description="Print one evidence packet: what was decided, on which inputs, by whom, "
        "and whether its signature verifies.",
        epilog="examples:\n"
        "  stella evidence show prod#3 --log evidence.jsonl\n"
        "  stella evidence show stella-evidence-env-prod-0000000003 -o json\n",
        formatter_class=fmt,
    )
    sources(p)
    p.add_argument("packet", help="ConfigMap name, packet id (prefix), or ENVIRONMENT#SEQUENCE")
    output(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "keys",
        parents=parents,
        help="list the published public keys",
        description="List the public keys the operator published (key id, SHA-256 of the "
        "key, PEM). Compare the fingerprints with a source you trust, then pin them with "
        "verify --trusted-keys.",
        epilog="examples:\n"
        "  stella evidence keys\n"
        "  stella evidence keys --out-dir keys/ && stella evidence verify --trusted-keys keys/\n",
        formatter_class=fmt,
    )
    sources(p)
    p.add_argument("--out-dir", metavar="DIR", help="also write each key as a .pem file")
    # -o json|yaml prints {keyid: pem}, a file verify --trusted-keys reads back.
    output(p)
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser(
        "install-log",
        help="create the PostgreSQL log: schema, append-only table, triggers, roles",
        description="Create (or bring up to date; idempotent) the external evidence log in "
        "PostgreSQL and its roles. Run once with an administrator's DSN; the operator then "
        "uses the writer role (STELLA_EVIDENCE_LOG=postgresql://WRITER@host/db, password "
        "from PGPASSWORD), auditors the reader role. Passwords are read from files (or '-' "
        "for standard input), never from the command line.",
        epilog="examples:\n"
        "  PGPASSWORD=... stella evidence install-log --dsn postgresql://postgres@db/stella \\\n"
        "      --writer-password-file writer.txt --reader-role stella_evidence_reader \\\n"
        "      --reader-password-file reader.txt\n",
        formatter_class=fmt,
    )
    p.add_argument(
        "--dsn",
        required=True,
        metavar="URL",
        help="administrator DSN, postgresql://admin@host:port/db (password from PGPASSWORD)",
    )
    p.add_argument("--writer-role", default="stella_evidence_writer", help="(default: %(default)s)")
    p.add_argument("--writer-password-file", metavar="FILE", help="set the writer's password")
    p.add_argument("--reader-role", help="also create a SELECT-only LOGIN role for auditors")
    p.add_argument("--reader-password-file", metavar="FILE", help="set the reader's password")
    p.add_argument("--owner-role", default="stella_evidence_owner", help="NOLOGIN table owner")
    p.set_defaults(func=cmd_install_log)


# --- commands ---


def cmd_verify(args: argparse.Namespace, out: TextIO | None = None) -> int:

    out = out if out is not None else sys.stdout  # the one in use now, not at import
    src = load_sources(args)
    check_environment(args, src)
    report, problems = check(src, args.trusted_keys, args.environment, args.since, args.jobs)
    findings = problems + report.findings
    if args.output != "table":
        doc = {
            "ok": not findings,
            "configMaps": report.configmaps,
            "logEntries": report.log_entries,
            "signatures": report.signatures,
            "heads": report.heads,
            "findings": [f.__dict__ for f in findings],
        }
        print(dump(doc, args.output), file=out)
    else:
        for f in findings:
            print(f"FAIL {f}", file=out)
        print(
            report.summary() if not problems else f"evidence FAILED ({len(findings)} findings)",
            file=out,
        )
    return EXIT_OK if not findings else EXIT_FINDINGS


def cmd_export(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from stella.evidence.bundle import write_bundle

    out = out if out is not None else sys.stdout  # the one in use now, not at import
    src = load_sources(args)
    if getattr(args, "format", "stella") == "sigstore-bundle":
        return _export_sigstore(args.out, src, out)
    try:
        write_bundle(
            args.out,
            keys=src.keys,
            configmaps=src.configmaps,
            log=src.log,
            namespace=src.namespace,
            log_problems=[p.item for p in src.problems],
        )
    except Exception as exc:
        raise source_error(exc, f"cannot write {args.out}") from None
    print(
        f"wrote {args.out}: {len(src.configmaps)} packets, {len(src.keys)} keys, "
        f"{len(src.log)} log entries",
        file=out,
    )
    return EXIT_OK


def _export_sigstore(target: str, src: Sources, out: TextIO) -> int:
    """Each packet as a keyed Sigstore bundle, and the keys that verify them."""
    from stella.supplychain.bundle import evidence_bundle

    root = Path(target)
    written = 0
    try:
        (root / "keys").mkdir(parents=True, exist_ok=True)
        for key_id, pem in sorted(src.keys.items()):
            (root / "keys" / key_file_name(key_id)).write_text(pem)
        for packet in sorted(src.configmaps, key=lambda p: p.name):
            envelope = json.loads(packet.envelope_json)
            key_id = str((envelope.get("signatures") or [{}])[0].get("keyid", ""))
            bundle = evidence_bundle(envelope, key_id)
            (root / f"{packet.name}.sigstore.json").write_text(json.dumps(bundle, indent=1))
            written += 1
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise source_error(exc, f"cannot write Sigstore bundles to {target}") from None
    print(
        f"wrote {written} Sigstore bundles and {len(src.keys)} keys to {target}/ "
        "(cosign verify-blob-attestation --bundle B --key keys/KEY.pem --offline "
        "--new-bundle-format --insecure-ignore-tlog; docs/supply-chain.md)",
        file=out,
    )
    return EXIT_OK


def _find_packet(src: Sources, ref: str) -> tuple[str, str | dict[str, Any]] | None:
    from stella.evidence.manifest import configmap_name
    from stella.evidence.packet import CLUSTER_CHAIN

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


def outcome_line(result: str, reason: str, message: str) -> str:
    """`Deployed (RolloutComplete): 3/3 ready` — the reason only where it adds something."""
    text = result
    if reason and reason != result:
        text += f" ({reason})"
    if message:
        text += f": {message}"
    return text


def render(statement: Statement, *, where: str, key_id: str | None, verified: str) -> str:
    from stella.models.common import rfc3339

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
        lines.append(f"  outcome       {outcome_line(o.result, o.reason, o.message)}")
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from stella.evidence.dsse import parse_envelope, verify_envelope
    from stella.evidence.errors import EvidenceError, MalformedPacket
    from stella.evidence.packet import parse_statement

    out = out if out is not None else sys.stdout  # the one in use now, not at import
    src = load_sources(args)
    found = _find_packet(src, args.packet)
    if found is None:
        raise CliError(
            f"no packet {args.packet!r}; name it as ENVIRONMENT#SEQUENCE (e.g. prod#3), "
            "a ConfigMap name or a packet id (stella evidence verify lists the chain heads)",
            EXIT_FINDINGS,
        )
    where, raw = found
    try:
        env = parse_envelope(raw if isinstance(raw, str) else dict(raw))
        statement = parse_statement(env.payload_bytes())
    except MalformedPacket as exc:
        print(f"{where}: {exc.message}", file=out)
        return EXIT_FINDINGS
    try:
        key_id: str | None = verify_envelope(env, key_ring(src.keys, [], "published"))
        verified = "verified"
    except EvidenceError as exc:
        key_id, verified = None, f"NOT VERIFIED: {exc.message}"
    if args.output != "table":
        print(dump(json.loads(env.payload_bytes()), args.output), file=out)
    else:
        print(render(statement, where=where, key_id=key_id, verified=verified), file=out)
    return EXIT_OK if key_id else EXIT_FINDINGS


def cmd_keys(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from stella.evidence.bundle import read_bundle
    from stella.evidence.keys import spki_fingerprint
    from stella.evidence.store_configmap import ConfigMapStore

    out = out if out is not None else sys.stdout  # the one in use now, not at import
    try:
        if getattr(args, "bundle", None):
            keys = read_bundle(args.bundle).keys
        else:
            keys = ConfigMapStore(api_client(args), args.namespace).published_keys()
    except Exception as exc:
        raise source_error(exc, "cannot read the published keys") from None
    if args.out_dir:
        d = Path(args.out_dir)
        d.mkdir(parents=True, exist_ok=True)
        for key_id, pem in keys.items():
            (d / key_file_name(key_id)).write_text(pem)
    if args.output != "table":  # {keyid: pem}: what verify --trusted-keys reads back
        print(dump(dict(sorted(keys.items())), args.output), file=out)
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


def cmd_install_log(args: argparse.Namespace, out: TextIO | None = None) -> int:
    import psycopg

    from stella.evidence import log_postgres
    from stella.evidence.errors import EvidenceError

    out = out if out is not None else sys.stdout  # the one in use now, not at import
    if not args.dsn.startswith(("postgresql://", "postgres://")):
        raise CliError("--dsn must be postgresql://admin@host:port/db", EXIT_USAGE)
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
        raise source_error(exc, "cannot install the log") from None
    except psycopg.OperationalError as exc:  # never the DSN: it may hold a password
        detail = exc.diag.message_primary or "the server did not answer"
        raise CliError(f"cannot reach PostgreSQL: {detail}", EXIT_UNAVAILABLE) from None
    except psycopg.Error as exc:
        detail = exc.diag.message_primary or type(exc).__name__
        raise CliError(
            f"PostgreSQL refused the install ({exc.sqlstate}): {detail}", EXIT_REFUSED
        ) from None
    table = f"{log_postgres.SCHEMA}.{log_postgres.TABLE}"
    roles = f"writer {args.writer_role}" + (
        f", reader {args.reader_role}" if args.reader_role else ""
    )
    print(f"evidence log ready: {table} (append-only), roles: {roles}", file=out)
    return EXIT_OK
