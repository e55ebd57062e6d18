"""`verify --environment E` reports E's problems only: another chain's forged ConfigMap is
that chain's finding, not E's (found when the e2e tier tampered with staging and dev
failed too)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

from evidence_fakes import Clock, MemorySigner, promotion_event

from stella.evidence.canonical import canonical_json
from stella.evidence.dsse import parse_envelope
from stella.evidence.recorder import Recorder
from stella.evidence.records import StoredPacket
from stella.evidence.store_memory import MemoryLog, MemoryStore
from stella.evidence.verify import Report, verify


def _forge(store: MemoryStore, name: str) -> None:
    env = parse_envelope(store.packets[name].envelope_json)
    doc = json.loads(env.payload_bytes())
    doc["predicate"]["actor"] = "mallory"
    forged = env.model_copy(update={"payload": base64.b64encode(canonical_json(doc)).decode()})
    store.packets[name] = replace(store.packets[name], envelope_json=forged.canonical().decode())


def test_other_chains_forgery_is_not_this_chains_finding() -> None:
    log, store = MemoryLog(), MemoryStore()
    rec = Recorder(MemorySigner(), log, store, "t", clock=Clock())
    for n in (1, 2):
        rec.record(promotion_event(env="dev", n=n))
        rec.record(promotion_event(env="staging", n=n))
    _forge(store, "stella-evidence-env-staging-0000000002")
    store.packets["stella-evidence-env-staging-0000000003"] = StoredPacket(
        name="stella-evidence-env-staging-0000000003",
        envelope_json="{not json",
        labels={"stella.io/evidence": "packet", "stella.io/environment": "staging"},
    )

    def run(**kw: Any) -> Report:
        return verify(store.list(), log.entries(), store.published_keys(), **kw)

    everything = run()
    assert {f.item for f in everything.findings} >= {
        "ConfigMap stella-evidence-env-staging-0000000002",
        "ConfigMap stella-evidence-env-staging-0000000003",
    }
    dev = run(environment="dev")
    assert dev.ok, dev.findings
    assert dev.signatures == 2 and dev.configmaps == 2
    staging = run(environment="staging")
    assert {f.code for f in staging.findings} >= {"signature-invalid", "malformed"}
