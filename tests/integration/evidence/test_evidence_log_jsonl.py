"""The JSON-lines sink: the embedded default."""

from __future__ import annotations

import json
import multiprocessing
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from tests.integration.evidence.helpers import Clock, event

from stella.evidence.errors import ChainConflict, DuplicatePacket, LogUnavailable
from stella.evidence.log_jsonl import JsonlLog
from stella.evidence.recorder import Recorder
from stella.evidence.records import PacketStore
from stella.evidence.store_memory import MemoryStore
from stella.evidence.verify import verify
from stella.secrets.signers import LocalKeySigner


def _rec(tmp: Path, store: PacketStore | None = None) -> Recorder:
    return Recorder(
        LocalKeySigner(tmp / "key.pem"),
        JsonlLog(tmp / "log.jsonl"),
        store or MemoryStore(),
        "t",
        clock=Clock(),
    )


def test_append_head_find_and_reopen(tmp_path: Path) -> None:
    rec = _rec(tmp_path)
    a = rec.record(event(n=1))
    rec.record(event(n=2))
    reopened = JsonlLog(tmp_path / "log.jsonl")
    head = reopened.head("prod")
    assert head is not None and head.sequence == 2
    assert reopened.find(a.packet_id) is not None
    lines = (tmp_path / "log.jsonl").read_bytes().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["sequence"] == 1
    assert verify(rec.store.list(), reopened.entries(), rec.store.published_keys()).ok
    entry = reopened.head("prod")
    assert entry is not None
    with pytest.raises(DuplicatePacket):
        reopened.append(entry)
    with pytest.raises(ChainConflict):
        reopened.append(replace(entry, packet_id="z" * 64))


def _worker(tmp: str, i: int) -> None:
    rec = Recorder(
        LocalKeySigner(Path(tmp) / "key.pem"),
        JsonlLog(Path(tmp) / "log.jsonl"),
        MemoryStore(),
        "t",
        clock=Clock(),
    )
    for n in range(15):
        rec.record(event(env=("prod", "dev")[n % 2], n=i * 100 + n))


def test_processes_and_threads_never_fork(tmp_path: Path) -> None:
    LocalKeySigner(tmp_path / "key.pem")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), i)) for i in range(3)]
    threads = [threading.Thread(target=_worker, args=(str(tmp_path), 10 + i)) for i in range(3)]
    for p in procs:
        p.start()
    for t in threads:
        t.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    for t in threads:
        t.join()
    entries = JsonlLog(tmp_path / "log.jsonl").entries()
    assert len(entries) == 6 * 15
    for chain in ("prod", "dev"):
        seqs = [e.sequence for e in entries if e.chain == chain]
        assert seqs == list(range(1, len(seqs) + 1))


def test_torn_line_and_truncation(tmp_path: Path) -> None:
    rec = _rec(tmp_path)
    rec.record(event(n=1))
    with (tmp_path / "log.jsonl").open("ab") as f:
        f.write(b'{"chain":"prod","seq')  # a writer crashed mid-line
    rec2 = _rec(tmp_path, rec.store)
    assert rec2.record(event(n=2)).sequence == 2
    log = JsonlLog(tmp_path / "log.jsonl")
    assert [e.sequence for e in log.entries()] == [1, 2]
    assert log.malformed == [2]
    (tmp_path / "log.jsonl").write_bytes(b"")
    with pytest.raises(LogUnavailable, match="truncated"):
        rec2.log.head("prod")


def test_edited_or_removed_line_is_detected(tmp_path: Path) -> None:
    rec = _rec(tmp_path)
    for n in range(1, 5):
        rec.record(event(n=n))
    path = tmp_path / "log.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:1] + lines[2:]))
    report = verify(rec.store.list(), JsonlLog(path).entries(), rec.store.published_keys())
    assert {"log-entry-missing", "chain-gap"} <= {f.code for f in report.findings}
    doc = json.loads(lines[1])
    doc["kind"] = "PromotionFailed"
    path.write_bytes(b"".join([lines[0], json.dumps(doc).encode() + b"\n", *lines[2:]]))
    report = verify(rec.store.list(), JsonlLog(path).entries(), rec.store.published_keys())
    assert [f.code for f in report.findings] == ["log-column-mismatch"]
