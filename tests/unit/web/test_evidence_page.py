"""The evidence page: signatures and chains checked, the log left to the CLI, exports bounded."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from evidence_fakes import Clock, MemorySigner, promotion_event

from stella.evidence.recorder import Recorder
from stella.evidence.store_memory import MemoryLog, MemoryStore
from stella.web import pages
from stella.web.evidence import EXPORT_FORMAT, TooLarge, check, export_document


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
    html = pages.evidence_page(checked, "stella-system")
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
    html = pages.evidence_page(checked, "stella-system")
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
    assert "Export one chain" in pages.too_large_page(str(refused.value))
