"""Argo CD's health checks for Stella's kinds, run as Argo CD runs them: the health.lua of
docs/argocd/resource_customizations/stella.io/<Kind>/ in a Lua 5.1 interpreter (Argo CD
uses gopher-lua, a Lua 5.1; here lupa's lua51 module) with the object as the global `obj`,
and the cases of its health_test.yaml (Argo CD's own test layout: expected healthStatus
and an inputPath under testdata/)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lupa import lua51

CUSTOMIZATIONS = (
    Path(__file__).resolve().parent.parent / "docs" / "argocd" / "resource_customizations"
)
KINDS = ("Release", "Environment")


def kind_dir(kind: str) -> Path:
    return CUSTOMIZATIONS / "stella.io" / kind


@dataclass(frozen=True)
class HealthCase:
    kind: str
    input_path: str
    status: str
    message: str

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.input_path}"

    def obj(self) -> dict[str, Any]:
        return yaml.safe_load((kind_dir(self.kind) / self.input_path).read_text())  # type: ignore[no-any-return]


def cases(kind: str | None = None) -> list[HealthCase]:
    """Every case of health_test.yaml, of one kind or of all."""
    out = []
    for k in (kind,) if kind else KINDS:
        doc = yaml.safe_load((kind_dir(k) / "health_test.yaml").read_text())
        for t in doc["tests"]:
            hs = t["healthStatus"]
            out.append(HealthCase(k, t["inputPath"], hs["status"], hs.get("message", "")))
    return out


def _to_lua(rt: Any, value: Any) -> Any:
    """JSON to Lua as Argo CD converts it: objects and arrays become tables (arrays
    1-based), null is nil."""
    if isinstance(value, dict):
        return rt.table_from({k: _to_lua(rt, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return rt.table_from([_to_lua(rt, v) for v in value])
    return value


def health(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    """What Argo CD would show for this object: {'status': ..., 'message': ...}."""
    rt = lua51.LuaRuntime()
    rt.globals().obj = _to_lua(rt, obj)
    hs = rt.execute((kind_dir(kind) / "health.lua").read_text())
    return {"status": str(hs["status"]), "message": str(hs["message"] or "")}
