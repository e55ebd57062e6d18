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
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from stella.cli.output import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    FORMATS,
    CliError,
    dump,
)

if TYPE_CHECKING:
    from stella.evidence.findings import Finding
    from stella.evidence.keys import KeyRing
    from stella.evidence.packet import Statement
    from stella.evidence.records import LogEntry, StoredPacket
    from stella.evidence.verify import Report

DEFAULT_NAMESPACE = "stella-system"
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

NO_LOG = (
    "no external log given, and the operator in {namespace} has not published where it "
    "writes one: pass --log with the log the operator writes (its STELLA_EVIDENCE_LOG), e.g. "
    "--log postgresql://READER@HOST:5432/DB with PGPASSWORD set, or --log "
    "/path/evidence.jsonl; or set STELLA_EVIDENCE_LOG"
)


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
        help="check signatures in N processes (default: one per core; 1: in this process "
        "only; a few thousand packets or fewer always run in this process)",
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


# --- helpers ------------------------------------------------------------------------


def sources(p: argparse.ArgumentParser, bundle: bool = True) -> None:
    """Where the evidence is read from: --namespace, --log and (optionally) --bundle."""
    p.add_argument(
        "--namespace",
        "-n",
        # Read when the command runs, not when this module was imported.
        default=os.environ.get("STELLA_NAMESPACE") or DEFAULT_NAMESPACE,
        help="the operator's namespace, where the evidence ConfigMaps are "
        "(default: $STELLA_NAMESPACE, else %(default)s)",
    )
    p.add_argument(
        "--log",
        default=os.environ.get("STELLA_EVIDENCE_LOG", ""),
        metavar="URL",
        help="external log: postgresql://user@host/db or a .jsonl path "
        "(default: $STELLA_EVIDENCE_LOG, else the log the operator publishes in "
        "--namespace)",
    )
    if bundle:
        p.add_argument(
            "--bundle",
            metavar="FILE",
            help="read an exported bundle instead of the cluster and the log",
        )


def output(p: argparse.ArgumentParser) -> None:
    """-o table|json|yaml (and the --json of earlier versions)."""
    p.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default="table",
        help="text for people (table), or json/yaml for scripts (default: %(default)s)",
    )
    p.add_argument(  # the flag of earlier versions
        "--json", action="store_const", const="json", dest="output", help=argparse.SUPPRESS
    )


def parse_jobs(text: str) -> int:
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(
            f"--jobs wants a whole number of processes, 1 or more (got {text!r})"
        )
    return jobs


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
    from stella.cli.kube import connect

    return connect(args).api_client


def source_error(exc: Exception, what: str) -> CliError:
    """A source that cannot be read: exit 2 for a file or flag you gave, 3 for a service
    that did not answer."""
    from stella.evidence.errors import EvidenceError, MalformedPacket

    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, MalformedPacket):
        return CliError(f"{what}: {exc.message}", EXIT_USAGE)
    if isinstance(exc, EvidenceError):
        return CliError(f"{what}: {exc.message}", EXIT_UNAVAILABLE)
    if isinstance(exc, OSError):
        detail = exc.strerror or type(exc).__name__
        name = f" {exc.filename}" if exc.filename else ""
        return CliError(f"{what}:{name}: {detail.lower()}", EXIT_USAGE)
    if isinstance(exc, ValueError):
        return CliError(f"{what}: {exc}", EXIT_USAGE)
    from stella.cli.output import translate

    known = translate(exc)
    if known is not None:
        return CliError(*known)
    raise exc


def _check_log_path(log: str) -> None:
    if log.startswith(("postgresql://", "postgres://")):
        return
    path = Path(log.removeprefix("file://"))
    if not path.is_file():
        # Never open it: opening a JSON-lines log creates it, and an empty log beside the
        # ConfigMaps reads as every log row deleted.
        what = "is a directory, not a log file" if path.is_dir() else "no such file"
        raise CliError(
            f"cannot read the log {log}: {what}; pass the log the operator writes "
            "(its STELLA_EVIDENCE_LOG) with --log",
            EXIT_USAGE,
        )


def published_log(locators: tuple[str, ...], namespace: str) -> str:
    """The log the operator says it writes (its published locator), when --log is not
    given; said on stderr so that you know what was read."""
    if not locators:
        raise CliError(NO_LOG.format(namespace=namespace), EXIT_USAGE)
    if len(locators) > 1:
        raise CliError(
            f"the operator in {namespace} has written to {len(locators)} logs over time "
            f"({', '.join(locators)}): pass the one to check with --log",
            EXIT_USAGE,
        )
    (locator,) = locators
    if not locator.startswith(("postgresql://", "postgres://")) and not Path(locator).is_file():
        raise CliError(
            f"the operator in {namespace} writes its log to {locator}, which is not a file "
            "here (it is on the operator's machine or volume): copy it, or pass --log",
            EXIT_USAGE,
        )
    print(f"log: {locator} (published by the operator in {namespace})", file=sys.stderr)
    return locator


def load_sources(args: argparse.Namespace) -> Sources:
    """Read keys, ConfigMaps and log entries from a bundle or from the cluster + log."""
    from stella.evidence.bundle import read_bundle
    from stella.evidence.factory import open_log
    from stella.evidence.findings import Finding
    from stella.evidence.log_jsonl import JsonlLog
    from stella.evidence.store_configmap import ConfigMapStore

    if getattr(args, "bundle", None):
        try:
            b = read_bundle(args.bundle)
        except Exception as exc:
            raise source_error(exc, f"cannot read the bundle {args.bundle}") from None
        problems = [Finding("log-malformed", p, "log line does not parse") for p in b.log_problems]
        return Sources(b.keys, b.configmaps, b.log, problems, b.namespace)
    if args.log:
        _check_log_path(args.log)  # before any connection: a wrong path is your typo
    try:
        store = ConfigMapStore(_api_client(args), args.namespace)
        keys, configmaps = store.published_keys(), store.list()
        published = () if args.log else store.log_locators()
    except Exception as exc:
        raise source_error(
            exc, f"cannot read the evidence ConfigMaps in {args.namespace}"
        ) from None
    log_url = args.log or published_log(published, args.namespace)
    try:
        log = open_log(log_url)
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
    except Exception as exc:
        raise source_error(exc, "cannot read the log") from None
    return Sources(keys, configmaps, entries, problems, args.namespace)


def load_trusted(path: str) -> dict[str, str]:
    """Pinned keys: a directory of .pem files, one .pem file, a bundle, or {keyid: pem}.
    Keys are matched to packets by key id, or else by the key itself (its fingerprint),
    so a file's name does not matter."""
    from stella.evidence.bundle import Bundle
    from stella.evidence.errors import MalformedPacket

    p = Path(path)
    if p.is_dir():
        return {f.stem: f.read_text() for f in sorted(p.glob("*.pem"))}
    text = p.read_text()
    if text.lstrip().startswith("-----BEGIN"):
        return {p.stem: text}
    try:
        data = json.loads(text)
    except ValueError:
        raise MalformedPacket(
            f"{path}: neither a PEM public key, a bundle, nor a JSON object of keyid -> PEM"
        ) from None
    if isinstance(data, dict) and str(data.get("format", "")).startswith(
        "stella.io/evidence-bundle"
    ):
        return Bundle.from_dict(data).keys
    if not isinstance(data, dict):
        raise MalformedPacket(f"{path}: expected a JSON object of keyid -> PEM")
    return {str(k): str(v) for k, v in data.items()}


def pin(trusted: Mapping[str, str], published: Mapping[str, str]) -> dict[str, str]:
    """The pinned keys under the ids packets use: each published key whose key (SPKI
    fingerprint) is one of the trusted ones gets the trusted PEM under its id."""
    from stella.evidence.keys import spki_fingerprint

    def fingerprint(pem: str) -> str | None:
        try:
            return spki_fingerprint(pem)
        except Exception:
            return None

    by_fp = {fp: pem for pem in trusted.values() if (fp := fingerprint(pem)) is not None}
    pinned = dict(trusted)
    for key_id, pem in published.items():
        fp = fingerprint(pem)
        if key_id not in pinned and fp is not None and fp in by_fp:
            pinned[key_id] = by_fp[fp]
    return pinned


def key_file_name(key_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", key_id) + ".pem"


def _ring(keys: Mapping[str, str], problems: list[Finding], what: str) -> KeyRing:
    from stella.evidence.errors import MalformedPacket
    from stella.evidence.findings import Finding
    from stella.evidence.keys import KeyRing

    ring = KeyRing()
    for key_id, pem in keys.items():
        try:
            ring.add(key_id, pem)
        except MalformedPacket as exc:
            problems.append(Finding("key-invalid", f"{what} key {key_id}", exc.message))
    return ring


_CM_CHAIN = re.compile(r"stella-evidence-env-(.+)-\d{10}")


def chains_of(src: Sources) -> set[str]:
    chains = {e.chain for e in src.log}
    for cm in src.configmaps:
        m = _CM_CHAIN.fullmatch(cm.name)
        if m:
            chains.add(m.group(1))
    return chains


def check_environment(args: argparse.Namespace, src: Sources) -> None:
    """``--environment`` must name a chain, or at least an existing Environment (whose
    chain is still empty): a typo must not verify nothing and say OK."""
    env = args.environment
    if not env:
        return
    chains = chains_of(src)
    if env in chains:
        return
    if not getattr(args, "bundle", None):
        from stella.cli.kube import Kube

        api = _api_client(args)
        if Kube(api, "").find("environments", env) is not None:
            return
    known = ", ".join(sorted(c for c in chains if not c.startswith("_"))) or "none"
    raise CliError(
        f"no evidence for environment {env!r}"
        + ("" if args.bundle else " and no such Environment")
        + f"; environments with evidence: {known}",
        EXIT_USAGE,
    )


# --- commands -------------------------------------------------------------------------


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


def check(
    src: Sources,
    trusted_keys: str | None = None,
    environment: str | None = None,
    since: datetime | None = None,
    jobs: int | None = None,
) -> tuple[Report, list[Finding]]:
    """Verify what was read (signatures, chains, stores agreeing): the report, and the
    problems found before verifying (unreadable keys, malformed log lines)."""
    from stella.evidence.verify import verify
    from stella.evidence.verify_parallel import WorkerLost, default_jobs

    try:
        trusted = load_trusted(trusted_keys) if trusted_keys else None
    except Exception as exc:
        raise source_error(exc, f"cannot read --trusted-keys {trusted_keys}") from None
    problems = list(src.problems)
    ring = _ring(src.keys, problems, "published")
    pinned = _ring(pin(trusted, src.keys), problems, "pinned") if trusted is not None else None
    try:
        report = verify(
            src.configmaps,
            src.log,
            ring,
            environment=environment,
            since=since,
            trusted_keys=pinned,
            jobs=jobs if jobs is not None else default_jobs(),
        )
    except WorkerLost as exc:
        raise CliError(str(exc), EXIT_UNAVAILABLE) from None
    return report, problems


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
        key_id: str | None = verify_envelope(env, _ring(src.keys, [], "published"))
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
            keys = ConfigMapStore(_api_client(args), args.namespace).published_keys()
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
