"""The one entry point the operator calls: :meth:`Recorder.record`.

``record(event)`` returns only once the packet is signed, appended to the external log and
stored as an immutable ConfigMap; otherwise it raises (see :mod:`stella.evidence.errors`):

* :class:`SignerUnavailable` — Vault down: nothing was written; deploy nothing.
* :class:`LogUnavailable` — the external log is down: nothing was written; set condition
  ``EvidencePending`` and retry later (``err.retry_after``).
* :class:`StoreUnavailable` — the log has the packet, the ConfigMap write failed; retry:
  the retry finds the packet in the log and only writes the ConfigMap.
* :class:`ChainConflict` — other writers kept winning the race for the chain head; retry.
* :class:`IntegrityError` — a stored record disagrees with what should be there; alert.

Idempotent: the packet id is derived from (chain, kind, event_id). A retry of a recorded
event returns the stored packet (``reused=True``) and never writes a second one, even
after a crash between the two writes. The chain head is advanced with optimistic
concurrency in the log (a unique (chain, sequence) and a check that the new entry links to
the current head), so concurrent promotions can never fork a chain.

Blocking I/O: from async code call ``await asyncio.to_thread(recorder.record, event)``
(or :meth:`Recorder.arecord`).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from stella.evidence.dsse import Envelope, parse_envelope, sign_envelope
from stella.evidence.errors import ChainConflict, DuplicatePacket, SignerUnavailable
from stella.evidence.event import EvidenceEvent
from stella.evidence.manifest import configmap_name, stored_packet
from stella.evidence.packet import (
    OperatorInfo,
    Statement,
    StellaPredicate,
    Subject,
    assert_no_secrets,
    chain_of,
    image_subject,
    object_subject,
    packet_id,
    parse_statement,
)
from stella.evidence.records import EvidenceLog, LogEntry, PacketStore
from stella.models.common import now
from stella.secrets.errors import SecretsError
from stella.secrets.signers import Signer


@dataclass(frozen=True)
class RecordedPacket:
    packet_id: str
    chain: str
    sequence: int
    digest: str
    configmap: str
    envelope: Envelope
    reused: bool  # True when the event had been recorded before and nothing new was written


def build_statement(
    event: EvidenceEvent,
    *,
    sequence: int,
    previous_digest: str | None,
    recorded_at: datetime,
    operator: OperatorInfo,
) -> Statement:
    chain = chain_of(event.environment)
    subjects: list[Subject] = [image_subject(i) for i in event.images] + list(event.subjects)
    if not subjects:
        if event.release is not None:
            subjects = [object_subject("Release", event.release.name, event.release.namespace)]
        elif event.agent is not None:
            subjects = [object_subject("Agent", event.agent.name)]
        else:
            subjects = [object_subject("Environment", chain)]
    predicate = StellaPredicate(
        packet_id=packet_id(chain, event.kind, event.event_id),
        event_id=event.event_id,
        kind=event.kind,
        chain=chain,
        environment=event.environment,
        release=event.release,
        agent=event.agent,
        actor=event.actor,
        approvals=event.approvals,
        policy=event.policy,
        outcome=event.outcome,
        operator=operator,
        recorded_at=recorded_at,
        sequence=sequence,
        previous_digest=previous_digest,
    )
    statement = Statement(subject=subjects, predicate=predicate)
    assert_no_secrets(statement.wire_dict()["predicate"])
    return statement


@dataclass
class Recorder:
    signer: Signer
    log: EvidenceLog
    store: PacketStore
    operator_version: str
    operator_instance: str | None = None
    clock: Callable[[], datetime] = now
    max_attempts: int = 50
    _stored: set[str] = field(default_factory=set, repr=False)
    _published: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def publish_keys(self) -> None:
        """Publish the signer's public keys (current and retired) as ConfigMaps, and where
        the external log is (no secret in it), so ``stella evidence verify`` needs no
        ``--log``."""
        keys = self.signer.public_keys()
        if set(keys) - self._published:
            self.store.publish_keys(keys)
            self._published |= set(keys)
        locator = self.log.locator
        if locator and locator not in self._published:
            self.store.publish_log_locator(locator)
            self._published.add(locator)

    def record(self, event: EvidenceEvent) -> RecordedPacket:
        chain = chain_of(event.environment)
        pid = packet_id(chain, event.kind, event.event_id)
        entry = self.log.find(pid)
        reused = entry is not None
        if entry is None:
            entry, reused = self._append(event, chain, pid)
        self._ensure_stored(entry)
        return RecordedPacket(
            packet_id=pid,
            chain=entry.chain,
            sequence=entry.sequence,
            digest=entry.digest,
            configmap=configmap_name(entry.chain, entry.sequence),
            envelope=Envelope.model_validate(entry.envelope),
            reused=reused,
        )

    async def arecord(self, event: EvidenceEvent) -> RecordedPacket:
        return await asyncio.to_thread(self.record, event)

    def _append(self, event: EvidenceEvent, chain: str, pid: str) -> tuple[LogEntry, bool]:
        operator = OperatorInfo(version=self.operator_version, instance=self.operator_instance)
        if self.signer.key_id not in self._published:
            self.publish_keys()  # a verifier must find the key before the packet
        for attempt in range(self.max_attempts):
            head = self.log.head(chain)
            if head is not None:
                self._ensure_stored(head)  # heals a crash between the two writes of the head
            statement = build_statement(
                event,
                sequence=head.sequence + 1 if head else 1,
                previous_digest=head.digest if head else None,
                recorded_at=self.clock(),
                operator=operator,
            )
            payload = statement.payload()
            try:
                envelope = sign_envelope(payload, self.signer)
            except SecretsError as exc:
                raise SignerUnavailable(
                    f"evidence cannot be signed: {exc.message}", retry_after=exc.retry_after
                ) from exc
            p = statement.predicate
            entry = LogEntry(
                chain=chain,
                sequence=p.sequence,
                packet_id=pid,
                digest=statement.digest(),
                previous_digest=p.previous_digest,
                kind=p.kind,
                recorded_at=p.recorded_at,
                envelope=envelope.to_dict(),
            )
            try:
                self.log.append(entry)
            except ChainConflict:
                # Someone else advanced the head: re-read it and try again, a little later.
                time.sleep(random.uniform(0, min(0.05, 0.002 * (attempt + 1))))  # noqa: S311
                continue
            except DuplicatePacket:
                existing = self.log.find(pid)
                if existing is None:
                    raise
                return existing, True
            self._ensure_stored(entry, statement, envelope)
            return entry, False
        raise ChainConflict(
            f"chain {chain}: lost the race for the head {self.max_attempts} times; retry later",
            retry_after=1,
        )

    def _ensure_stored(
        self,
        entry: LogEntry,
        statement: Statement | None = None,
        envelope: Envelope | None = None,
    ) -> None:
        name = configmap_name(entry.chain, entry.sequence)
        with self._lock:
            if name in self._stored:
                return
        if envelope is None or statement is None:
            envelope = parse_envelope(entry.envelope)
            statement = parse_statement(envelope.payload_bytes())
        self.store.put(stored_packet(statement, envelope))
        with self._lock:
            self._stored.add(name)
            if len(self._stored) > 100_000:
                self._stored.clear()

    def repair(self, chain: str | None = None) -> list[str]:
        """Write the ConfigMap of each chain's newest log entry if it lacks one.

        Only the head can be missing after a crash: an event's log append comes first, its
        ConfigMap second, and the next record on a chain heals that chain's head before it
        appends. An older entry without its ConfigMap was deleted by someone; re-creating
        it would hide exactly what `stella evidence verify` exists to report, so it is
        left for verify to name. Returns the names written."""
        present = {p.name for p in self.store.list(chain)}
        heads: dict[str, LogEntry] = {}
        for entry in self.log.entries(chain):
            if entry.chain not in heads or entry.sequence > heads[entry.chain].sequence:
                heads[entry.chain] = entry
        written = []
        for entry in heads.values():
            name = configmap_name(entry.chain, entry.sequence)
            if name not in present:
                self._ensure_stored(entry)
                written.append(name)
        return written
