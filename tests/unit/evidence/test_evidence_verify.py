"""verify() names each broken item: signatures, chains, and the two stores disagreeing."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime

from evidence_fakes import Clock, MemorySigner, promotion_event

from stella.evidence.canonical import canonical_json
from stella.evidence.dsse import parse_envelope, sign_envelope
from stella.evidence.event import EvidenceEvent
from stella.evidence.recorder import Recorder
from stella.evidence.records import StoredPacket
from stella.evidence.store_memory import MemoryLog, MemoryStore
from stella.evidence.verify import verify


def _world(n: int = 5) -> tuple[Recorder, MemoryLog, MemoryStore]:
    log, store = MemoryLog(), MemoryStore()
    rec = Recorder(MemorySigner(), log, store, "t", clock=Clock())
    for i in range(1, n + 1):
        rec.record(promotion_event(n=i))
    return rec, log, store


def run(store: MemoryStore, log: MemoryLog, **kw):  # type: ignore[no-untyped-def]
    return verify(store.list(), log.entries(), store.published_keys(), **kw)


def codes(report) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.code for f in report.findings}


CM3 = "ConfigMap stella-evidence-env-prod-0000000003"


def test_clean() -> None:
    _, log, store = _world()
    report = run(store, log)
    assert report.ok and report.configmaps == 5 and report.log_entries == 5
    assert report.signatures == 5  # identical envelopes are verified once
    assert "OK" in report.summary()


def test_deleted_configmap_is_named() -> None:
    _, log, store = _world()
    del store.packets["stella-evidence-env-prod-0000000003"]
    report = run(store, log)
    assert {"configmap-missing", "chain-gap"} <= codes(report)
    assert any(f.item == CM3 and f.code == "configmap-missing" for f in report.findings)


def test_recreated_configmap_with_altered_content_is_named() -> None:
    _rec, log, store = _world()
    name = "stella-evidence-env-prod-0000000003"
    env = parse_envelope(store.packets[name].envelope_json)
    doc = json.loads(env.payload_bytes())
    doc["predicate"]["approvals"][0]["approver"] = "mallory@example.com"
    forged = env.model_copy(update={"payload": base64.b64encode(canonical_json(doc)).decode()})
    store.packets[name] = replace(store.packets[name], envelope_json=forged.canonical().decode())
    report = run(store, log)
    assert {"signature-invalid", "stores-disagree", "chain-broken-link"} <= codes(report)
    assert {f.item for f in report.findings} >= {CM3}


def test_rogue_key_is_refused() -> None:
    _rec, log, store = _world()
    name = "stella-evidence-env-prod-0000000003"
    env = parse_envelope(store.packets[name].envelope_json)
    rogue = sign_envelope(env.payload_bytes(), MemorySigner("rogue"))
    store.packets[name] = replace(store.packets[name], envelope_json=rogue.canonical().decode())
    report = run(store, log)
    sig = [f for f in report.findings if f.code == "signature-invalid"]
    assert sig and sig[0].item == CM3 and "rogue" in sig[0].message


def test_rogue_key_published_but_not_pinned() -> None:
    _rec, log, store = _world(2)
    pinned = dict(store.published_keys())
    rogue = MemorySigner("rogue")
    store.publish_keys(rogue.public_keys())
    name = "stella-evidence-env-prod-0000000002"
    env = parse_envelope(store.packets[name].envelope_json)
    store.packets[name] = replace(
        store.packets[name],
        envelope_json=sign_envelope(env.payload_bytes(), rogue).canonical().decode(),
    )
    report = verify(store.list(), log.entries(), store.published_keys(), trusted_keys=pinned)
    assert "untrusted-key" in codes(report)


def _forge_with(store: MemoryStore, key: MemorySigner, seq: int = 2) -> None:
    name = f"stella-evidence-env-prod-{seq:010d}"
    env = parse_envelope(store.packets[name].envelope_json)
    store.packets[name] = replace(
        store.packets[name],
        envelope_json=sign_envelope(env.payload_bytes(), key).canonical().decode(),
    )


def test_a_key_republished_under_a_pinned_id_is_caught() -> None:
    """Pinning is by the key, not its id: whoever can write the key ConfigMap can publish
    their own key under the operator's key id, and must not pass a pinned verify."""
    _rec, log, store = _world(2)
    pinned = dict(store.published_keys())
    (real_id,) = pinned
    impostor = MemorySigner(real_id)
    store.keys = impostor.public_keys()  # the attacker rewrites the published keys
    _forge_with(store, impostor)
    report = verify(store.list(), log.entries(), store.published_keys(), trusted_keys=pinned)
    untrusted = [f for f in report.findings if f.code == "untrusted-key"]
    assert untrusted and "the published key was replaced?" in untrusted[0].message


def test_pinned_keys_match_by_key_whatever_their_names() -> None:
    """`keys --out-dir` writes `transit_stella_v1.pem` for id `transit/stella:v1`; a pinned
    key is the same key under any name."""
    _rec, log, store = _world(2)
    (pem,) = store.published_keys().values()
    report = verify(
        store.list(), log.entries(), store.published_keys(), trusted_keys={"any-name": pem}
    )
    assert report.ok, report.findings
    other = MemorySigner("other").public_key_pem()
    report = verify(store.list(), log.entries(), store.published_keys(), trusted_keys={"x": other})
    assert "untrusted-key" in codes(report)
    assert "which is not one of the pinned keys" in report.findings[0].message


def test_log_row_removed_or_inserted() -> None:
    _rec, log, store = _world()
    removed = log.rows.pop(2)
    report = run(store, log)
    assert {"log-entry-missing", "chain-gap"} <= codes(report)
    log.rows.insert(2, removed)
    assert run(store, log).ok
    forged = replace(removed, row=99, envelope={**removed.envelope, "payload": "e30="})
    log.rows.append(forged)
    report = run(store, log)
    assert "duplicate-log-entry" in codes(report)


def test_log_column_tampering() -> None:
    _, log, store = _world()
    log.rows[1] = replace(log.rows[1], digest="sha256:" + "0" * 64)
    assert "log-column-mismatch" in codes(run(store, log))


def test_forged_configmap_not_in_log() -> None:
    rec, log, store = _world(2)
    extra = rec.record(promotion_event(n=3))
    # remove its log row: the ConfigMap alone is not enough
    log.rows = [r for r in log.rows if r.packet_id != extra.packet_id]
    report = run(store, log)
    assert any(
        f.code == "log-entry-missing" and f.item.endswith("0000000003") for f in report.findings
    )


def test_labels_and_names_must_match_content() -> None:
    _, log, store = _world(2)
    name = "stella-evidence-env-prod-0000000002"
    cm = store.packets[name]
    store.packets[name] = replace(cm, labels={**cm.labels, "stella.io/release": "other"})
    assert "label-mismatch" in codes(run(store, log))
    store.packets[name] = cm
    moved = StoredPacket(
        name="stella-evidence-env-prod-0000000009",
        envelope_json=cm.envelope_json,
        labels=cm.labels,
    )
    store.packets[moved.name] = moved
    assert "configmap-name-mismatch" in codes(run(store, log))


def test_malformed_envelope() -> None:
    _, log, store = _world(1)
    store.packets["stella-evidence-env-prod-0000000001"] = replace(
        store.packets["stella-evidence-env-prod-0000000001"], envelope_json="{not json"
    )
    report = run(store, log)
    assert "malformed" in codes(report)


def test_environment_and_since_filters() -> None:
    rec, log, store = _world(3)
    rec.record(promotion_event(env="dev", n=1))
    assert run(store, log, environment="dev").heads == {"dev": 1}
    # the window starts after packet 1: a missing packet 1 is not a gap of the window
    cutoff = datetime(2026, 3, 1, 12, 0, 2, tzinfo=UTC)
    del store.packets["stella-evidence-env-prod-0000000001"]
    log.rows = [r for r in log.rows if not (r.chain == "prod" and r.sequence == 1)]
    assert not run(store, log).ok
    report = run(store, log, since=cutoff)
    assert report.ok, report.findings


def test_a_pinned_private_key_or_junk_is_named_not_parsed_or_echoed() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from stella.evidence.errors import MalformedPacket
    from stella.evidence.keys import load_public_key

    private = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    for text, says in (
        (private, "a private key, not a public key"),
        ("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", "not a PEM"),
        ("{}", "not a PEM public key"),
    ):
        try:
            load_public_key(text)
        except MalformedPacket as exc:
            assert exc.message.startswith(says)
            assert "MII" not in exc.message and "Could not deserialize" not in exc.message
        else:
            raise AssertionError(f"{text[:20]!r} loaded")


def test_a_long_service_account_is_recorded_whole_and_verifies() -> None:
    """A service account's username reaches 339 characters, past the 253 evidence once
    held: recording it failed, and with it the promotion. Both verify paths (the plain one
    and the model) read it back whole."""
    account = "system:serviceaccount:ci:" + "d" * 253
    wire = promotion_event().model_dump()
    wire["actor"] = account
    wire["approvals"][0].update(approver=account, groups=[account])
    log, store = MemoryLog(), MemoryStore()
    rec = Recorder(MemorySigner(), log, store, "t", clock=Clock())
    rec.record(EvidenceEvent.model_validate(wire))  # the engine's event, validated
    report = run(store, log)
    assert report.ok, report.findings
    payload = json.loads(base64.b64decode(log.entries()[0].envelope["payload"]))
    assert payload["predicate"]["actor"] == account
    assert payload["predicate"]["approvals"][0]["approver"] == account
