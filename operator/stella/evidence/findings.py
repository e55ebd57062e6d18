"""A verification finding: what is wrong, and which item it is about."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Finding:
    code: str  # stable, machine-readable: chain-gap, signature-invalid, configmap-missing, ...
    item: str  # the ConfigMap name, log row, or chain position it is about
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.item}: {self.message}"
