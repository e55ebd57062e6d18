"""verify's fast canonical check gives is_canonical's verdict on any bytes."""

from __future__ import annotations

import base64
import contextlib
import json
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from test_evidence_verify import _world

from stella.evidence.canonical import canonical_json, is_canonical
from stella.evidence.dsse import parse_envelope
from stella.evidence.verify import verify
from stella.evidence.verify_envelope import _canonical

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def spellings(value: object) -> list[bytes]:
    """The canonical bytes and near misses: spaces, unsorted keys, escaped non-ASCII."""
    out = [json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")]
    out.append(json.dumps(value).encode())
    out.append(
        json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
    )
    with contextlib.suppress(ValueError):  # NaN, lone surrogates: no canonical form
        out.append(canonical_json(value))
    return out


@settings(max_examples=400, deadline=None)
@given(values)
def test_same_verdict_as_is_canonical(value: object) -> None:
    for raw in spellings(value):
        assert _canonical(raw) == is_canonical(raw), raw


@given(st.binary(max_size=64))
def test_same_verdict_on_junk(raw: bytes) -> None:
    assert _canonical(raw) == is_canonical(raw)


def test_known_cases() -> None:
    assert _canonical(b'{"a":1,"b":[true,null,"\xc3\xa9"]}')
    assert not _canonical(b'{"b":1,"a":2}')  # unsorted
    assert not _canonical(b'{"a": 1}')  # whitespace
    assert not _canonical(b'{"a":1,"a":1}')  # a duplicate key
    assert not _canonical(b'{"a":NaN}')
    assert not _canonical(b'"\\u00e9"')  # escaped where canonical JSON keeps UTF-8
    assert not _canonical(b"[" * 100_000 + b"]" * 100_000)  # too deep: not a crash


def test_a_payload_nested_too_deep_is_a_finding_not_a_crash() -> None:
    _, log, store = _world(2)
    name = "stella-evidence-env-prod-0000000002"
    env = parse_envelope(store.packets[name].envelope_json)
    deep = base64.b64encode(b"[" * 100_000 + b"]" * 100_000).decode()
    store.packets[name] = replace(
        store.packets[name],
        envelope_json=env.model_copy(update={"payload": deep}).canonical().decode(),
    )
    report = verify(store.list(), log.entries(), store.published_keys())
    item = f"ConfigMap {name}"
    assert {f.code for f in report.findings if f.item == item} >= {"non-canonical", "malformed"}
