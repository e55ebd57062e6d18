"""One plugin step, start to finish: read the Plugin as it is now, refuse it when
quarantined, verify its signed manifest against the publishers trusted now and its module
against the manifest, check the step's inputs, and run it in the sandbox — within a
bound on runs in flight (T10). Blocking: the engine calls it from a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stella.models.errors import human_errors
from stella.models.plugin import ENTRY_OF_STEP, ModuleSource, PluginSpec, PluginStep
from stella.plugins import errors as e
from stella.plugins import store
from stella.plugins.oci import load_from_registry
from stella.plugins.reenable import (
    Reenable,
    quarantine_since,
    quarantined,
    quarantined_modules,
    reenable_of,
)
from stella.plugins.report import RunReport
from stella.plugins.sandbox import Sandbox
from stella.plugins.signing import Trust, VerifiedManifest, verify_manifest

MAX_MODULE_BYTES = 16 * 1024 * 1024
NOT_FOUND = "PluginNotFound"
QUARANTINED = "PluginQuarantined"
INPUTS = "PluginInputsInvalid"


@dataclass(frozen=True)
class StepResult:
    """A run's report, or why nothing ran (refused: never ran, nothing to quarantine)."""

    plugin: str
    at: str
    report: RunReport | None = None
    refused: e.PluginError | None = None
    verified: VerifiedManifest | None = None
    # The re-enable (admitted: the sender's own identity, the reenable verb) that lifted
    # the quarantine this run found on the Plugin; the engine records it and clears it.
    lifted: Reenable | None = None

    @property
    def passed(self) -> bool:
        return self.report is not None and self.report.passed

    @property
    def reason(self) -> str:
        if self.refused is not None:
            return self.refused.reason
        assert self.report is not None
        return "Plugin" + self.report.outcome if self.report.outcome != "Passed" else "Passed"

    @property
    def message(self) -> str:
        if self.refused is not None:
            return f"plugin {self.plugin} did not run: {self.refused.message}"
        assert self.report is not None
        return self.report.summary()


def load_module(source: ModuleSource) -> bytes:
    if source.file is not None:
        path = Path(source.file)
        try:
            with path.open("rb") as fh:
                data = fh.read(MAX_MODULE_BYTES + 1)
        except OSError as exc:
            raise e.ModuleUnavailable(
                f"cannot read the module file {source.file}: {exc.strerror}", retry_after=30.0
            ) from None
        if len(data) > MAX_MODULE_BYTES:
            raise e.PluginRefused(
                e.MODULE_INVALID, f"the module is larger than {MAX_MODULE_BYTES} bytes"
            )
        return data
    assert source.image is not None
    return load_from_registry(source.image)


class PluginRunner:
    def __init__(
        self,
        sandbox: Sandbox,
        *,
        max_in_flight: int = 4,
        get_plugin: Callable[[str], Mapping[str, Any] | None] = store.get_plugin,
        trust: Callable[[], Trust] = store.trust,
        list_plugins: Callable[[], list[dict[str, Any]]] = store.list_plugins,
        load: Callable[[ModuleSource], bytes] = load_module,
    ) -> None:
        self.sandbox = sandbox
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._get_plugin = get_plugin
        self._trust = trust
        self._list_plugins = list_plugins
        self._load = load
        # Quarantined by a run in this process, until the Plugin's status says so itself
        # (the status write may lag or fail: the plugin stays refused meanwhile).
        self._pending_quarantine: set[str] = set()
        self._lock = threading.Lock()

    def run(self, step: PluginStep) -> StepResult:
        if not self._slots.acquire(blocking=False):
            return StepResult(
                step.plugin,
                step.at,
                refused=e.PluginBusy(
                    "as many plugin runs as allowed are in flight; asking again", retry_after=10.0
                ),
            )
        try:
            return self._run(step)
        except e.PluginError as exc:
            return StepResult(step.plugin, step.at, refused=exc)
        finally:
            self._slots.release()

    def _run(self, step: PluginStep) -> StepResult:
        body = self._get_plugin(step.plugin)
        if body is None:
            raise e.PluginRefused(
                NOT_FOUND, f"Plugin {step.plugin} does not exist (kubectl get plugins)"
            )
        with self._lock:
            if (body.get("status") or {}).get("quarantine"):
                self._pending_quarantine.discard(step.plugin)
            pending = step.plugin in self._pending_quarantine
        if pending or quarantined(body):
            q = (body.get("status") or {}).get("quarantine") or {}
            raise e.PluginRefused(
                QUARANTINED,
                f"Plugin {step.plugin} is quarantined since {q.get('since')} "
                f"({q.get('message', '')[:300]}); a person with the reenable verb on "
                f"plugins/{step.plugin} re-enables it (stella plugin reenable)",
            )
        lifted = reenable_of(body) if quarantine_since(body) is not None else None
        try:
            spec = PluginSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            raise e.PluginRefused(e.MALFORMED, human_errors(exc)) from None
        verified = verify_manifest(spec.manifest.wire(), self._trust())
        problems = verified.manifest.check_inputs(dict(step.inputs))
        if problems:
            raise e.PluginRefused(INPUTS, "; ".join(problems))
        held_by = quarantined_modules(self._list_plugins(), step.plugin).get(
            verified.manifest.module.digest
        )
        if held_by is not None:
            raise e.PluginRefused(
                QUARANTINED,
                f"Plugin {step.plugin} runs the module of Plugin {held_by}, which is "
                f"quarantined: a person lifts it there first (stella plugin reenable {held_by})",
            )
        module = self._load(spec.module)
        report = self.sandbox.run(verified, module, ENTRY_OF_STEP[step.at], dict(step.inputs))
        if report.quarantines:
            with self._lock:
                self._pending_quarantine.add(step.plugin)
        return StepResult(step.plugin, step.at, report=report, verified=verified, lifted=lifted)
