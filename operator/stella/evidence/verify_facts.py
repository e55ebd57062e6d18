"""What verify needs of a signed statement, read from the model or from plain JSON.

``facts_of`` reads a validated :class:`~stella.evidence.packet.Statement`. ``plain_facts``
reads the same from the payload without building a model, when it can vouch for everything
the slow path would check:

* the payload is canonical JSON: orjson parses it and, keys sorted, writes back the very
  bytes; for a document without floats and with integers within 64 bits orjson writes
  exactly what ``canonical_json`` writes (a property test holds it to that), so this is
  ``is_canonical``'s verdict, and the document is what json and pydantic parse;
* the model's own checks, compiled once (:mod:`~stella.evidence.plain_checks`), say the
  document is certainly a valid Statement, which also rules out floats and larger integers.

Otherwise it returns None and the caller takes the slow path (``is_canonical``, then the
model), which decides and words the findings. Both paths give equal facts for every
statement the plain path takes (a property test holds them to it).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import orjson

from stella.evidence.manifest import labels_for, packet_labels
from stella.evidence.packet import Statement
from stella.evidence.plain_checks import plain_check


class Facts(NamedTuple):
    """The signed statement's fields that verify checks and compares."""

    chain: str
    sequence: int
    packet_id: str
    previous_digest: str | None
    kind: str
    recorded_at: datetime
    labels: dict[str, str]  # the labels its ConfigMap must carry
    environment: str | None
    event_id: str


def facts_of(statement: Statement) -> Facts:
    p = statement.predicate
    return Facts(
        p.chain,
        p.sequence,
        p.packet_id,
        p.previous_digest,
        p.kind,
        p.recorded_at,
        labels_for(statement),
        p.environment,
        p.event_id,
    )


_VALID_STATEMENT = plain_check(Statement)


def plain_facts(payload: bytes) -> Facts | None:
    """The facts of a canonical, valid statement; None: let is_canonical and the model
    decide."""
    try:
        document = orjson.loads(payload)
        if orjson.dumps(document, option=orjson.OPT_SORT_KEYS) != payload:
            return None
    except (ValueError, TypeError):  # not JSON, too deep, an integer beyond 64 bits
        return None
    if not _VALID_STATEMENT(document):
        return None
    p = document["predicate"]
    release, agent = p.get("release"), p.get("agent")
    chain, kind, sequence = p["chain"], p["kind"], p["sequence"]
    environment = p.get("environment")
    return Facts(
        chain,
        sequence,
        p["packetId"],
        p.get("previousDigest"),
        kind,
        datetime.fromisoformat(p["recordedAt"]),  # ...Z, whole seconds: utc_seconds' value
        packet_labels(
            chain,
            environment,
            None if release is None else release["name"],
            None if release is None else release["namespace"],
            None if agent is None else agent["name"],
            kind,
            sequence,
        ),
        environment,
        p["eventId"],
    )
