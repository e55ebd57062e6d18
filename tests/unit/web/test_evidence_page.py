"""The evidence page: signatures and chains checked, the log left to the CLI, exports bounded."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from evidence_fakes import Clock, MemorySigner, promotion_event

from stella.evidence.recorder import Recorder
from stella.evidence.store_memory import MemoryLog, MemoryStore
from stella.evidence.verify import verify
from stella.web import evidence_pages
from stella.web.evidence import (
    EXPORT_FORMAT,
    TooLarge,
    check,
    export_document,
    of_release,
    predicates,
)


def world(n: int = 3) -> MemoryStore:
    store = MemoryStore()
    rec = Recorder(MemorySigner(), MemoryLog(), store, "t", clock=Clock())
    for i in range(1, n + 1):
        rec.record(promotion_event(n=i))
    return store


def test_a_clean_chain_verifies_without_the_log() -> None:
    store = world()
    checked = check(store.published_keys(), store.list())
    assert checked.ok and checked.signatures == 3
    [(chain, rows)] = checked.chains.items()
    assert [r.sequence for r in rows] == [1, 2, 3]
    html = evidence_pages.evidence_page(checked, "stella-system")
    assert 'id="verified"' in html and "Verified: 3 signatures" in html
    assert "stella evidence verify" in html  # says what it did not check
    assert f"/evidence/export?chain={chain}" in html


def test_an_altered_packet_fails_and_is_named() -> None:
    store = world()
    name = sorted(store.packets)[1]
    tampered = store.packets[name]
    store.packets[name] = replace(
        tampered, envelope_json=tampered.envelope_json.replace("a", "b", 1)
    )
    checked = check(store.published_keys(), store.list())
    assert not checked.ok
    html = evidence_pages.evidence_page(checked, "stella-system")
    assert "Verification FAILED" in html and name in html


def test_export_is_one_chain_and_refused_beyond_the_limit() -> None:
    store = world()
    keys, packets = store.published_keys(), store.list()
    body = export_document(keys, packets, "ns", None, 10_000_000)
    doc = json.loads(body)
    assert doc["format"] == EXPORT_FORMAT and len(doc["configMaps"]) == 3 and doc["keys"] == keys
    assert json.loads(export_document(keys, packets, "ns", "nope", 10_000_000))["configMaps"] == []
    with pytest.raises(TooLarge) as refused:
        export_document(keys, packets, "ns", None, len(body) - 1)
    assert refused.value.size == len(body) and "more than" in str(refused.value)
    assert "Export one chain" in evidence_pages.too_large_page(str(refused.value))


def test_a_releases_page_lists_its_own_packets_each_with_its_verification() -> None:
    store = MemoryStore()
    rec = Recorder(MemorySigner(), MemoryLog(), store, "t", clock=Clock())
    for n in (1, 2):
        rec.record(promotion_event(n=n))
        rec.record(promotion_event(n=n, kind="PromotionDeployed"))
    checked = check(store.published_keys(), store.list())
    mine = of_release(checked, "shop", "shop-2")
    assert [(e.row.sequence, e.row.kind) for e in mine] == [
        (3, "PromotionAuthorized"),
        (4, "PromotionDeployed"),
    ]
    html = evidence_pages.release_evidence(mine)
    assert "All 2 packets verify" in html and html.count("verified</span>") == 2

    name = mine[1].row.name  # alter shop-2's outcome packet: it alone fails
    packet = store.packets[name]
    store.packets[name] = replace(packet, envelope_json=packet.envelope_json.replace("a", "b", 1))
    checked = check(store.published_keys(), store.list())
    mine = of_release(checked, "shop", "shop-2")
    assert not mine[0].findings and mine[1].findings
    html = evidence_pages.release_evidence(mine)
    assert "1 of 2 packets do not verify" in html and "FAILED" in html
    assert of_release(checked, "shop", "shop-1")[0].findings == ()

    assert "auditor" in evidence_pages.release_evidence(None)
    assert "No evidence yet" in evidence_pages.release_evidence([])


def test_dora_figures_come_only_from_evidence_that_verifies() -> None:
    from datetime import UTC, datetime

    from stella.evidence.dora import dora

    store = world()
    checked = check(store.published_keys(), store.list())
    rows = dora(predicates(checked.packets), now=datetime.now(UTC))
    assert rows == [] or all(r.environment == "prod" for r in rows)
    html = evidence_pages.dora_page(checked, rows, "stella-system")
    assert "dora-refused" not in html and "verified" in html

    name = sorted(store.packets)[0]
    packet = store.packets[name]
    store.packets[name] = replace(packet, envelope_json=packet.envelope_json.replace("a", "b", 1))
    bad = check(store.published_keys(), store.list())
    html = evidence_pages.dora_page(bad, rows, "stella-system")
    assert 'id="dora-refused"' in html and "<svg" not in html


def test_the_same_bytes_are_verified_once_and_a_changed_byte_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stella.web import evidence as web_evidence

    calls: list[int] = []
    real = verify  # what stella.web.evidence imports

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(web_evidence, "verify", counting)
    store = world(n=4)
    first = check(store.published_keys(), store.list())
    again = check(store.published_keys(), store.list())  # another page view, same bytes
    assert first.ok and again.ok and again.signatures == first.signatures
    assert len(calls) == 1
    name = sorted(store.packets)[2]
    packet = store.packets[name]
    store.packets[name] = replace(packet, envelope_json=packet.envelope_json.replace("a", "b", 1))
    tampered = check(store.published_keys(), store.list())
    assert len(calls) == 2 and not tampered.ok
    assert any(name in f.item for f in tampered.findings)
