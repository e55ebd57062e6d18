"""The external log as a JSON-lines file: the embedded default.

One canonical JSON object per line (see :meth:`LogEntry.to_dict`), appended with
``O_APPEND`` under an exclusive ``flock`` (between processes) and a mutex (between
threads), fsync'd before ``append`` returns. Appending checks the chain head under the
lock, so two writers can never fork a chain. Nothing here ever rewrites a line; for the
file itself to be append-only against root, put it on storage that enforces it
(``chattr +a``, a WORM volume) — tampering is detected by ``stella evidence verify``
either way.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

from stella.evidence.canonical import canonical_json
from stella.evidence.errors import ChainConflict, DuplicatePacket, LogUnavailable
from stella.evidence.records import LogEntry


class JsonlLog:
    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._mutex = threading.Lock()
        self._offset = 0
        self._line = 0
        self._entries: list[LogEntry] = []
        self._by_id: dict[str, LogEntry] = {}
        self._heads: dict[str, LogEntry] = {}
        #: line numbers that do not parse as a log entry (a torn write, or tampering)
        self.malformed: list[int] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        except OSError as exc:
            raise LogUnavailable(f"cannot open evidence log {self.path}: {exc.strerror}") from exc
        self._fd = fd

    @property
    def locator(self) -> str:
        """The file's absolute path (where a verifier on the same machine reads it)."""
        return str(self.path.absolute())

    def _refresh(self) -> None:
        """Read lines other writers appended since we last looked (call under a lock)."""
        size = os.fstat(self._fd).st_size
        if size < self._offset:
            raise LogUnavailable(f"evidence log {self.path} shrank: it was truncated")
        if size == self._offset:
            return
        data = os.pread(self._fd, size - self._offset, self._offset)
        end = data.rfind(b"\n")
        if end < 0:
            return  # only a partial line so far
        for raw in data[: end + 1].splitlines():
            self._line += 1
            try:
                entry = LogEntry.from_dict({**json.loads(raw), "row": self._line})
            except (ValueError, KeyError, TypeError):
                self.malformed.append(self._line)
                continue
            self._entries.append(entry)
            self._by_id.setdefault(entry.packet_id, entry)
            head = self._heads.get(entry.chain)
            if head is None or entry.sequence > head.sequence:
                self._heads[entry.chain] = entry
        self._offset += end + 1

    def _locked_refresh(self) -> None:
        with self._mutex:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_SH)
                try:
                    self._refresh()
                finally:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
            except OSError as exc:
                raise LogUnavailable(f"cannot read evidence log {self.path}: {exc}") from exc

    def head(self, chain: str) -> LogEntry | None:
        self._locked_refresh()
        return self._heads.get(chain)

    def find(self, packet_id: str) -> LogEntry | None:
        self._locked_refresh()
        return self._by_id.get(packet_id)

    def entries(self, chain: str | None = None) -> list[LogEntry]:
        self._locked_refresh()
        out = [e for e in self._entries if chain is None or e.chain == chain]
        return sorted(out, key=lambda e: (e.chain, e.sequence, e.row or 0))

    def append(self, entry: LogEntry) -> None:
        line = canonical_json({k: v for k, v in entry.to_dict().items() if k != "row"}) + b"\n"
        with self._mutex:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
                try:
                    self._refresh()
                    if entry.packet_id in self._by_id:
                        raise DuplicatePacket(f"packet {entry.packet_id} is already logged")
                    head = self._heads.get(entry.chain)
                    want_seq = head.sequence + 1 if head else 1
                    want_prev = head.digest if head else None
                    if entry.sequence != want_seq or entry.previous_digest != want_prev:
                        raise ChainConflict(f"chain {entry.chain}: head moved (next is {want_seq})")
                    size = os.fstat(self._fd).st_size
                    if size != self._offset:  # a torn line from a crashed writer: close it
                        os.write(self._fd, b"\n")
                    os.write(self._fd, line)
                    if self.fsync:
                        os.fsync(self._fd)
                    self._refresh()
                finally:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
            except OSError as exc:
                raise LogUnavailable(f"cannot append to evidence log {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._mutex:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
