"""The evidence page's data: the person's own read of the evidence ConfigMaps, verified.

The console reads the evidence ConfigMaps and the published keys **with the person's
token** (an auditor's Role in the operator's namespace allows it; everyone else is told
they may not). It checks every signature and every chain link of what it read
(stella.evidence.verify). The external append-only log is not the console's to read (its
credentials are the operator's and the auditor's), so the comparison of the two stores is
left to `stella evidence verify` and the page says so. An export is one chain (or all)
as a JSON document, refused beyond a size limit (T9). Pure: the reading is
stella.web.kube.read_evidence, with the person's token.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from stella.evidence.dsse import parse_envelope
from stella.evidence.findings import Finding
from stella.evidence.manifest import A_CHAIN, A_DIGEST, A_RECORDED, L_KIND, L_RELEASE, L_RELEASE_NS
from stella.evidence.packet import StellaPredicate, parse_statement
from stella.evidence.records import StoredPacket
from stella.evidence.verify import verify

# What only the comparison with the external log can say: not checked here.
LOG_ONLY = frozenset({"log-entry-missing", "configmap-missing", "stores-disagree"})
EXPORT_FORMAT = "stella-console-evidence/v1"


@dataclass(frozen=True)
class Row:
    name: str
    sequence: int
    kind: str
    release: str
    recorded: str
    digest: str


@dataclass
class Checked:
    chains: dict[str, list[Row]] = field(default_factory=dict)
    signatures: int = 0
    findings: list[Finding] = field(default_factory=list)
    packets: Sequence[StoredPacket] = ()

    @property
    def ok(self) -> bool:
        return not self.findings


class TooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes is more than the {limit} bytes one export may hold")
        self.size, self.limit = size, limit


def chain_of(packet: StoredPacket) -> str:
    return str(packet.annotations.get(A_CHAIN) or "?")


# Verification results by the digest of everything verified (keys, and each packet's
# name, labels, annotations and envelope): an auditor's every page view re-reads the
# ConfigMaps with their own token, but the same bytes are verified once. Any changed byte
# is another digest, so a tampered packet is always verified afresh.
_VERIFIED: OrderedDict[str, tuple[int, list[Finding]]] = OrderedDict()
_VERIFIED_MAX = 4
_VERIFIED_LOCK = threading.Lock()


def content_digest(keys: Mapping[str, str], packets: Sequence[StoredPacket]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(sorted(keys.items())).encode())
    for p in sorted(packets, key=lambda p: p.name):
        h.update(
            json.dumps(
                [p.name, sorted(p.labels.items()), sorted(p.annotations.items()), p.envelope_json]
            ).encode()
        )
    return h.hexdigest()


def _verified(
    keys: Mapping[str, str], packets: Sequence[StoredPacket]
) -> tuple[int, list[Finding]]:
    digest = content_digest(keys, packets)
    with _VERIFIED_LOCK:
        hit = _VERIFIED.get(digest)
        if hit is not None:
            _VERIFIED.move_to_end(digest)
            return hit
    report = verify(packets, [], keys)
    result = (report.signatures, [f for f in report.findings if f.code not in LOG_ONLY])
    with _VERIFIED_LOCK:
        _VERIFIED[digest] = result
        while len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)
    return result


def check(keys: Mapping[str, str], packets: Sequence[StoredPacket]) -> Checked:
    """Signatures and chains of the ConfigMaps; the log comparison is not made here."""
    out = Checked(packets=packets)
    if packets:
        signatures, findings = _verified(keys, packets)
        out.signatures, out.findings = signatures, list(findings)
    for p in packets:
        labels = p.labels
        release = f"{labels.get(L_RELEASE_NS, '')}/{labels.get(L_RELEASE, '')}".strip("/")
        try:
            sequence = int(labels.get("stella.io/sequence", "0"))
        except ValueError:
            sequence = 0
        out.chains.setdefault(chain_of(p), []).append(
            Row(
                p.name,
                sequence,
                str(labels.get(L_KIND, "")),
                release,
                str(p.annotations.get(A_RECORDED, "")),
                str(p.annotations.get(A_DIGEST, "")),
            )
        )
    for rows in out.chains.values():
        rows.sort(key=lambda r: r.sequence)
    return out


def export_document(
    keys: Mapping[str, str],
    packets: Sequence[StoredPacket],
    namespace: str,
    chain: str | None,
    limit: int,
) -> bytes:
    """One JSON document of the chain's packets (all chains without one) and the keys;
    TooLarge beyond `limit` bytes (ask for one chain, or use `stella evidence export`)."""
    chosen = [p for p in packets if chain is None or chain_of(p) == chain]
    doc = {
        "format": EXPORT_FORMAT,
        "namespace": namespace,
        "chain": chain,
        "keys": dict(sorted(keys.items())),
        "configMaps": [p.to_dict() for p in sorted(chosen, key=lambda p: p.name)],
    }
    body = json.dumps(doc, indent=1, sort_keys=True).encode()
    if len(body) > limit:
        raise TooLarge(len(body), limit)
    return body


def predicates(packets: Sequence[StoredPacket]) -> list[StellaPredicate]:
    """The predicates of packets whose signatures and chains `check` found sound (the
    caller checks first; DORA figures come only from evidence that verifies)."""
    return [
        parse_statement(parse_envelope(p.envelope_json).payload_bytes()).predicate for p in packets
    ]


@dataclass(frozen=True)
class ReleaseEvidence:
    """One packet of a Release, and what verification found about it."""

    chain: str
    row: Row
    findings: tuple[Finding, ...]


def of_release(checked: Checked, namespace: str, name: str) -> list[ReleaseEvidence]:
    """The packets naming this Release, in chain then sequence order, each with the
    findings about it (a finding about the chain names a ConfigMap, or its position)."""
    ref = f"{namespace}/{name}"
    out = []
    for chain in sorted(checked.chains):
        for row in checked.chains[chain]:
            if row.release == ref:
                item = f"ConfigMap {row.name}"  # as verify names it (a fork lists several)
                about = tuple(f for f in checked.findings if item in f.item.split(", "))
                out.append(ReleaseEvidence(chain, row, about))
    return out
