"""In-process PacketStore and EvidenceLog: for unit tests and benchmarks, never production."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace

from stella.evidence.errors import ChainConflict, DuplicatePacket, IntegrityError
from stella.evidence.manifest import L_ENVIRONMENT, L_SCOPE
from stella.evidence.packet import CLUSTER_CHAIN
from stella.evidence.records import LogEntry, StoredPacket


class MemoryStore:
    def __init__(self) -> None:
        self.packets: dict[str, StoredPacket] = {}
        self.keys: dict[str, str] = {}
        self.locators: list[str] = []
        self._lock = threading.Lock()

    def put(self, packet: StoredPacket) -> None:
        with self._lock:
            have = self.packets.get(packet.name)
            if have is not None and have.envelope_json != packet.envelope_json:
                raise IntegrityError(f"ConfigMap {packet.name} exists with different content")
            self.packets[packet.name] = packet

    def get(self, name: str) -> StoredPacket | None:
        return self.packets.get(name)

    def list(self, chain: str | None = None) -> list[StoredPacket]:
        with self._lock:
            out = list(self.packets.values())
        if chain is None:
            return out
        if chain == CLUSTER_CHAIN:
            return [p for p in out if p.labels.get(L_SCOPE) == "cluster"]
        return [p for p in out if p.labels.get(L_ENVIRONMENT) == chain]

    def publish_keys(self, keys: Mapping[str, str]) -> None:
        with self._lock:
            for key_id, pem in keys.items():
                if self.keys.get(key_id, pem) != pem:
                    raise IntegrityError(f"key {key_id} is published with another value")
                self.keys[key_id] = pem

    def published_keys(self) -> dict[str, str]:
        return dict(self.keys)

    def publish_log_locator(self, locator: str) -> None:
        with self._lock:
            if locator not in self.locators:
                self.locators.append(locator)

    def log_locators(self) -> tuple[str, ...]:
        return tuple(self.locators)


class MemoryLog:
    """An in-process EvidenceLog with the same append rules as the real ones."""

    locator: str | None = None  # nowhere a verifier could read it

    def __init__(self) -> None:
        self.rows: list[LogEntry] = []
        self._by_id: dict[str, LogEntry] = {}
        self._heads: dict[str, LogEntry] = {}
        self._lock = threading.Lock()

    def head(self, chain: str) -> LogEntry | None:
        with self._lock:
            return self._heads.get(chain)

    def find(self, packet_id: str) -> LogEntry | None:
        with self._lock:
            return self._by_id.get(packet_id)

    def entries(self, chain: str | None = None) -> list[LogEntry]:
        with self._lock:
            out = [e for e in self.rows if chain is None or e.chain == chain]
        return sorted(out, key=lambda e: (e.chain, e.sequence, e.row or 0))

    def append(self, entry: LogEntry) -> None:
        with self._lock:
            if entry.packet_id in self._by_id:
                raise DuplicatePacket(f"packet {entry.packet_id} is already logged")
            head = self._heads.get(entry.chain)
            if entry.sequence != (head.sequence + 1 if head else 1) or entry.previous_digest != (
                head.digest if head else None
            ):
                raise ChainConflict(f"chain {entry.chain}: head moved")
            entry = replace(entry, row=len(self.rows) + 1)
            self.rows.append(entry)
            self._by_id[entry.packet_id] = entry
            self._heads[entry.chain] = entry

    def close(self) -> None:
        pass
