"""verify's plain path (no pydantic model per packet) finds exactly what the model finds.

Every statement below, valid or mutated, is analysed twice: with the plain path, and with
it switched off (``plain_facts`` answering None, so every payload goes through
``is_canonical`` and the Statement model, as before the plain path existed). The two
analyses must be equal: the same findings (code and message), digest, key and facts.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import types
import typing
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from unittest import mock

import orjson
import pytest
from evidence_fakes import Clock, MemorySigner, promotion_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field, JsonValue, ValidationError, create_model, field_validator

from stella.evidence import verify_envelope
from stella.evidence.canonical import canonical_json
from stella.evidence.dsse import pae
from stella.evidence.event import EvidenceEvent
from stella.evidence.keys import KeyRing
from stella.evidence.packet import (
    PAYLOAD_TYPE,
    AgentRef,
    ApplicationEvidence,
    CheckEvidence,
    Outcome,
    OverrideChange,
    UtcSeconds,
)
from stella.evidence.plain_checks import UnsupportedModel, plain_check
from stella.evidence.recorder import Recorder
from stella.evidence.store_memory import MemoryLog, MemoryStore
from stella.evidence.verify_envelope import Analyser, Analysis
from stella.evidence.verify_facts import plain_facts
from stella.models.common import StrictModel

SIGNER = MemorySigner("test:plain")
RING = KeyRing(SIGNER.public_keys())


def _statements() -> list[dict[str, Any]]:
    """What the recorder writes: a promotion, an agent event (the cluster chain), and an
    outcome with every optional part (Argo CD changes, verification checks)."""
    log, store = MemoryLog(), MemoryStore()
    rec = Recorder(SIGNER, log, store, "t", clock=Clock())
    rec.record(promotion_event(n=1))
    rec.record(promotion_event(n=2, kind="PromotionDeployed"))
    rec.record(
        EvidenceEvent(
            kind="AgentRegistered",
            event_id="agent-1/registered",
            subjects=[],
            agent=AgentRef(name="edge-1", fingerprint="c" * 64, capabilities=["deploy"]),
            actor="alice@example.com",
        )
    )
    rec.record(
        promotion_event(n=3, kind="PromotionFailed").model_copy(
            update={
                "outcome": Outcome(
                    result="Failed",
                    reason="VerificationFailed",
                    message="error rate 7% > 5%",
                    applications=[
                        ApplicationEvidence(
                            namespace="argocd",
                            name="shop",
                            changes=[OverrideChange(component="web", after="web@sha256:x")],
                            revision="abc123",
                        )
                    ],
                    verification_started_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
                    checks=[CheckEvidence(name="errors", state="Failed", samples=3)],
                )
            }
        )
    )
    return [json.loads(base64.b64decode(entry.envelope["payload"])) for entry in log.entries()]


STATEMENTS = _statements()


def _analyse(payload: bytes, *, plain: bool) -> Analysis:
    sig = base64.b64encode(SIGNER.sign(pae(PAYLOAD_TYPE, payload))).decode()
    key = (base64.b64encode(payload).decode(), PAYLOAD_TYPE, ((SIGNER.key_id, sig),))
    if plain:
        return Analyser(RING, None).analyse(key)
    with mock.patch.object(verify_envelope, "plain_facts", lambda _payload: None):
        return Analyser(RING, None).analyse(key)


def _same(payload: bytes) -> Analysis:
    fast, slow = _analyse(payload, plain=True), _analyse(payload, plain=False)
    assert fast == slow, payload
    return fast


def test_what_the_recorder_writes_takes_the_plain_path() -> None:
    """So a change to the models that quietly sends every packet the slow way fails here."""
    for doc in STATEMENTS:
        payload = canonical_json(doc)
        assert plain_facts(payload) is not None, doc["predicate"]["kind"]
        assert _same(payload).problems == ()


def _paths(value: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield here
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*here, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*here, i))


REPLACEMENTS: list[Any] = [
    None,
    "",
    "x" * 63,
    "x" * 64,
    "x" * 65,
    "x" * 254,
    "x" * 513,
    "x" * 1025,
    "é",
    0,
    -1,
    1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    1.0,
    1.5,
    True,
    False,
    [],
    {},
    [1, "a"],
    {"a": {"b": [None]}},
    "2026-03-01T12:00:00Z",
    "2026-03-01T12:00:00+01:00",
    "2026-03-01T12:00:00",
    "2026-03-01T12:00:00.5Z",
    "2026-02-30T12:00:00Z",
    "2026-03-01T24:00:00Z",
    "2026-03-01 12:00:00Z",
    "0000-01-01T00:00:00Z",
    "sha256:" + "a" * 64,
    "sha256:" + "A" * 64,
    "a" * 64,
    "a" * 64 + "\n",
    "PromotionAuthorized",
    "Approve",
    "_cluster",
    "prod",
    "https://in-toto.io/Statement/v1",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    doc = copy.deepcopy(draw(st.sampled_from(STATEMENTS)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(doc))))
        if not path:
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        op = draw(st.sampled_from(["replace", "delete", "rename", "extra", "wrap"]))
        if op == "replace":
            parent[last] = copy.deepcopy(draw(st.sampled_from(REPLACEMENTS)))
        elif op == "delete" and isinstance(parent, dict):
            del parent[last]
        elif op == "rename" and isinstance(parent, dict):  # eventId -> event_id, or a typo
            new = "".join("_" + c.lower() if c.isupper() else c for c in str(last))
            parent[draw(st.sampled_from([new, str(last).upper(), str(last) + " "]))] = parent.pop(
                last
            )
        elif op == "extra" and isinstance(parent[last], dict):
            parent[last]["unexpected"] = copy.deepcopy(draw(st.sampled_from(REPLACEMENTS)))
        elif op == "wrap":
            parent[last] = [parent[last]]
    spelling = draw(st.sampled_from(["canonical", "canonical", "spaced", "unsorted", "dup"]))
    if spelling == "canonical":
        return canonical_json(doc)
    if spelling == "spaced":
        return json.dumps(doc, sort_keys=True).encode()
    if spelling == "unsorted":
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    raw = canonical_json(doc)  # a duplicate key: the first one wins nowhere
    return raw.replace(b'{"_type":', b'{"_type":"x","_type":', 1)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_statements_get_the_same_findings_either_way(payload: bytes) -> None:
    _same(payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"null",
        b"[]",
        b'{"a":NaN}',
        b"[" * 300 + b"]" * 300,
        b'{"_type":"\\ud800"}',
        b'{"_type":"\xff"}',
        canonical_json(STATEMENTS[0]) + b" ",
        canonical_json(STATEMENTS[0]).replace(b'"sequence":1', b'"sequence":1.0'),
        canonical_json(STATEMENTS[0]).replace(b'"sequence":1', b'"sequence":1e0'),
        canonical_json(STATEMENTS[0]).replace(b'"required":1', b'"required":1.5'),
        canonical_json(STATEMENTS[0]).replace(b'"required":1', b'"required":100000000000000000000'),
        canonical_json(STATEMENTS[0]).replace(b"alice", b"\\u0061lice"),
    ],
)
def test_odd_payloads_get_the_same_findings_either_way(payload: bytes) -> None:
    _same(payload)


no_floats = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(no_floats)
def test_orjson_writes_what_canonical_json_writes_without_floats(value: object) -> None:
    """What plain_facts relies on to take orjson's round trip for is_canonical's verdict."""
    assert orjson.dumps(value, option=orjson.OPT_SORT_KEYS) == canonical_json(value)


def test_a_model_with_a_validator_function_is_refused_at_compile() -> None:
    class Checked(StrictModel):
        name: str

        @field_validator("name")
        @classmethod
        def _upper(cls, value: str) -> str:
            return value.upper()

    with pytest.raises(UnsupportedModel, match="validator functions"):
        plain_check(Checked)


def test_an_unknown_constraint_is_refused_at_compile() -> None:
    class Bounded(StrictModel):
        n: Annotated[int, Field(gt=3)]

    with pytest.raises(UnsupportedModel, match="not supported"):
        plain_check(Bounded)


def test_the_compiled_check_says_yes_only_to_exact_json() -> None:
    class Small(StrictModel):
        event_id: Annotated[str, Field(min_length=1, max_length=4)]
        count: Annotated[int, Field(ge=1)] = 1
        at: datetime | None = None

    check = plain_check(Small)
    assert check({"eventId": "ab"})
    assert check({"eventId": "ab", "count": 2, "at": "2026-01-01T00:00:00Z"})
    assert not check({"event_id": "ab"})  # the model takes it (by name): left to the model
    assert not check({"eventId": "ab", "count": "2"})  # lax coercion: left to the model
    assert not check({"eventId": "ab", "count": True})
    assert not check({"eventId": "ab", "at": "2026-01-01T00:00:00+00:00"})
    assert not check({"eventId": ""})
    assert not check({"eventId": "abcde"})
    assert not check({"eventId": "ab", "other": 1})
    assert not check({})
    assert "def check(v0):" in check.source  # type: ignore[attr-defined]


STAMPS = [r for r in REPLACEMENTS if isinstance(r, str) and r[:2] in ("20", "00")]


@pytest.mark.parametrize("stamp", [*STAMPS, "2026-03-01T12:00:60Z", "2024-02-29T00:00:00Z"])
@pytest.mark.parametrize(
    "path",
    [
        ("predicate", "recordedAt"),
        ("predicate", "approvals", 0, "at"),
        ("predicate", "release", "createdAt"),
        ("predicate", "outcome", "verificationStartedAt"),
    ],
)
def test_every_timestamp_field_reads_a_stamp_as_the_model_does(
    path: tuple[Any, ...], stamp: str
) -> None:
    doc = copy.deepcopy(STATEMENTS[-1])  # the one with an outcome
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = stamp
    payload = canonical_json(doc)
    analysis = _same(payload)
    if stamp in ("2026-03-01T12:00:00Z", "2024-02-29T00:00:00Z"):
        assert plain_facts(payload) is not None and analysis.problems == ()
    invalid = ["2026-02-30T12:00:00Z", "2026-03-01T12:00:60Z"]
    if path[-1] != "verificationStartedAt":  # the one field that may be a local time
        invalid.append("2026-03-01T12:00:00")
    if stamp in invalid:
        assert plain_facts(payload) is None and analysis.problems[0][0] == "malformed"


def test_a_configmap_holding_its_envelope_spelled_otherwise_still_agrees_with_the_log() -> None:
    """The ConfigMap's text is compared with its log entry by encoding the entry; text that
    holds the same envelope in another spelling is parsed, and agrees all the same."""
    from dataclasses import replace

    from stella.evidence.verify import verify

    log, store = MemoryLog(), MemoryStore()
    rec = Recorder(SIGNER, log, store, "t", clock=Clock())
    for n in (1, 2, 3):
        rec.record(promotion_event(n=n))
    name = "stella-evidence-env-prod-0000000002"
    cm = store.packets[name]
    store.packets[name] = replace(
        cm, envelope_json=json.dumps(json.loads(cm.envelope_json), indent=1)
    )
    report = verify(store.list(), log.entries(), store.published_keys())
    assert report.ok and report.signatures == 3
    entry = log.rows[0]
    log.rows[0] = replace(entry, envelope={**entry.envelope, "payloadType": "text/plain"})
    report = verify(store.list(), log.entries(), store.published_keys())
    assert {"stores-disagree", "malformed"} <= {f.code for f in report.findings}


# ---- the compiler itself: never "valid" where the model refuses ---------------------------
class _PostInit(StrictModel):
    name: str

    def model_post_init(self, context: Any) -> None:
        if self.name == "bad":
            raise ValueError("refused after validation")


class _ValidatedDefault(StrictModel):
    name: Annotated[str, Field(max_length=2)] = Field("too long", validate_default=True)


class _CoreSchemaHook(StrictModel):
    name: str

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def refuse(value: Any) -> Any:
            raise ValueError("refused by the hook")

        return core_schema.no_info_after_validator_function(refuse, handler(source))


def _patterned(pattern: Any) -> type[StrictModel]:
    return create_model("Patterned", __base__=StrictModel, name=(str, Field(pattern=pattern)))


@pytest.mark.parametrize(
    ("model", "document"),
    [
        (_PostInit, {"name": "bad"}),
        (_ValidatedDefault, {}),
        (_CoreSchemaHook, {"name": "x"}),
        # Python's \s takes \x1c-\x1f, its \w and \b take "²", it reads [[:digit:]] as a
        # set then "]": pydantic's Rust regex does neither, so it refuses what re takes.
        (_patterned(r"^\s$"), {"name": "\x1c"}),
        (_patterned(r"^\w+$"), {"name": "²"}),
        (_patterned(r"^²\b$"), {"name": "²"}),
        (_patterned(r"^[[:digit:]]$"), {"name": ":]"}),
        # Flags: no disagreement found, but none is vouched for either.
        (_patterned(re.compile(r"^k$", re.IGNORECASE)), None),
        (_patterned(r"^(?i:k)$"), None),
    ],
    ids=["post-init", "validate-default", "core-schema", "s", "w", "b", "posix", "flags", "inline"],
)
def test_what_could_refuse_after_the_check_or_read_otherwise_is_refused_at_compile(
    model: type[StrictModel], document: dict[str, Any] | None
) -> None:
    # Compiled as before, each would have called `document` valid; the model refuses it.
    if document is not None:
        with pytest.raises(ValidationError):
            model.model_validate(document)
    with pytest.raises(UnsupportedModel, match=r"not supported|may read differently"):
        plain_check(model)


def test_a_bound_declared_twice_is_checked_at_its_strictest() -> None:
    class Twice(StrictModel):
        inner: Annotated[str, Field(max_length=3)] | None = Field(None, max_length=5)
        outer: Annotated[str, Field(max_length=5)] | None = Field(None, max_length=3)
        both: Annotated[
            Annotated[str, Field(pattern=r"^a[a-z]*$")], Field(pattern=r"^[a-z]*b$")
        ] = "ab"

    check = plain_check(Twice)
    assert check({"inner": "abc", "outer": "abc", "both": "ab"})
    assert not check({"inner": "abcd"})  # the model takes it (5): left to the model
    assert not check({"outer": "abcd"})
    assert not check({"both": "b"})  # the model checks the last pattern only


# The last two read differently in Python and in pydantic: plain_check must refuse them.
_PATTERNS = [
    r"^[a-f0-9]{2}$",
    r"^sha256:[a-f]+$",
    r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
    r"a|b$",
    r"^\s*$",
    r"^\w+$",
]
_POOL: list[Any] = [
    None, "", "a", "ab", "abc", "a-", "ff", "sha256:ab", "²", "\x1c", "a\n", "é" * 3,
    "2026-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01T00:00:00",
    0, 1, 2, -1, 2**63, True, False, 1.0, [], ["a"], ["a", "b", "c"], [1], {}, {"a": 1},
    {"a": 1.5}, {"a": [None, True, "x"]},
]  # fmt: skip


@st.composite
def _annotation(draw: st.DrawFn, depth: int = 0) -> Any:
    """A field type made of what plain_check compiles, bounds sometimes declared twice."""
    kind = draw(
        st.sampled_from(["str", "int", "bool", "literal", "stamp", "list", "json", "model"])
    )
    small = st.integers(0, 3)
    if kind == "str":
        bounds = [Field(min_length=draw(small)), Field(max_length=draw(small))]
        if draw(st.booleans()):
            bounds.append(Field(pattern=draw(st.sampled_from(_PATTERNS))))
        picked = draw(st.lists(st.sampled_from(bounds), max_size=3))
        return Annotated[str, *picked] if picked else str
    if kind == "int":
        ges = draw(st.lists(st.integers(-1, 2), max_size=2))
        return Annotated[int, *[Field(ge=g) for g in ges]] if ges else int
    if kind == "bool":
        return bool
    if kind == "literal":
        return Literal["a", "ab"]
    if kind == "stamp":
        return draw(st.sampled_from([datetime, UtcSeconds]))
    if kind == "json":
        return dict[str, JsonValue]
    if kind == "list" or depth >= 1:
        element = draw(_annotation(depth + 1)) if depth < 1 else str
        return Annotated[list[element], Field(max_length=draw(small))]  # type: ignore[valid-type]
    return _model(draw, depth + 1)


def _model(draw: st.DrawFn, depth: int) -> type[StrictModel]:
    fields: dict[str, Any] = {}
    for n in range(draw(st.integers(1, 3))):
        annotation = draw(_annotation(depth))
        if draw(st.booleans()):
            fields[f"field_{n}"] = (annotation | None, None)
        else:
            fields[f"field_{n}"] = (annotation, ...)
    return create_model(f"Fuzzed{depth}", __base__=StrictModel, **fields)


def _document(draw: st.DrawFn, model: type[StrictModel]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if draw(st.integers(0, 9)) == 0:
            continue  # missing
        key = info.alias or name
        nested = [a for a in typing.get_args(info.annotation) if isinstance(a, type)]
        inner = info.annotation if isinstance(info.annotation, type) else None
        sub = next((a for a in [inner, *nested] if a and issubclass(a, StrictModel)), None)
        if sub is not None and draw(st.booleans()):
            doc[key] = _document(draw, sub)
        elif draw(st.booleans()):
            doc[key] = copy.deepcopy(draw(st.sampled_from(_fitting(info.annotation))))
        else:
            doc[key] = copy.deepcopy(draw(st.sampled_from(_POOL)))
    if draw(st.integers(0, 9)) == 0:
        doc["unexpected"] = 1
    return doc


def _fitting(annotation: Any) -> list[Any]:
    """Values of the right JSON type for `annotation` (often valid, not always)."""
    base = annotation
    while typing.get_origin(base) in (typing.Annotated, typing.Union, types.UnionType):
        base = next(a for a in typing.get_args(base) if a is not type(None))
    origin = typing.get_origin(base)
    if origin is Literal:
        return ["a", "ab", "b"]
    if origin is list:
        return [[], ["a"], ["ab", "ff"], [{"a": 1}]]
    if origin is dict:
        return [{}, {"a": 1}, {"a": {"b": [None, "c"]}}]
    if base is str:
        return ["a", "ab", "ff", "a-b"]
    if base is int:
        return [0, 1, 2]
    if base is datetime:
        return ["2026-01-01T00:00:00Z", "2024-02-29T23:59:59Z"]
    return [True, {}]


@st.composite
def _model_and_documents(draw: st.DrawFn) -> tuple[type[StrictModel], list[dict[str, Any]]]:
    model = _model(draw, 0)
    return model, [_document(draw, model) for _ in range(20)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_model_and_documents())
def test_a_compiled_check_never_calls_valid_what_its_model_refuses(
    case: tuple[type[StrictModel], list[dict[str, Any]]],
) -> None:
    model, documents = case
    try:
        check = plain_check(model)
    except UnsupportedModel as refused:
        assert "may read differently" in str(refused)
        return
    for document in documents:
        if check(document):
            model.model_validate(document)  # raises (and fails the test) if the model refuses
