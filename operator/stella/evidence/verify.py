"""Pure verification over packets (ConfigMaps), log entries and public keys.

It checks, for every packet in either store: the envelope parses, its payload is canonical,
the statement is a Stella statement, a signature verifies with a published (or pinned) key,
the packet id matches the event; for ConfigMaps: the name and labels match the content; for
log entries: every column matches the signed content; per chain and per store: sequences
start at 1 without gaps or forks and every packet links to the one before; across stores:
every log entry has its ConfigMap with the same envelope, and every ConfigMap its entry.

Nothing here does I/O: the CLI and the bundle feed it what they read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from stella.evidence.canonical import is_canonical, sha256_digest
from stella.evidence.chain import Link, check_chain
from stella.evidence.dsse import Envelope, verify_envelope
from stella.evidence.errors import MalformedPacket, SignatureInvalid
from stella.evidence.findings import Finding
from stella.evidence.keys import KeyRing, spki_fingerprint
from stella.evidence.manifest import L_ENVIRONMENT, L_SCOPE, configmap_name, labels_for
from stella.evidence.packet import (
    CLUSTER_CHAIN,
    PAYLOAD_TYPE,
    Statement,
    chain_of,
    packet_id,
    parse_statement,
)
from stella.evidence.records import LogEntry, StoredPacket


@dataclass(frozen=True)
class Checked:
    """One packet that parsed, whatever else is wrong with it."""

    item: str
    envelope: Envelope
    statement: Statement
    digest: str
    key_id: str | None

    @property
    def chain(self) -> str:
        return self.statement.predicate.chain

    @property
    def sequence(self) -> int:
        return self.statement.predicate.sequence


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    configmaps: int = 0
    log_entries: int = 0
    signatures: int = 0
    heads: dict[str, int] = field(default_factory=dict)

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


@dataclass(frozen=True)
class _Analysis:
    """What one distinct envelope is worth, whichever store it came from."""

    statement: Statement | None
    digest: str
    key_id: str | None
    problems: tuple[tuple[str, str], ...]


class _Checker:
    def __init__(self, keys: KeyRing, trusted: KeyRing | None) -> None:
        self.keys = keys
        self.trusted = trusted
        self.findings: list[Finding] = []
        # Both stores hold the same envelopes: analyse each distinct one once.
        self._cache: dict[tuple[str, str, tuple[tuple[str, str], ...]], _Analysis] = {}
        self.signatures = 0
        self._trusted_fingerprints: set[str] | None = None

    def _untrusted(self, key_id: str) -> str | None:
        """Why the published key that verified is not a pinned one (None when it is).

        Pinning is by the key itself (its SPKI fingerprint), never by its id alone: a key
        published under a pinned id but with other key material is exactly what pinning
        must catch, and a pinned file's name (`keys --out-dir` writes key ids as safe file
        names) does not have to match the id.
        """
        assert self.trusted is not None
        if self._trusted_fingerprints is None:
            self._trusted_fingerprints = {spki_fingerprint(p) for p in self.trusted.values()}
        if spki_fingerprint(self.keys[key_id]) in self._trusted_fingerprints:
            return None
        if key_id in self.trusted:
            return (
                f"signed by key {key_id!r}, but the key published under that id is not the "
                "pinned key of that id: the published key was replaced?"
            )
        return f"signed by key {key_id!r}, which is not one of the pinned keys"

    def add(self, code: str, item: str, message: str) -> None:
        self.findings.append(Finding(code, item, message))

    def envelope(self, item: str, raw: str | Mapping[str, object]) -> Checked | None:
        try:
            env = (
                Envelope.model_validate_json(raw)
                if isinstance(raw, str)
                else Envelope.model_validate(dict(raw))
            )
        except (ValueError, ValidationError) as exc:
            self.add("malformed", item, f"not a DSSE envelope: {exc}")
            return None
        key = (env.payload, env.payload_type, tuple((s.keyid, s.sig) for s in env.signatures))
        analysis = self._cache.get(key)
        if analysis is None:
            analysis = self._cache[key] = self._analyse(env)
        for code, message in analysis.problems:
            self.add(code, item, message)
        if analysis.statement is None:
            return None
        return Checked(item, env, analysis.statement, analysis.digest, analysis.key_id)

    def _analyse(self, env: Envelope) -> _Analysis:
        problems: list[tuple[str, str]] = []
        try:
            payload = env.payload_bytes()
        except MalformedPacket as exc:
            return _Analysis(None, "", None, (("malformed", exc.message),))
        digest = sha256_digest(payload)
        if env.payload_type != PAYLOAD_TYPE:
            msg = f"payloadType is {env.payload_type!r}, not {PAYLOAD_TYPE}"
            return _Analysis(None, digest, None, (("malformed", msg),))
        if not is_canonical(payload):
            problems.append(("non-canonical", "payload is not canonical JSON"))
        try:
            statement = parse_statement(payload)
        except MalformedPacket as exc:
            return _Analysis(None, digest, None, (*problems, ("malformed", exc.message)))
        key_id: str | None = None
        try:
            key_id = verify_envelope(env, self.keys)
            self.signatures += 1
        except (SignatureInvalid, MalformedPacket) as exc:
            problems.append(("signature-invalid", exc.message))
        if key_id is not None and self.trusted is not None:
            untrusted = self._untrusted(key_id)
            if untrusted:
                problems.append(("untrusted-key", untrusted))
        p = statement.predicate
        if p.chain != chain_of(p.environment):
            problems.append(("malformed", f"chain {p.chain!r} does not match the environment"))
        if p.packet_id != packet_id(p.chain, p.kind, p.event_id):
            problems.append(("packet-id-mismatch", "packet id does not match its event"))
        return _Analysis(statement, digest, key_id, tuple(problems))


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


def verify(
    configmaps: Sequence[StoredPacket],
    log_entries: Sequence[LogEntry],
    keys: KeyRing | Mapping[str, str],
    *,
    environment: str | None = None,
    since: datetime | None = None,
    trusted_keys: KeyRing | Mapping[str, str] | None = None,
) -> Report:
    """Check everything; ``report.ok`` only when every check holds."""
    ring = keys if isinstance(keys, KeyRing) else KeyRing(keys)
    trusted = (
        None
        if trusted_keys is None
        else trusted_keys
        if isinstance(trusted_keys, KeyRing)
        else KeyRing(trusted_keys)
    )
    ck = _Checker(ring, trusted)
    report = Report()
    cm_names, cm_checked = _check_configmaps(ck, configmaps, environment, since)
    log_by_name, log_checked = _check_log(ck, log_entries, environment, since)
    for where, checked_set in (("ConfigMaps", cm_checked), ("log", log_checked)):
        ck.findings.extend(
            check_chain(_links(checked_set.values()), where=where, complete=since is None)
        )
        seen: dict[str, str] = {}
        for checked in checked_set.values():
            pid = checked.statement.predicate.packet_id
            if pid in seen:
                ck.add(
                    "duplicate-packet",
                    checked.item,
                    f"{where}: packet id {pid[:16]}… also stored as {seen[pid]}",
                )
            seen[pid] = checked.item
    _cross_check(ck, cm_names, log_by_name)

    report.configmaps = len(cm_names)
    report.log_entries = sum(
        1 for e in log_entries if _in_scope(e.chain, e.recorded_at, environment, since)
    )
    for checked in list(cm_checked.values()) + list(log_checked.values()):
        report.heads[checked.chain] = max(report.heads.get(checked.chain, 0), checked.sequence)
    report.signatures = ck.signatures
    report.findings = sorted(set(ck.findings), key=lambda f: (f.item, f.code, f.message))
    return report


def _check_configmaps(
    ck: _Checker,
    configmaps: Sequence[StoredPacket],
    environment: str | None,
    since: datetime | None,
) -> tuple[dict[str, StoredPacket], dict[str, Checked]]:
    names: dict[str, StoredPacket] = {}
    parsed: dict[str, Checked] = {}
    for cm in configmaps:
        # The scope is known only after parsing: what an out-of-scope ConfigMap's analysis
        # found (another environment's problem) is taken back, not reported.
        mark, signatures = len(ck.findings), ck.signatures
        checked = ck.envelope(f"ConfigMap {cm.name}", cm.envelope_json)
        if checked is not None:
            p = checked.statement.predicate
            if not _in_scope(p.chain, p.recorded_at, environment, since):
                del ck.findings[mark:]
                ck.signatures = signatures
                continue
        elif environment is not None and _configmap_chain(cm) != environment:
            del ck.findings[mark:]
            continue
        names[cm.name] = cm
        if checked is None:
            continue
        parsed[cm.name] = checked
        want = configmap_name(checked.chain, checked.sequence)
        if cm.name != want:
            ck.add(
                "configmap-name-mismatch",
                f"ConfigMap {cm.name}",
                f"holds packet {checked.chain}#{checked.sequence}, which belongs in {want}",
            )
        expected = labels_for(checked.statement)
        wrong = sorted(k for k, v in expected.items() if cm.labels.get(k) != v)
        if wrong:
            ck.add(
                "label-mismatch",
                f"ConfigMap {cm.name}",
                f"labels disagree with the signed packet: {', '.join(wrong)}",
            )
    return names, parsed


def _check_log(
    ck: _Checker,
    log_entries: Sequence[LogEntry],
    environment: str | None,
    since: datetime | None,
) -> tuple[dict[str, LogEntry], dict[str, Checked]]:
    by_name: dict[str, LogEntry] = {}
    parsed: dict[str, Checked] = {}
    for entry in log_entries:
        if not _in_scope(entry.chain, entry.recorded_at, environment, since):
            continue
        row = f" (row {entry.row})" if entry.row is not None else ""
        item = f"log {entry.chain}#{entry.sequence}{row}"
        name = configmap_name(entry.chain, entry.sequence)
        if name in by_name:
            ck.add(
                "duplicate-log-entry",
                item,
                f"the log holds {entry.chain}#{entry.sequence} more than once",
            )
        by_name[name] = entry
        checked = ck.envelope(item, entry.envelope)
        if checked is None:
            continue
        p = checked.statement.predicate
        columns = {
            "chain": (entry.chain, p.chain),
            "sequence": (entry.sequence, p.sequence),
            "packet_id": (entry.packet_id, p.packet_id),
            "digest": (entry.digest, checked.digest),
            "previous_digest": (entry.previous_digest, p.previous_digest),
            "kind": (entry.kind, p.kind),
        }
        bad = sorted(col for col, (have, want) in columns.items() if have != want)
        if bad:
            ck.add(
                "log-column-mismatch",
                item,
                f"columns disagree with the signed packet: {', '.join(bad)}",
            )
        parsed[f"{name}@{entry.row}"] = checked
    return by_name, parsed


def _cross_check(
    ck: _Checker, cm_names: Mapping[str, StoredPacket], log_by_name: Mapping[str, LogEntry]
) -> None:
    for name, entry in sorted(log_by_name.items()):
        cm = cm_names.get(name)
        if cm is None:
            ck.add(
                "configmap-missing",
                f"ConfigMap {name}",
                f"log entry {entry.chain}#{entry.sequence} (packet {entry.packet_id[:16]}…) "
                "has no ConfigMap: deleted?",
            )
            continue
        if _envelope_key(cm.envelope_json) != _envelope_key(entry.envelope):
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
        Link(c.chain, c.sequence, c.digest, c.statement.predicate.previous_digest, c.item)
        for c in checked
    ]


def _envelope_key(raw: str | Mapping[str, object]) -> object:
    """What makes two stored envelopes the same: payload, type and signatures."""
    try:
        obj: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else dict(raw)
        sigs: list[dict[str, Any]] = list(obj.get("signatures") or [])
        return (
            obj.get("payload"),
            obj.get("payloadType"),
            tuple(sorted((str(s.get("keyid")), str(s.get("sig"))) for s in sigs)),
            tuple(sorted(obj)),
        )
    except (ValueError, TypeError, AttributeError):
        return ("unparseable", raw if isinstance(raw, str) else repr(raw))
