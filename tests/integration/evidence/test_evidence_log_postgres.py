"""The PostgreSQL sink: append-only even for its owner, linear chains, tampering found."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from tests.integration.evidence.helpers import Clock, EvidenceDb, event

from devenv.services import Postgres
from stella.evidence.errors import ChainConflict, LogUnavailable
from stella.evidence.log_postgres import install
from stella.evidence.recorder import Recorder
from stella.evidence.store_memory import MemoryStore
from stella.evidence.verify import verify
from stella.secrets.signers import LocalKeySigner, VaultTransitSigner


def _recorder(signer, db: EvidenceDb, store: MemoryStore | None = None) -> Recorder:  # type: ignore[no-untyped-def]
    return Recorder(signer, db.log(), store or MemoryStore(), "0.1.0-test", clock=Clock())


def _verify(rec: Recorder, log=None):  # type: ignore[no-untyped-def]
    return verify(rec.store.list(), (log or rec.log).entries(), rec.store.published_keys())


def codes(report) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.code for f in report.findings}


REFUSALS = [
    "UPDATE stella.evidence_log SET kind = 'x'",
    "DELETE FROM stella.evidence_log",
    "TRUNCATE stella.evidence_log",
]


def test_install_is_idempotent(evidence_db: EvidenceDb) -> None:
    install(evidence_db.admin_dsn, writer_password="writer-test-pw")
    install(evidence_db.admin_dsn)


def test_writer_and_owner_cannot_change_or_remove(
    evidence_db: EvidenceDb, transit_signer: VaultTransitSigner
) -> None:
    rec = _recorder(transit_signer, evidence_db)
    rec.record(event(n=1))
    with psycopg.connect(evidence_db.writer_dsn, autocommit=True) as conn:
        for stmt in REFUSALS:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)
        for stmt in (
            "ALTER TABLE stella.evidence_log DISABLE TRIGGER USER",
            "DROP TABLE stella.evidence_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(stmt)
    # even the table's owner is refused by the triggers
    with psycopg.connect(evidence_db.admin_dsn, autocommit=True) as conn:
        conn.execute("SET ROLE stella_evidence_owner")
        for stmt in REFUSALS:
            with pytest.raises(psycopg.Error, match="append-only"):
                conn.execute(stmt)
    assert len(rec.log.entries()) == 1 and _verify(rec).ok


def test_insert_must_link_to_the_head(evidence_db: EvidenceDb, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rec = _recorder(LocalKeySigner(tmp_path / "k.pem"), evidence_db)
    first = rec.record(event(n=1))
    entry = rec.log.find(first.packet_id)
    assert entry is not None
    with pytest.raises(ChainConflict):  # seq 2 naming a wrong previous digest
        rec.log.append(
            replace(entry, sequence=2, packet_id="x" * 64, previous_digest="sha256:" + "0" * 64)
        )
    with pytest.raises(ChainConflict):  # seq 1 again
        rec.log.append(replace(entry, packet_id="y" * 64))


def test_superuser_tampering_is_detected(
    evidence_db: EvidenceDb, transit_signer: VaultTransitSigner
) -> None:
    rec = _recorder(transit_signer, evidence_db)
    for n in range(1, 6):
        rec.record(event(n=n))
    assert _verify(rec).ok
    with psycopg.connect(evidence_db.admin_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE stella.evidence_log DISABLE TRIGGER USER")
        conn.execute("DELETE FROM stella.evidence_log WHERE seq = 3")
        conn.execute("ALTER TABLE stella.evidence_log ENABLE TRIGGER USER")
    report = _verify(rec)
    assert {"log-entry-missing", "chain-gap"} <= codes(report)
    assert any(f.item == "ConfigMap stella-evidence-env-prod-0000000003" for f in report.findings)

    # a superuser inserts a forged row (re-using a real envelope elsewhere in the chain)
    with psycopg.connect(evidence_db.admin_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE stella.evidence_log DISABLE TRIGGER USER")
        conn.execute(
            "INSERT INTO stella.evidence_log (environment, seq, packet_id, digest, prev_digest,"
            " kind, envelope, recorded_at) SELECT environment, 6, packet_id || 'f', digest,"
            " prev_digest, kind, envelope, recorded_at FROM stella.evidence_log WHERE seq = 5"
        )
        conn.execute("ALTER TABLE stella.evidence_log ENABLE TRIGGER USER")
    report = _verify(rec)
    assert {"log-column-mismatch", "configmap-missing"} <= codes(report)
    assert any("prod#6" in f.item for f in report.findings)


def test_postgres_down_promotion_waits_then_completes_once(
    postgres: Postgres,
    evidence_db: EvidenceDb,
    transit_signer: VaultTransitSigner,
) -> None:
    store = MemoryStore()
    rec = _recorder(transit_signer, evidence_db, store)
    rec.record(event(n=1))
    postgres.kill()  # a crash, not a clean shutdown
    try:
        for _ in range(2):
            with pytest.raises(LogUnavailable) as err:
                rec.record(event(n=2))
            assert err.value.reason == "EvidencePending" and err.value.transient
        assert len(store.list()) == 1  # nothing half-written
    finally:
        postgres.start()
    # the same promotion, retried after the log returns: written exactly once
    deadline = time.monotonic() + 20
    while True:
        try:
            done = rec.record(event(n=2))
            break
        except LogUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert done.sequence == 2 and not done.reused
    assert rec.record(event(n=2)).reused
    assert [e.sequence for e in rec.log.entries()] == [1, 2]
    assert len(store.list()) == 2
    assert _verify(rec).ok


def test_many_concurrent_promotions_stay_linear(
    evidence_db: EvidenceDb,
    tmp_path: Path,
) -> None:
    signer = LocalKeySigner(tmp_path / "k.pem")
    store = MemoryStore()
    workers = 8
    recorders = [_recorder(signer, evidence_db, store) for _ in range(workers)]  # 8 connections
    errors: list[BaseException] = []
    per_worker = 20

    def work(i: int) -> None:
        try:
            for n in range(per_worker):
                env = ("prod", "staging", "dev")[n % 3]
                recorders[i].record(event(env=env, n=i * 1000 + n))
                # and a duplicate delivery of the same event from another worker
                recorders[(i + 1) % workers].record(event(env=env, n=i * 1000 + n))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    entries = recorders[0].log.entries()
    assert len(entries) == workers * per_worker
    for chain in ("prod", "staging", "dev"):
        seqs = [e.sequence for e in entries if e.chain == chain]
        assert seqs == list(range(1, len(seqs) + 1))
    report = _verify(recorders[0])
    assert report.ok, report.findings[:5]
