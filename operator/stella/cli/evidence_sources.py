"""Where the evidence commands read from, shared by `stella evidence` and `stella dora`:
the --namespace/--log/--bundle flags, reading the ConfigMaps, published keys and the
external log (or a bundle), pinning trusted keys, and verifying what was read. Errors
say which source failed and exit 2 (your flag or file) or 3 (a service did not answer).
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
from typing import TYPE_CHECKING, Any

from stella.cli.output import EXIT_UNAVAILABLE, EXIT_USAGE, FORMATS, CliError

if TYPE_CHECKING:
    from stella.evidence.findings import Finding
    from stella.evidence.keys import KeyRing
    from stella.evidence.records import LogEntry, StoredPacket
    from stella.evidence.verify import Report

DEFAULT_NAMESPACE = "stella-system"

NO_LOG = (
    "no external log given, and the operator in {namespace} has not published where it "
    "writes one: pass --log with the log the operator writes (its STELLA_EVIDENCE_LOG), e.g. "
    "--log postgresql://READER@HOST:5432/DB with PGPASSWORD set, or --log "
    "/path/evidence.jsonl; or set STELLA_EVIDENCE_LOG"
)


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
            f"--jobs wants a whole number of cores, 1 or more (got {text!r})"
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


def api_client(args: argparse.Namespace) -> Any:
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
        store = ConfigMapStore(api_client(args), args.namespace)
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


def key_ring(keys: Mapping[str, str], problems: list[Finding], what: str) -> KeyRing:
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

        api = api_client(args)
        if Kube(api, "").find("environments", env) is not None:
            return
    known = ", ".join(sorted(c for c in chains if not c.startswith("_"))) or "none"
    raise CliError(
        f"no evidence for environment {env!r}"
        + ("" if args.bundle else " and no such Environment")
        + f"; environments with evidence: {known}",
        EXIT_USAGE,
    )


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
    ring = key_ring(src.keys, problems, "published")
    pinned = key_ring(pin(trusted, src.keys), problems, "pinned") if trusted is not None else None
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
