"""The recorder's contract with the operator: idempotent, fail closed, never forks."""

from __future__ import annotations

import threading

import pytest
from evidence_fakes import Clock, MemorySigner, promotion_event

from stella.evidence.errors import (
    IntegrityError,
    LogUnavailable,
    SignerUnavailable,
    StoreUnavailable,
)
from stella.evidence.event import EvidenceEvent
from stella.evidence.packet import CLUSTER_CHAIN, AgentRef
from stella.evidence.recorder import Recorder
from stella.evidence.store_memory import MemoryLog, MemoryStore
from stella.evidence.verify import Report, verify
from stella.secrets.errors import VaultUnavailable


def _verify(rec: Recorder) -> Report:
    return verify(rec.store.list(), rec.log.entries(), rec.store.published_keys())


def test_record_writes_log_and_configmap_and_links(recorder: Recorder) -> None:
    a = recorder.record(promotion_event(n=1))
    b = recorder.record(promotion_event(n=1, kind="PromotionDeployed"))
    c = recorder.record(promotion_event(env="dev", n=1))
    assert (a.sequence, b.sequence, c.sequence) == (1, 2, 1)
    assert a.configmap == "stella-evidence-env-prod-0000000001"
    assert not a.reused
    entries = recorder.log.entries("prod")
    assert [e.sequence for e in entries] == [1, 2]
    assert entries[1].previous_digest == a.digest
    assert recorder.store.get(b.configmap) is not None
    report = _verify(recorder)
    assert report.ok, report.findings
    assert report.heads == {"prod": 2, "dev": 1}


def test_same_event_twice_is_written_once(recorder: Recorder) -> None:
    first = recorder.record(promotion_event())
    again = recorder.record(promotion_event())
    assert again.reused and again.packet_id == first.packet_id
    assert again.envelope == first.envelope
    assert len(recorder.log.entries()) == 1
    assert len(recorder.store.list()) == 1


def test_vault_down_nothing_written(recorder: Recorder, signer: MemorySigner) -> None:
    signer.fail = VaultUnavailable("Vault is unreachable", retry_after=5)
    with pytest.raises(SignerUnavailable) as err:
        recorder.record(promotion_event())
    assert err.value.retry_after == 5 and err.value.transient
    assert recorder.log.entries() == [] and recorder.store.list() == []


class FlakyLog(MemoryLog):
    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise LogUnavailable("log down", retry_after=2)

    def head(self, chain):  # type: ignore[no-untyped-def]
        self._check()
        return super().head(chain)

    def find(self, packet_id):  # type: ignore[no-untyped-def]
        self._check()
        return super().find(packet_id)

    def append(self, entry):  # type: ignore[no-untyped-def]
        self._check()
        return super().append(entry)


class FlakyStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def put(self, packet):  # type: ignore[no-untyped-def]
        if self.down:
            raise StoreUnavailable("API server down")
        return super().put(packet)


def test_log_down_waits_then_completes_exactly_once(signer: MemorySigner) -> None:
    log, store = FlakyLog(), FlakyStore()
    rec = Recorder(signer, log, store, "t", clock=Clock())
    log.down = True
    for _ in range(3):
        with pytest.raises(LogUnavailable) as err:
            rec.record(promotion_event())
        assert err.value.reason == "EvidencePending"
    assert store.list() == []
    log.down = False
    done = rec.record(promotion_event())
    assert not done.reused and done.sequence == 1
    assert rec.record(promotion_event()).reused
    assert len(log.entries()) == 1 and len(store.list()) == 1


def test_crash_between_log_and_configmap_heals(signer: MemorySigner) -> None:
    log, store = MemoryLog(), FlakyStore()
    rec = Recorder(signer, log, store, "t", clock=Clock())
    store.down = True
    with pytest.raises(StoreUnavailable):
        rec.record(promotion_event(n=1))
    assert len(log.entries()) == 1 and store.list() == []
    store.down = False
    # a new recorder (the operator restarted): the retry writes only the ConfigMap
    rec2 = Recorder(signer, log, store, "t", clock=Clock())
    again = rec2.record(promotion_event(n=1))
    assert again.reused
    assert len(log.entries()) == 1 and len(store.list()) == 1
    assert _verify(rec2).ok


def test_next_record_heals_a_missing_head_configmap(signer: MemorySigner) -> None:
    log, store = MemoryLog(), FlakyStore()
    rec = Recorder(signer, log, store, "t", clock=Clock())
    store.down = True
    with pytest.raises(StoreUnavailable):
        rec.record(promotion_event(n=1))
    store.down = False
    Recorder(signer, log, store, "t", clock=Clock()).record(promotion_event(n=2))
    assert {p.name for p in store.list()} == {
        "stella-evidence-env-prod-0000000001",
        "stella-evidence-env-prod-0000000002",
    }


def test_repair_writes_missing_configmaps(signer: MemorySigner) -> None:
    log, store = MemoryLog(), FlakyStore()
    rec = Recorder(signer, log, store, "t", clock=Clock())
    store.down = True
    with pytest.raises(StoreUnavailable):
        rec.record(promotion_event(n=1))
    store.down = False
    assert rec.repair() == ["stella-evidence-env-prod-0000000001"]
    assert _verify(rec).ok


def test_conflicting_configmap_is_an_integrity_error(recorder: Recorder) -> None:
    done = recorder.record(promotion_event())
    store = recorder.store
    assert isinstance(store, MemoryStore)
    forged = store.packets[done.configmap]
    store.packets[done.configmap] = type(forged)(
        name=forged.name, envelope_json="{}", labels=forged.labels
    )
    fresh = Recorder(recorder.signer, recorder.log, store, "t", clock=Clock())
    with pytest.raises(IntegrityError):
        fresh.record(promotion_event())


def test_concurrent_promotions_never_fork(signer: MemorySigner) -> None:
    log, store = MemoryLog(), MemoryStore()
    recorders = [Recorder(signer, log, store, "t", clock=Clock()) for _ in range(8)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for n in range(24):
                recorders[i].record(promotion_event(env=("prod", "dev")[n % 2], n=i * 100 + n))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [e.sequence for e in log.entries("prod")] == list(range(1, 97))
    report = verify(store.list(), log.entries(), signer.public_keys())
    assert report.ok, report.findings[:5]


def test_agent_events_use_the_cluster_chain(recorder: Recorder) -> None:
    done = recorder.record(
        EvidenceEvent(
            kind="AgentRegistered",
            event_id="agent-eu-1/registered",
            agent=AgentRef(name="eu-1", fingerprint="c" * 64, capabilities=["deploy"]),
            actor="alice@example.com",
        )
    )
    assert done.chain == CLUSTER_CHAIN
    assert done.configmap == "stella-evidence-cluster-0000000001"
    cm = recorder.store.get(done.configmap)
    assert cm is not None and cm.labels["stella.io/chain-scope"] == "cluster"
    assert cm.labels["stella.io/agent"] == "eu-1"
    assert _verify(recorder).ok


def test_rotation_keeps_old_packets_verifiable(recorder: Recorder) -> None:
    recorder.record(promotion_event(n=1))
    old_keys = recorder.signer.public_keys()
    recorder.signer = MemorySigner("test:key-2")
    recorder.record(promotion_event(n=2))
    keys = recorder.store.published_keys()
    assert set(keys) == set(old_keys) | {"test:key-2"}
    assert _verify(recorder).ok


def test_repair_never_recreates_an_older_deleted_configmap(signer: MemorySigner) -> None:
    """Only a chain head can be missing after a crash; an older gap is tampering, and
    repairing it would hide it from verify."""
    log, store = MemoryLog(), FlakyStore()
    rec = Recorder(signer, log, store, "t", clock=Clock())
    rec.record(promotion_event(n=1))
    rec.record(promotion_event(n=2))
    del store.packets["stella-evidence-env-prod-0000000001"]
    assert rec.repair() == []
    assert not _verify(rec).ok
