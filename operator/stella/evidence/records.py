"""What the stores hold, and the interfaces of the two kinds of store.

* An :class:`EvidenceLog` is the external append-only log and the authority on each
  chain's head: ``append`` refuses a second entry for the same (chain, sequence) with
  :class:`~stella.evidence.errors.ChainConflict` and a second entry for the same packet id
  with :class:`~stella.evidence.errors.DuplicatePacket`.
* A :class:`PacketStore` holds one immutable ConfigMap per packet and the published keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from stella.models.common import rfc3339


@dataclass(frozen=True)
class LogEntry:
    """One entry of the external log. ``row`` locates it (row id, line number)."""

    chain: str
    sequence: int
    packet_id: str
    digest: str
    previous_digest: str | None
    kind: str
    recorded_at: datetime
    envelope: dict[str, Any]
    row: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "sequence": self.sequence,
            "packetId": self.packet_id,
            "digest": self.digest,
            "previousDigest": self.previous_digest,
            "kind": self.kind,
            "recordedAt": rfc3339(self.recorded_at),
            "envelope": self.envelope,
            **({"row": self.row} if self.row is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogEntry:
        return cls(
            chain=str(data["chain"]),
            sequence=int(data["sequence"]),
            packet_id=str(data["packetId"]),
            digest=str(data["digest"]),
            previous_digest=data.get("previousDigest"),
            kind=str(data["kind"]),
            recorded_at=datetime.fromisoformat(str(data["recordedAt"]).replace("Z", "+00:00")),
            envelope=dict(data["envelope"]),
            row=data.get("row"),
        )


@dataclass(frozen=True)
class StoredPacket:
    """One evidence ConfigMap as read back: name, labels, annotations, the envelope JSON."""

    name: str
    envelope_json: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "envelope": self.envelope_json,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoredPacket:
        return cls(
            name=str(data["name"]),
            envelope_json=str(data["envelope"]),
            labels=dict(data.get("labels") or {}),
            annotations=dict(data.get("annotations") or {}),
        )


class EvidenceLog(Protocol):
    @property
    def locator(self) -> str | None:
        """Where this log is, with no secret in it (a file path, or
        ``postgresql://host:port/db``): published so a verifier can find it."""
        ...

    def head(self, chain: str) -> LogEntry | None:
        """The entry with the highest sequence of the chain, or None for an empty chain."""
        ...

    def find(self, packet_id: str) -> LogEntry | None: ...

    def append(self, entry: LogEntry) -> None:
        """Append; ChainConflict if (chain, sequence) is taken, DuplicatePacket if the id is."""
        ...

    def entries(self, chain: str | None = None) -> list[LogEntry]:
        """Every entry (of one chain), ordered by chain then sequence."""
        ...

    def close(self) -> None: ...


class PacketStore(Protocol):
    def put(self, packet: StoredPacket) -> None:
        """Create it immutable; an identical existing one is fine, a different one is an
        IntegrityError."""
        ...

    def get(self, name: str) -> StoredPacket | None: ...

    def list(self, chain: str | None = None) -> list[StoredPacket]: ...

    def publish_keys(self, keys: Mapping[str, str]) -> None:
        """Publish public keys (key id -> PEM); never removes one."""
        ...

    def published_keys(self) -> dict[str, str]: ...

    def publish_log_locator(self, locator: str) -> None:
        """Say where the external log is (see EvidenceLog.locator); never removes one."""
        ...

    def log_locators(self) -> tuple[str, ...]: ...
