"""What one distinct DSSE envelope is worth, whichever store it came from.

Every check here depends on the envelope alone (base64, canonical payload, statement,
signature, pinned key, packet id), so it can run in any order and in any process; the
checks that depend on order and on other packets (chains, stores agreeing) stay in
``verify``. An :class:`Analysis` is deliberately slim (a few strings, no pydantic model):
it is what a worker process sends back, and pickling a Statement costs more than
parsing it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError
from pydantic_core import from_json

from stella.evidence.canonical import is_canonical, sha256_digest
from stella.evidence.dsse import Envelope, b64decode, pae, verify_pae
from stella.evidence.errors import MalformedPacket, SignatureInvalid
from stella.evidence.keys import KeyRing, spki_fingerprint
from stella.evidence.packet import PAYLOAD_TYPE, chain_of, packet_id, parse_statement
from stella.evidence.verify_facts import Facts, facts_of, plain_facts

# (payload, payloadType, ((keyid, sig), ...)): what makes two envelopes the same one.
EnvelopeKey = tuple[str, str, tuple[tuple[str, str], ...]]
Problems = tuple[tuple[str, str], ...]

_ENVELOPE_FIELDS = frozenset(("payload", "payloadType", "signatures"))
_SIGNATURE_FIELDS = frozenset(("keyid", "sig"))
_FIELDS_SORTED = tuple(sorted(_ENVELOPE_FIELDS))

# canonical_json's settings, built once; parsed JSON holds no cycles to look for.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
)


def _canonical(payload: bytes) -> bool:
    """is_canonical, a third faster on the payloads Stella writes.

    pydantic_core's parser is faster than json's; when re-encoding what it read gives back
    the very bytes, they are canonical_json of that value, hence canonical. Anything else
    (another parse, an error) is decided by is_canonical itself, so the verdict is always
    is_canonical's, except that JSON nested too deep to parse is not canonical rather than
    a crash of verify.
    """
    try:
        if _CANONICAL.encode(from_json(payload)).encode() == payload:
            return True
    except (ValueError, RecursionError):
        pass
    try:
        return is_canonical(payload)
    except RecursionError:  # nested too deep for json: no Stella statement, a finding
        return False


class Parsed(NamedTuple):
    """One stored envelope, parsed once: its analysis key (None: no envelope, and why
    not) and the key that says whether the ConfigMap and the log hold the same one."""

    key: EnvelopeKey | None
    error: str
    same: object
    plain: bool = False  # parsed in the one shape Stella writes (_plain_key)


class Analysis(NamedTuple):
    problems: Problems
    digest: str
    key_id: str | None  # the key whose signature verified, None when none did
    facts: Facts | None  # None when the payload is no Stella statement


def _plain_key(obj: object) -> EnvelopeKey | None:
    """The key of an envelope in the one shape Stella writes, without pydantic.

    Only a shape the Envelope model certainly accepts passes (a subset of it: exact field
    names, strings, 1..8 signatures); anything else returns None and goes through the
    model, so what is refused and how the refusal reads do not change.
    """
    if type(obj) is not dict or obj.keys() != _ENVELOPE_FIELDS:
        return None
    payload, payload_type, sigs = obj["payload"], obj["payloadType"], obj["signatures"]
    if type(payload) is not str or type(payload_type) is not str or type(sigs) is not list:
        return None
    if not 1 <= len(sigs) <= 8:
        return None
    pairs: list[tuple[str, str]] = []
    for s in sigs:
        if type(s) is not dict or s.keys() != _SIGNATURE_FIELDS:
            return None
        keyid, sig = s["keyid"], s["sig"]
        if type(keyid) is not str or type(sig) is not str:
            return None
        if not 1 <= len(keyid) <= 256 or not sig:
            return None
        pairs.append((keyid, sig))
    return payload, payload_type, tuple(pairs)


def envelope_key(raw: str | Mapping[str, object]) -> Parsed:
    """One stored envelope's keys: one parse serves the analysis and the comparison of the
    ConfigMap with its log entry."""
    obj: Any
    try:
        obj = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (ValueError, TypeError):
        obj = None
    key = _plain_key(obj)
    if key is not None:  # what _stores_key gives for this shape, without walking it again
        return Parsed(key, "", (key[0], key[1], tuple(sorted(key[2])), _FIELDS_SORTED), True)
    try:
        env = (
            Envelope.model_validate_json(raw)
            if isinstance(raw, str)
            else Envelope.model_validate(dict(raw))
        )
    except (ValueError, ValidationError) as exc:
        return Parsed(None, f"not a DSSE envelope: {exc}", _stores_key(obj, raw))
    key = (env.payload, env.payload_type, tuple((s.keyid, s.sig) for s in env.signatures))
    return Parsed(key, "", _stores_key(obj, raw))


def holds(raw: str, envelope: Mapping[str, object], parsed: Parsed) -> bool:
    """Whether the JSON text ``raw`` holds exactly ``envelope``, whose envelope_key is
    ``parsed``; then envelope_key(raw) is ``parsed`` too. A ConfigMap holds its packet as
    the canonical JSON of what the log holds as a document: encoding the document is
    cheaper than parsing the text, and one parse then serves both stores."""
    if not parsed.plain:  # the model parses text and documents alike, but not word for word
        return False
    try:  # the text is a JSON encoding of the document: json.loads(raw) == envelope
        return orjson.dumps(envelope, option=orjson.OPT_SORT_KEYS) == raw.encode()
    except (TypeError, ValueError):  # not a plain dict; a lone surrogate
        return False


def _stores_key(obj: Any, raw: object) -> object:
    """What makes two stored envelopes the same: payload, type, signatures, field names."""
    try:
        sigs: list[dict[str, Any]] = list(obj.get("signatures") or [])
        return (
            obj.get("payload"),
            obj.get("payloadType"),
            tuple(sorted((str(s.get("keyid")), str(s.get("sig"))) for s in sigs)),
            tuple(sorted(obj)),
        )
    except (ValueError, TypeError, AttributeError):
        return ("unparseable", raw if isinstance(raw, str) else repr(raw))


class Analyser:
    """Analyses envelopes against the published keys and, if given, the pinned ones."""

    def __init__(self, keys: KeyRing, trusted: KeyRing | None) -> None:
        self.keys = keys
        self.trusted = trusted
        self._trusted_fingerprints = (
            None if trusted is None else {spki_fingerprint(p) for p in trusted.values()}
        )
        self._verdicts: dict[str, str | None] = {}  # key id -> why untrusted (None: pinned)

    def _untrusted(self, key_id: str) -> str | None:
        """Why the published key that verified is not a pinned one (None when it is).

        Pinning is by the key itself (its SPKI fingerprint), never by its id alone: a key
        published under a pinned id but with other key material is exactly what pinning
        must catch, and a pinned file's name (`keys --out-dir` writes key ids as safe file
        names) does not have to match the id.
        """
        if key_id in self._verdicts:
            return self._verdicts[key_id]
        assert self.trusted is not None and self._trusted_fingerprints is not None
        verdict: str | None = None
        if spki_fingerprint(self.keys[key_id]) not in self._trusted_fingerprints:
            verdict = (
                f"signed by key {key_id!r}, but the key published under that id is not the "
                "pinned key of that id: the published key was replaced?"
                if key_id in self.trusted
                else f"signed by key {key_id!r}, which is not one of the pinned keys"
            )
        self._verdicts[key_id] = verdict
        return verdict

    def analyse(self, key: EnvelopeKey) -> Analysis:
        payload_b64, payload_type, signatures = key
        problems: list[tuple[str, str]] = []
        try:
            payload = b64decode(payload_b64)
        except MalformedPacket as exc:
            return Analysis((("malformed", exc.message),), "", None, None)
        digest = sha256_digest(payload)
        if payload_type != PAYLOAD_TYPE:
            msg = f"payloadType is {payload_type!r}, not {PAYLOAD_TYPE}"
            return Analysis((("malformed", msg),), digest, None, None)
        facts = plain_facts(payload)
        if facts is None:  # not the shape Stella writes: the model decides, and says why
            if not _canonical(payload):
                problems.append(("non-canonical", "payload is not canonical JSON"))
            try:
                facts = facts_of(parse_statement(payload))
            except MalformedPacket as exc:
                return Analysis((*problems, ("malformed", exc.message)), digest, None, None)
        key_id: str | None = None
        try:
            key_id = verify_pae(pae(payload_type, payload), signatures, self.keys)
        except (SignatureInvalid, MalformedPacket) as exc:
            problems.append(("signature-invalid", exc.message))
        if key_id is not None and self.trusted is not None:
            untrusted = self._untrusted(key_id)
            if untrusted:
                problems.append(("untrusted-key", untrusted))
        if facts.chain != chain_of(facts.environment):
            problems.append(("malformed", f"chain {facts.chain!r} does not match the environment"))
        if facts.packet_id != packet_id(facts.chain, facts.kind, facts.event_id):
            problems.append(("packet-id-mismatch", "packet id does not match its event"))
        return Analysis(tuple(problems), digest, key_id, facts)
