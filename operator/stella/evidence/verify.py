"""Pure verification over packets (ConfigMaps), log entries and public keys.

It checks, for every packet in either store: the envelope parses, its payload is canonical,
the statement is a Stella statement, a signature verifies with a published (or pinned) key,
the packet id matches the event; for ConfigMaps: the name and labels match the content; for
log entries: every column matches the signed content; per chain and per store: sequences
start at 1 without gaps or forks and every packet links to the one before; across stores:
every log entry has its ConfigMap with the same envelope, and every ConfigMap its entry.

What depends on one envelope alone is checked once per distinct envelope by
verify_envelope, in threads or worker processes for large inputs (verify_parallel); what
depends on order and on other packets (names, labels, columns, chains, the stores
agreeing) is checked here, in one pass over the stores in their order, so the findings do
not depend on how many threads or processes took part.

Nothing here does I/O: the CLI and the bundle feed it what they read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import NamedTuple

from stella.evidence.chain import Link, check_chain
from stella.evidence.findings import Finding
from stella.evidence.keys import KeyRing
from stella.evidence.manifest import L_ENVIRONMENT, L_SCOPE, configmap_name
from stella.evidence.packet import CLUSTER_CHAIN
from stella.evidence.records import LogEntry, StoredPacket
from stella.evidence.verify_envelope import Analysis, Parsed, envelope_key, holds
from stella.evidence.verify_facts import Facts
from stella.evidence.verify_gc import paused_gc
from stella.evidence.verify_parallel import Analyses


class Checked(NamedTuple):
    """One packet that parsed, whatever else is wrong with it."""

    item: str
    digest: str
    facts: Facts


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    configmaps: int = 0
    log_entries: int = 0
    signatures: int = 0
    heads: dict[str, int] = field(default_factory=dict)
    processes: int = 1  # how many processes analysed the envelopes
    threads: int = 1  # in how many threads each

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        chains = ", ".join(f"{c}#{s}" for c, s in sorted(self.heads.items())) or "none"
        state = "OK" if self.ok else f"FAILED ({len(self.findings)} findings)"
        return (
            f"evidence {state}: {self.configmaps} ConfigMaps, {self.log_entries} log entries, "
            f"{self.signatures} signatures verified; chain heads: {chains}"
        )


# One stored envelope: how it parsed, and the index of its analysis (-1: no envelope).
Stored = tuple[Parsed, int]


def _stored(analyses: Analyses, raw: str | Mapping[str, object]) -> Stored:
    parsed = envelope_key(raw)
    return parsed, -1 if parsed.key is None else analyses.add(parsed.key)


def _stored_configmap(
    analyses: Analyses, cm: StoredPacket, twins: Mapping[str, tuple[LogEntry, Stored]]
) -> Stored:
    """A ConfigMap's envelope: its log entry's, when it holds the very same one."""
    twin = twins.get(cm.name)
    if twin is not None and holds(cm.envelope_json, twin[0].envelope, twin[1][0]):
        return twin[1]
    return _stored(analyses, cm.envelope_json)


class _Checker:
    def __init__(self, analyses: Analyses) -> None:
        self.analyses = analyses
        self.findings: list[Finding] = []
        self.verified: set[int] = set()  # each distinct envelope counts once

    def add(self, code: str, item: str, message: str) -> None:
        self.findings.append(Finding(code, item, message))

    def analysis(self, stored: Stored) -> Analysis | None:
        return None if stored[1] < 0 else self.analyses.get(stored[1])

    def report(self, item: str, stored: Stored, analysis: Analysis | None) -> Checked | None:
        """Add what the envelope's analysis found, for this item; the packet if it parsed."""
        if analysis is None:
            self.add("malformed", item, stored[0].error)
            return None
        for code, message in analysis.problems:
            self.add(code, item, message)
        if analysis.key_id is not None:
            self.verified.add(stored[1])
        if analysis.facts is None:
            return None
        return Checked(item, analysis.digest, analysis.facts)


def _in_scope(
    chain: str | None, recorded: datetime | None, environment: str | None, since: datetime | None
) -> bool:
    if environment is not None and chain != environment:
        return False
    return not (since is not None and recorded is not None and recorded < since)


def _configmap_chain(cm: StoredPacket) -> str | None:
    if cm.labels.get(L_SCOPE) == "cluster":
        return CLUSTER_CHAIN
    return cm.labels.get(L_ENVIRONMENT)


def _ring(keys: KeyRing | Mapping[str, str] | None) -> KeyRing | None:
    return keys if keys is None or isinstance(keys, KeyRing) else KeyRing(keys)


def verify(
    configmaps: Sequence[StoredPacket],
    log_entries: Sequence[LogEntry],
    keys: KeyRing | Mapping[str, str],
    *,
    environment: str | None = None,
    since: datetime | None = None,
    trusted_keys: KeyRing | Mapping[str, str] | None = None,
    jobs: int = 1,
) -> Report:
    """Check everything; ``report.ok`` only when every check holds.

    ``jobs`` > 1 analyses the envelopes (parsing, signatures) on that many cores, in
    threads or processes (verify_parallel.layout_for), when there are enough of them to
    pay for it; the findings are the same either way.
    """
    with paused_gc():
        return _verify(configmaps, log_entries, keys, environment, since, trusted_keys, jobs)


def _verify(
    configmaps: Sequence[StoredPacket],
    log_entries: Sequence[LogEntry],
    keys: KeyRing | Mapping[str, str],
    environment: str | None,
    since: datetime | None,
    trusted_keys: KeyRing | Mapping[str, str] | None,
    jobs: int,
) -> Report:
    ring = _ring(keys)
    assert ring is not None
    log_in_scope = [e for e in log_entries if _in_scope(e.chain, e.recorded_at, environment, since)]
    expected = max(len(configmaps), len(log_in_scope))  # about how many distinct envelopes
    with Analyses(ring, _ring(trusted_keys), jobs, expected) as analyses:
        # Parsing hands each new envelope to the workers at once, and the checks read each
        # analysis as soon as its batch is back: this thread works while they do.
        log_stored = [_stored(analyses, e.envelope) for e in log_in_scope]
        log_names = [configmap_name(e.chain, e.sequence) for e in log_in_scope]
        twins = dict(zip(log_names, zip(log_in_scope, log_stored, strict=True), strict=True))
        cm_stored = [_stored_configmap(analyses, cm, twins) for cm in configmaps]
        ck = _Checker(analyses)
        cm_names, cm_checked, cm_same = _check_configmaps(
            ck, configmaps, cm_stored, environment, since
        )
        log_by_name, log_checked, log_same = _check_log(ck, log_in_scope, log_names, log_stored)
    for where, checked_set in (("ConfigMaps", cm_checked), ("log", log_checked)):
        ck.findings.extend(
            check_chain(_links(checked_set.values()), where=where, complete=since is None)
        )
        seen: dict[str, str] = {}
        for checked in checked_set.values():
            pid = checked.facts.packet_id
            if pid in seen:
                ck.add(
                    "duplicate-packet",
                    checked.item,
                    f"{where}: packet id {pid[:16]}… also stored as {seen[pid]}",
                )
            seen[pid] = checked.item
    _cross_check(ck, cm_names, log_by_name, cm_same, log_same)

    report = Report()
    report.configmaps = len(cm_names)
    report.log_entries = len(log_in_scope)
    heads = report.heads
    for checked_set in (cm_checked, log_checked):
        for checked in checked_set.values():
            chain, seq = checked.facts.chain, checked.facts.sequence
            if chain not in heads or heads[chain] < seq:
                heads[chain] = max(seq, 0)
    report.signatures = len(ck.verified)
    report.processes, report.threads = analyses.layout
    report.findings = sorted(set(ck.findings), key=lambda f: (f.item, f.code, f.message))
    return report


def _check_configmaps(
    ck: _Checker,
    configmaps: Sequence[StoredPacket],
    stored: Sequence[Stored],
    environment: str | None,
    since: datetime | None,
) -> tuple[dict[str, StoredPacket], dict[str, Checked], dict[str, object]]:
    names: dict[str, StoredPacket] = {}
    checked_by_name: dict[str, Checked] = {}
    same: dict[str, object] = {}
    for cm, st in zip(configmaps, stored, strict=True):
        # The scope is known only after parsing: an out-of-scope ConfigMap (another
        # environment's) is skipped before any of its findings is reported.
        analysis = ck.analysis(st)
        facts = analysis.facts if analysis is not None else None
        if environment is None and since is None:
            pass  # everything is in scope
        elif facts is not None:
            if not _in_scope(facts.chain, facts.recorded_at, environment, since):
                continue
        elif environment is not None and _configmap_chain(cm) != environment:
            continue
        item = f"ConfigMap {cm.name}"
        checked = ck.report(item, st, analysis)
        names[cm.name] = cm
        same[cm.name] = st[0].same
        if checked is None:
            continue
        checked_by_name[cm.name] = checked
        f = checked.facts
        want = configmap_name(f.chain, f.sequence)
        if cm.name != want:
            ck.add(
                "configmap-name-mismatch",
                item,
                f"holds packet {f.chain}#{f.sequence}, which belongs in {want}",
            )
        expected = f.labels
        if expected.items() <= cm.labels.items():  # all there: the common case, in C
            continue
        wrong = sorted(k for k, v in expected.items() if cm.labels.get(k) != v)
        if wrong:
            ck.add(
                "label-mismatch",
                item,
                f"labels disagree with the signed packet: {', '.join(wrong)}",
            )
    return names, checked_by_name, same


def _check_log(
    ck: _Checker,
    log_entries: Sequence[LogEntry],
    names: Sequence[str],
    stored: Sequence[Stored],
) -> tuple[dict[str, LogEntry], dict[str, Checked], dict[str, object]]:
    by_name: dict[str, LogEntry] = {}
    checked_by_row: dict[str, Checked] = {}
    same: dict[str, object] = {}
    for entry, name, st in zip(log_entries, names, stored, strict=True):
        row = f" (row {entry.row})" if entry.row is not None else ""
        item = f"log {entry.chain}#{entry.sequence}{row}"
        if name in by_name:
            ck.add(
                "duplicate-log-entry",
                item,
                f"the log holds {entry.chain}#{entry.sequence} more than once",
            )
        by_name[name] = entry
        same[name] = st[0].same
        checked = ck.report(item, st, ck.analysis(st))
        if checked is None:
            continue
        checked_by_row[f"{name}@{entry.row}"] = checked
        f = checked.facts
        signed = (f.chain, f.sequence, f.packet_id, checked.digest, f.previous_digest, f.kind)
        if _columns(entry) == signed:
            continue  # every column matches: the common case, without naming them
        bad = sorted(
            col
            for col, have, want in zip(_COLUMNS, _columns(entry), signed, strict=True)
            if have != want
        )
        ck.add(
            "log-column-mismatch",
            item,
            f"columns disagree with the signed packet: {', '.join(bad)}",
        )
    return by_name, checked_by_row, same


def _cross_check(
    ck: _Checker,
    cm_names: Mapping[str, StoredPacket],
    log_by_name: Mapping[str, LogEntry],
    cm_same: Mapping[str, object],
    log_same: Mapping[str, object],
) -> None:
    for name, entry in sorted(log_by_name.items()):
        if name not in cm_names:
            ck.add(
                "configmap-missing",
                f"ConfigMap {name}",
                f"log entry {entry.chain}#{entry.sequence} (packet {entry.packet_id[:16]}…) "
                "has no ConfigMap: deleted?",
            )
            continue
        if cm_same[name] != log_same[name]:
            ck.add(
                "stores-disagree",
                f"ConfigMap {name}",
                f"ConfigMap and log entry {entry.chain}#{entry.sequence} hold different "
                "envelopes: altered or re-created?",
            )
    for name in sorted(set(cm_names) - set(log_by_name)):
        ck.add(
            "log-entry-missing",
            f"ConfigMap {name}",
            "no log entry for this ConfigMap: log row deleted, or ConfigMap forged?",
        )


def _links(checked: Iterable[Checked]) -> list[Link]:
    return [
        Link(c.facts.chain, c.facts.sequence, c.digest, c.facts.previous_digest, c.item)
        for c in checked
    ]


_COLUMNS = ("chain", "sequence", "packet_id", "digest", "previous_digest", "kind")
_columns = attrgetter(*_COLUMNS)  # a log entry's columns, in the order of _COLUMNS
