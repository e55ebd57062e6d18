"""What one plugin run did: its outcome, output, duration and resource use — the run's
evidence. Never a secret: the sandbox redacts every value the run read from Vault out of
the message before a report exists."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from stella.plugins.capabilities import Violation

Outcome = Literal[
    "Passed",  # the entry point returned 0
    "Failed",  # it returned another value: the gate says no, the step failed
    "CapabilityViolation",  # it tried an undeclared capability: stopped, quarantined
    "OutOfFuel",  # stopped: used its fuel (CPU) limit
    "MemoryLimit",  # stopped: reached its memory limit
    "Timeout",  # stopped: ran past its wall-clock limit
    "Trapped",  # the module itself trapped (a bug in the plugin)
]
# Outcomes that stopped the plugin for exceeding a limit (reported, not quarantined).
LIMIT_OUTCOMES = frozenset({"OutOfFuel", "MemoryLimit", "Timeout"})


@dataclass(frozen=True)
class HostCall:
    kind: str  # http, secret, kubernetes
    target: str  # host:port + path, the reference, the object
    result: str  # an HTTP status, "ok", "not found", "error: ..."

    def wire(self) -> dict[str, str]:
        return {"kind": self.kind, "target": self.target, "result": self.result}


@dataclass(frozen=True)
class RunReport:
    plugin: str
    version: str
    entry_point: str
    outcome: Outcome
    message: str
    exit_code: int | None
    duration_seconds: float
    fuel_used: int
    memory_bytes: int
    inputs: dict[str, str]
    host_calls: tuple[HostCall, ...] = ()
    violation: Violation | None = None
    manifest_digest: str = ""
    limits: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.outcome == "Passed"

    @property
    def quarantines(self) -> bool:
        return self.violation is not None

    def summary(self) -> str:
        base = f"plugin {self.plugin} {self.version} ({self.entry_point}): {self.outcome}"
        if self.violation is not None:
            undeclared = self.violation.describe()
            return f"{base}: attempted {undeclared}, which its manifest does not declare"
        return f"{base}: {self.message}" if self.message else base

    def evidence(self) -> dict[str, Any]:
        """The run as it goes into an evidence packet's predicate."""
        out: dict[str, Any] = {
            "plugin": self.plugin,
            "version": self.version,
            "manifestDigest": self.manifest_digest,
            "entryPoint": self.entry_point,
            "outcome": self.outcome,
            "message": self.message,
            "exitCode": self.exit_code,
            "inputs": dict(self.inputs),
            "durationSeconds": round(self.duration_seconds, 4),
            "fuelUsed": self.fuel_used,
            "memoryBytes": self.memory_bytes,
            "limits": dict(self.limits),
            "hostCalls": [c.wire() for c in self.host_calls],
        }
        if self.violation is not None:
            out["violation"] = {"kind": self.violation.kind, "target": self.violation.target}
        return out
