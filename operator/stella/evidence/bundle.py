"""An offline evidence bundle: packets (as ConfigMaps), public keys, and log entries.

``stella evidence export --out FILE`` writes one; ``stella evidence verify --bundle FILE``
checks it without a cluster or a database. The bundle is canonical JSON; it carries the
keys the cluster published, so pin the keys you trust (``--trusted-keys``, taken from
Vault or an earlier export) when the bundle's author is not trusted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from stella.evidence.canonical import canonical_json
from stella.evidence.errors import MalformedPacket
from stella.evidence.records import LogEntry, StoredPacket
from stella.models.common import now, rfc3339

BUNDLE_FORMAT = "stella.io/evidence-bundle/v1"


@dataclass
class Bundle:
    keys: dict[str, str]
    configmaps: list[StoredPacket]
    log: list[LogEntry]
    namespace: str = ""
    exported_at: datetime = field(default_factory=now)
    log_problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "exportedAt": rfc3339(self.exported_at),
            "namespace": self.namespace,
            "keys": dict(sorted(self.keys.items())),
            "configMaps": [p.to_dict() for p in sorted(self.configmaps, key=lambda p: p.name)],
            "log": [e.to_dict() for e in self.log],
            "logProblems": list(self.log_problems),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Bundle:
        if data.get("format") != BUNDLE_FORMAT:
            raise MalformedPacket(f"not a Stella evidence bundle (format {data.get('format')!r})")
        try:
            return cls(
                keys={str(k): str(v) for k, v in dict(data.get("keys") or {}).items()},
                configmaps=[StoredPacket.from_dict(p) for p in data.get("configMaps") or []],
                log=[LogEntry.from_dict(e) for e in data.get("log") or []],
                namespace=str(data.get("namespace") or ""),
                exported_at=datetime.fromisoformat(
                    str(data.get("exportedAt")).replace("Z", "+00:00")
                ),
                log_problems=[str(p) for p in data.get("logProblems") or []],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedPacket(f"evidence bundle is malformed: {exc}") from exc


def write_bundle(
    path: str | os.PathLike[str],
    *,
    keys: Mapping[str, str],
    configmaps: Sequence[StoredPacket],
    log: Sequence[LogEntry],
    namespace: str = "",
    log_problems: Sequence[str] = (),
) -> Bundle:
    bundle = Bundle(
        dict(keys), list(configmaps), list(log), namespace, log_problems=list(log_problems)
    )
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(canonical_json(bundle.to_dict()) + b"\n")
    tmp.replace(target)
    return bundle


def read_bundle(path: str | os.PathLike[str]) -> Bundle:
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise MalformedPacket(f"cannot read evidence bundle {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedPacket("an evidence bundle is a JSON object")
    return Bundle.from_dict(data)
