"""What every Stella kind declares about itself: its CRD identity and printer columns.

The CRD generator (stella.models.crdgen) reads these, so a kind is described once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from pydantic import BaseModel


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: Literal["string", "integer", "date", "boolean", "number"] = "string"
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    singular: str
    scope: Literal["Namespaced", "Cluster"]
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    printer_columns: tuple[PrinterColumn, ...] = ()
    # CEL rules on the whole object (e.g. immutability of spec).
    spec_validations: tuple[dict[str, str], ...] = ()
    description: str = ""
    categories: tuple[str, ...] = field(default=("stella",))


class Kinds:
    registry: ClassVar[dict[str, KindInfo]] = {}

    @classmethod
    def register(cls, info: KindInfo) -> KindInfo:
        cls.registry[info.kind] = info
        return info
