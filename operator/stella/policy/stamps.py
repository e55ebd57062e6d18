"""Reading what admission stamped: one annotation, one JSON object, or nothing.

Every stamp (identity, binding, rollback) is a JSON object in an annotation; anything
malformed reads as absent, never as a partial record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def annotation(obj: Mapping[str, Any], key: str) -> str | None:
    meta = obj.get("metadata")
    ann = meta.get("annotations") if isinstance(meta, Mapping) else None
    raw = ann.get(key) if isinstance(ann, Mapping) else None
    return raw if isinstance(raw, str) else None


def json_object(raw: object) -> dict[str, Any] | None:
    if not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
