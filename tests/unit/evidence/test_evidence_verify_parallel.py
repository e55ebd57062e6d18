"""verify(jobs=N) reports exactly what verify(jobs=1) reports, item for item.

The envelopes are analysed batch by batch, in threads of this process or in worker
processes (verify_parallel.layout_for); every finding must still land on the item it is
about. Each test runs in both layouts. The threshold below which no worker starts is
lowered here so that 60 packets make 8 batches (real threads or a real pool, real fork,
real signatures): a tampered packet sits in the middle of one, with clean neighbours on
both sides.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import random
import signal
from dataclasses import replace

import pytest
from evidence_fakes import Clock, MemorySigner, promotion_event

from stella.cli import main
from stella.evidence import verify_parallel
from stella.evidence.canonical import canonical_json, sha256_digest
from stella.evidence.dsse import Envelope, parse_envelope, sign_envelope
from stella.evidence.findings import Finding
from stella.evidence.keys import KeyRing
from stella.evidence.recorder import Recorder
from stella.evidence.records import LogEntry, StoredPacket
from stella.evidence.store_memory import MemoryLog, MemoryStore
from stella.evidence.verify import Report, verify
from stella.evidence.verify_envelope import envelope_key
from stella.evidence.verify_parallel import Analyses, WorkerLost

PER_CHAIN = 30  # prod and staging: 60 packets, 120 stored items


class World:
    def __init__(self) -> None:
        self.signer = MemorySigner()
        self.log, self.store = MemoryLog(), MemoryStore()
        rec = Recorder(self.signer, self.log, self.store, "t", clock=Clock())
        for n in range(1, PER_CHAIN + 1):
            for env in ("prod", "staging"):
                rec.record(promotion_event(env=env, n=n))
        self.keys = self.store.published_keys()

    def cm_name(self, seq: int) -> str:
        return f"stella-evidence-env-prod-{seq:010d}"

    def envelope(self, seq: int) -> Envelope:
        return parse_envelope(self.store.packets[self.cm_name(seq)].envelope_json)

    def log_row(self, seq: int) -> int:
        return next(
            i for i, e in enumerate(self.log.rows) if (e.chain, e.sequence) == ("prod", seq)
        )

    def log_item(self, seq: int) -> str:
        return f"log prod#{seq} (row {self.log.rows[self.log_row(seq)].row})"

    def put(self, seq: int, env: Envelope, *, log: bool = True, **columns: object) -> None:
        """Store a (tampered) envelope at prod#seq, in the ConfigMap and, if log, the log."""
        name = self.cm_name(seq)
        cm = self.store.packets[name]
        self.store.packets[name] = replace(cm, envelope_json=env.canonical().decode())
        if log:
            i = self.log_row(seq)
            entry: LogEntry = replace(self.log.rows[i], envelope=env.to_dict())
            self.log.rows[i] = replace(entry, **columns)  # type: ignore[arg-type]


# How verify(jobs=2) analyses: (processes, threads), and the THREADS_MAX that makes it so.
LAYOUTS = {"threads": ((1, 2), 2), "processes": ((2, 1), 1)}


@pytest.fixture(params=sorted(LAYOUTS))
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    expected, threads_max = LAYOUTS[request.param]
    monkeypatch.setattr(verify_parallel, "PARALLEL_MIN", 10)
    monkeypatch.setattr(verify_parallel, "THREADS_MAX", threads_max)
    return expected


@pytest.fixture
def world(layout: tuple[int, int]) -> World:
    return World()


def both(
    configmaps: list[StoredPacket], entries: list[LogEntry], keys: dict[str, str], **kw: object
) -> Report:
    """Verify in this thread alone and with jobs=2 (threads or processes, as the layout
    fixture set it); everything reported must be identical."""
    one = verify(configmaps, entries, keys, jobs=1, **kw)  # type: ignore[arg-type]
    two = verify(configmaps, entries, keys, jobs=2, **kw)  # type: ignore[arg-type]
    assert (one.processes, one.threads) == (1, 1)
    assert (two.processes, two.threads) == verify_parallel.layout_for(len(configmaps), 2)
    assert max(two.processes, two.threads) == 2  # the workers really ran
    assert two.findings == one.findings
    assert (two.configmaps, two.log_entries, two.signatures, two.heads) == (
        one.configmaps,
        one.log_entries,
        one.signatures,
        one.heads,
    )
    return two


def items(report: Report, code: str) -> set[str]:
    return {f.item for f in report.findings if f.code == code}


def test_clean_world_in_parallel(world: World) -> None:
    report = both(world.store.list(), world.log.entries(), world.keys)
    assert report.ok and report.signatures == 2 * PER_CHAIN
    assert report.heads == {"prod": PER_CHAIN, "staging": PER_CHAIN}


def test_a_flipped_signature_mid_batch_is_named_on_its_own_items(world: World) -> None:
    env = world.envelope(12)
    der = bytearray(base64.b64decode(env.signatures[0].sig))
    der[len(der) // 2] ^= 0x01
    flipped = env.model_copy(
        update={
            "signatures": [
                env.signatures[0].model_copy(update={"sig": base64.b64encode(der).decode()})
            ]
        }
    )
    world.put(12, flipped)
    report = both(world.store.list(), world.log.entries(), world.keys)
    assert items(report, "signature-invalid") == {
        f"ConfigMap {world.cm_name(12)}",
        world.log_item(12),
    }
    assert {f.code for f in report.findings} == {"signature-invalid"}
    assert report.signatures == 2 * PER_CHAIN - 1


def test_a_broken_chain_link_is_named_on_both_sides_of_it(world: World) -> None:
    """prod#7 re-signed (a valid signature) naming another previous packet: #7 no longer
    links to #6, and #8, which names #7's old digest, no longer links to #7."""
    doc = json.loads(world.envelope(7).payload_bytes())
    doc["predicate"]["previousDigest"] = "sha256:" + "0" * 64
    payload = canonical_json(doc)
    world.put(
        7,
        sign_envelope(payload, world.signer),
        digest=sha256_digest(payload),
        previous_digest=doc["predicate"]["previousDigest"],
    )
    report = both(world.store.list(), world.log.entries(), world.keys)
    assert items(report, "chain-broken-link") == {
        f"ConfigMap {world.cm_name(7)}",
        f"ConfigMap {world.cm_name(8)}",
        world.log_item(7),
        world.log_item(8),
    }
    assert {f.code for f in report.findings} == {"chain-broken-link"}


def test_reordered_packets_are_named_whatever_order_the_stores_are_read_in(
    world: World,
) -> None:
    """prod#4 and prod#5 swap ConfigMaps; the stores are then read in a shuffled order."""
    four, five = world.envelope(4), world.envelope(5)
    world.put(4, five, log=False)
    world.put(5, four, log=False)
    configmaps, entries = world.store.list(), world.log.entries()
    in_order = both(configmaps, entries, world.keys)
    random.Random(12).shuffle(configmaps)
    random.Random(13).shuffle(entries)
    shuffled = both(configmaps, entries, world.keys)
    assert shuffled.findings == in_order.findings
    swapped = {f"ConfigMap {world.cm_name(4)}", f"ConfigMap {world.cm_name(5)}"}
    for code in ("configmap-name-mismatch", "label-mismatch", "stores-disagree"):
        assert items(shuffled, code) == swapped, code
    assert {f.code for f in shuffled.findings} == {
        "configmap-name-mismatch",
        "label-mismatch",
        "stores-disagree",
    }


def test_a_packet_resigned_under_a_foreign_key_is_untrusted_not_invalid(world: World) -> None:
    pinned = dict(world.keys)
    foreign = MemorySigner("foreign")
    world.store.publish_keys(foreign.public_keys())
    world.put(20, sign_envelope(world.envelope(20).payload_bytes(), foreign))
    report = both(
        world.store.list(), world.log.entries(), world.store.published_keys(), trusted_keys=pinned
    )
    assert items(report, "untrusted-key") == {f"ConfigMap {world.cm_name(20)}", world.log_item(20)}
    assert {f.code for f in report.findings} == {"untrusted-key"}
    assert all("'foreign'" in f.message for f in report.findings)


def test_every_tamper_at_once_each_on_its_item(world: World) -> None:
    """Many findings in many batches, with an environment filter: still the same list."""
    world.put(3, sign_envelope(world.envelope(3).payload_bytes(), MemorySigner("rogue")))
    del world.store.packets[world.cm_name(17)]
    world.log.rows.pop(world.log_row(25))
    for env in (None, "prod", "staging"):
        report = both(world.store.list(), world.log.entries(), world.keys, environment=env)
        if env == "staging":
            assert report.ok
            continue
        assert (
            Finding(
                "signature-invalid",
                f"ConfigMap {world.cm_name(3)}",
                "key 'rogue' is not a published evidence key",
            )
            in report.findings
        )
        assert f"ConfigMap {world.cm_name(17)}" in items(report, "configmap-missing")
        assert f"ConfigMap {world.cm_name(25)}" in items(report, "log-entry-missing")


def test_small_inputs_start_no_workers() -> None:
    """Below PARALLEL_MIN envelopes, jobs=4 still runs in this thread alone."""
    w = World()
    for jobs in (2, 4):
        report = verify(w.store.list(), w.log.entries(), w.keys, jobs=jobs)
        assert report.ok and (report.processes, report.threads) == (1, 1)


def test_the_layout_one_thread_for_few_packets_or_one_job_else_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    many = verify_parallel.PARALLEL_MIN
    assert verify_parallel.layout_for(many, 2) == (2, 1)  # as measured (THREADS_MAX)
    monkeypatch.setattr(verify_parallel, "THREADS_MAX", 2)  # the knob, as the bench turns it
    assert verify_parallel.layout_for(many, 1) == (1, 1)
    assert verify_parallel.layout_for(many - 1, 8) == (1, 1)
    assert verify_parallel.layout_for(many, verify_parallel.THREADS_MAX) == (
        1,
        verify_parallel.THREADS_MAX,
    )
    assert verify_parallel.layout_for(many, verify_parallel.THREADS_MAX + 1) == (
        verify_parallel.THREADS_MAX + 1,
        1,
    )


@pytest.mark.parametrize("jobs", ["0", "-2", "two"])
def test_cli_refuses_a_bad_jobs_count(jobs: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["evidence", "verify", "--bundle", "b.json", "--jobs", jobs])
    assert exit_.value.code == 2
    assert "--jobs wants a whole number of cores, 1 or more" in capsys.readouterr().err


def test_a_worker_that_dies_stops_verify_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No hang and no report: a killed worker's batch is never taken for analysed."""
    monkeypatch.setattr(verify_parallel, "PARALLEL_MIN", 10)
    monkeypatch.setattr(verify_parallel, "THREADS_MAX", 1)  # processes for 2 jobs
    world = World()
    keys = [k for cm in world.store.list() if (k := envelope_key(cm.envelope_json).key)]
    with Analyses(KeyRing(world.keys), None, 2, expected=len(keys)) as analyses:
        for key in keys[:10]:  # the first batch starts the workers
            analyses.add(key)
        workers = multiprocessing.active_children()
        assert len(workers) == 2
        os.kill(workers[0].pid or 0, signal.SIGKILL)
        workers[0].join()
        with pytest.raises(WorkerLost, match="run verify again, or with --jobs 1"):
            for key in keys[10:]:
                analyses.add(key)
            analyses.get(len(keys) - 1)


def test_tampered_reordered_missing_and_duplicated_packets_at_once(world: World) -> None:
    """One store with every kind of damage, read in two orders: --jobs 2 reports exactly
    what --jobs 1 does, in threads and in processes. The analyses come back by position;
    a wrong position would put a finding on the wrong item or lose one."""
    doc = json.loads(world.envelope(9).payload_bytes())
    doc["predicate"]["eventId"] = "forged"
    tampered = world.envelope(9).model_copy(
        update={"payload": base64.b64encode(canonical_json(doc)).decode()}
    )
    world.put(9, tampered)  # altered, not re-signed: in both stores
    four, five = world.envelope(4), world.envelope(5)
    world.put(4, five, log=False)  # prod#4 and #5 swap ConfigMaps
    world.put(5, four, log=False)
    del world.store.packets[world.cm_name(17)]  # a ConfigMap deleted
    world.log.rows.pop(world.log_row(25))  # a log row deleted
    world.log.rows.append(world.log.rows[world.log_row(2)])  # a log entry stored twice
    copy = world.store.packets[world.cm_name(28)]
    world.store.packets["stella-evidence-env-prod-copy"] = replace(copy, name="copy")
    spaced = world.store.packets[world.cm_name(11)]  # same envelope, other JSON spelling
    world.store.packets[world.cm_name(11)] = replace(
        spaced, envelope_json=json.dumps(json.loads(spaced.envelope_json), indent=1)
    )
    configmaps, entries = world.store.list(), world.log.entries()
    in_order = both(configmaps, entries, world.keys)
    random.Random(5).shuffle(configmaps)
    random.Random(6).shuffle(entries)
    shuffled = both(configmaps, entries, world.keys)
    # Which of two copies of a packet is "also stored as" the other depends on the order
    # the stores were read in (by name and by row, in real stores), not on the processes.
    codes = {f.code for f in shuffled.findings}
    assert codes == {f.code for f in in_order.findings}
    assert {
        "signature-invalid",
        "packet-id-mismatch",
        "configmap-name-mismatch",
        "stores-disagree",
        "configmap-missing",
        "log-entry-missing",
        "duplicate-log-entry",
        "duplicate-packet",
    } <= codes, codes
    assert f"ConfigMap {world.cm_name(11)}" not in {f.item for f in shuffled.findings}
    # Each distinct envelope counted once: the duplicates and the re-spelled one are not
    # new, the tampered one does not verify, #17's still verifies from its log entry.
    assert shuffled.signatures == 2 * PER_CHAIN - 1
