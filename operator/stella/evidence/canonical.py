"""Canonical JSON: the one serialization that is hashed and signed.

Sorted keys, no insignificant whitespace, UTF-8 (non-ASCII kept as is), no NaN/Infinity.
The same value always gives the same bytes, so the same packet always hashes the same; a
verifier checks ``payload == canonical_json(json.loads(payload))``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

DIGEST_PREFIX = "sha256:"


# json.dumps with these settings builds this encoder on every call; built once, the same bytes.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    return _ENCODER.encode(value).encode("utf-8")


def is_canonical(raw: bytes) -> bool:
    try:
        return canonical_json(json.loads(raw)) == raw
    except (ValueError, UnicodeDecodeError):
        return False


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of the bytes: how packets name each other in the chain."""
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()
