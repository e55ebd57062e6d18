"""The plugin sandbox: a WebAssembly module run by wasmtime with nothing but the host
functions its signed capabilities grant, and fuel, memory and wall-clock limits.

A module has no WASI, no sockets, no files, no clock: its only way out is the `stella`
host functions below, and a function whose capability the manifest does not declare is
not linked at all — a module importing it is stopped before its first instruction, as a
capability violation. Each run is a fresh instance in a fresh store: nothing survives
from one run to the next.

The ABI (every string UTF-8, every buffer in the module's exported `memory`):

    input(name, name_len, buf, cap) -> len | -1   one input of the step, by name
    output(ptr, len)                  the run's message (<= 4 KiB; the last call counts)
    http_get(url, url_len, buf, cap) -> status | -1      [capabilities.network]
    secret(ref, ref_len, buf, cap) -> len | -1           [capabilities.secrets]
    kube_get(req, req_len, buf, cap) -> len | -1         [capabilities.kubernetesReads]
        req = {"apiVersion", "resource", "namespace", "name"}; the object's JSON
    response_len() -> len             the full length of the last http/secret/kube answer

An entry point (`gate`, `pre_deploy`, `post_deploy`, `notify`) takes nothing and returns
an i32: 0 passes, anything else fails with the output as the reason.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import wasmtime

from stella.plugins import errors as e
from stella.plugins.backends import HttpBackend, KubeBackend, SecretBackend
from stella.plugins.capabilities import (
    CapabilityViolation,
    KubeTarget,
    Violation,
    check_kube,
    check_secret,
    check_url,
)
from stella.plugins.manifest import EXPORT_OF_ENTRY, Capabilities
from stella.plugins.report import HostCall, Outcome, RunReport
from stella.plugins.signing import VerifiedManifest, verify_module

TICK_SECONDS = 0.01
MAX_OUTPUT = 4096
MAX_ARG = 4096
PAGE = 65536
_I32 = wasmtime.ValType.i32()


@dataclass
class Backends:
    """The real effects behind granted capabilities (None: the capability is refused even
    when declared, e.g. no Vault configured; the host function then returns -1)."""

    http: HttpBackend | None = None
    secrets: SecretBackend | None = None
    kube: KubeBackend | None = None


@dataclass
class _RunState:
    caps: Capabilities
    inputs: dict[str, str]
    deadline: float
    backends: Backends
    output: bytes = b""
    last_len: int = 0
    calls: list[HostCall] = field(default_factory=list)
    revealed: list[str] = field(default_factory=list)
    violation: Violation | None = None

    def remaining(self) -> float:
        return max(0.05, self.deadline - time.monotonic())


class _Ticker:
    """One daemon thread advancing the engine's epoch: the wall-clock limit of every run."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        thread = threading.Thread(target=self._run, name="stella-plugin-epoch", daemon=True)
        thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(TICK_SECONDS)
            self._engine.increment_epoch()


class Sandbox:
    """Compiles modules once (by digest) and runs entry points in fresh instances."""

    def __init__(self, backends: Backends | None = None, cache_size: int = 32) -> None:
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        # Only the core instruction set a plugin needs: no threads, no shared memory.
        config.wasm_threads = False
        config.wasm_multi_memory = False
        self.engine = wasmtime.Engine(config)
        self.backends = backends or Backends()
        self._modules: OrderedDict[str, wasmtime.Module] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._ticker = _Ticker(self.engine)

    # ---- compile -----------------------------------------------------------------------
    def compile(self, digest: str, module: bytes) -> wasmtime.Module:
        with self._lock:
            hit = self._modules.get(digest)
            if hit is not None:
                self._modules.move_to_end(digest)
                return hit
        try:
            compiled = wasmtime.Module(self.engine, module)
        except wasmtime.WasmtimeError as exc:
            raise e.PluginRefused(
                e.MODULE_INVALID, f"the module is not valid WebAssembly: {str(exc)[:300]}"
            ) from None
        with self._lock:
            self._modules[digest] = compiled
            while len(self._modules) > self._cache_size:
                self._modules.popitem(last=False)
        return compiled

    # ---- run ---------------------------------------------------------------------------
    def run(
        self,
        verified: VerifiedManifest,
        module: bytes,
        entry_point: str,
        inputs: dict[str, str],
    ) -> RunReport:
        """Run one entry point. Raises PluginRefused before anything runs (module replaced,
        not WebAssembly, entry point undeclared); every other end is a RunReport."""
        m = verified.manifest
        verify_module(verified, module)
        if entry_point not in m.entry_points:
            raise e.PluginRefused(
                e.MALFORMED,
                f"plugin {m.name} declares entry points {', '.join(m.entry_points)}, not "
                f"{entry_point}",
            )
        compiled = self.compile(m.module.digest, module)
        limits = m.limits
        started = time.monotonic()
        state = _RunState(
            caps=m.capabilities,
            inputs=dict(inputs),
            deadline=started + limits.timeout_seconds,
            backends=self.backends,
        )
        store = wasmtime.Store(self.engine)
        store.set_fuel(limits.fuel)
        store.set_limits(
            memory_size=limits.memory_bytes,
            table_elements=10_000,
            instances=1,
            tables=1,
            memories=1,
        )
        # The shared ticker's next tick may come at once: one tick more, so a run is never
        # stopped before its timeout (at most a tick after it). CI saw 0.2993 s of 300ms.
        store.set_epoch_deadline(math.ceil(limits.timeout_seconds / TICK_SECONDS) + 1)
        outcome: Outcome
        exit_code: int | None = None
        message = ""
        memory: wasmtime.Memory | None = None
        try:
            instance = self._instantiate(store, compiled, state)
            exports = instance.exports(store)
            mem = exports.get("memory")
            func = exports.get(EXPORT_OF_ENTRY[entry_point])
            if not isinstance(mem, wasmtime.Memory) or not isinstance(func, wasmtime.Func):
                raise e.PluginRefused(
                    e.MODULE_INVALID,
                    f"the module must export `memory` and `{EXPORT_OF_ENTRY[entry_point]}`",
                )
            memory = mem
            result = func(store)
            exit_code = int(result) if isinstance(result, int) else -1
            outcome = "Passed" if exit_code == 0 else "Failed"
            message = _redact(state.output.decode("utf-8", "replace"), state.revealed)
            if outcome == "Failed" and not message:
                message = f"the plugin returned {exit_code}"
        except CapabilityViolation as exc:
            state.violation = exc.violation
            outcome, message = (
                "CapabilityViolation",
                f"stopped: attempted {exc.violation.describe()}",
            )
        except wasmtime.Trap as exc:
            outcome, message = _classify_trap(exc, memory, store, limits.memory_bytes)
        except wasmtime.WasmtimeError as exc:
            # Instantiation failed: an initial memory above the limit, or a bad start.
            text = str(exc)
            if "memory" in text and ("limit" in text or "minimum" in text or "grow" in text):
                outcome, message = (
                    "MemoryLimit",
                    f"stopped: the module needs more than its {limits.memory_mib} MiB of memory",
                )
            else:
                outcome, message = "Trapped", f"the module could not start: {text[:300]}"
        duration = time.monotonic() - started
        fuel_left = store.get_fuel()
        return RunReport(
            plugin=m.name,
            version=m.version,
            entry_point=entry_point,
            outcome=outcome,
            message=message[:MAX_OUTPUT],
            exit_code=exit_code,
            duration_seconds=duration,
            fuel_used=limits.fuel - fuel_left,
            memory_bytes=memory.data_len(store) if memory is not None else 0,
            inputs=dict(inputs),
            host_calls=tuple(state.calls),
            violation=state.violation,
            manifest_digest=verified.manifest_digest,
            limits={"fuel": limits.fuel, "memoryMiB": limits.memory_mib, "timeout": limits.timeout},
        )

    def _instantiate(
        self, store: wasmtime.Store, compiled: wasmtime.Module, state: _RunState
    ) -> wasmtime.Instance:
        granted = _granted(state)
        linker = wasmtime.Linker(self.engine)
        for imp in compiled.imports:
            name = imp.name or ""
            if imp.module != "stella" or name not in granted:
                # Not linked, so impossible; importing it at all is the attempt.
                raise CapabilityViolation(Violation("import", f"{imp.module}.{name}"))
            params, results, fn = granted[name]
            linker.define_func(
                "stella", name, wasmtime.FuncType(params, results), fn, access_caller=True
            )
        return linker.instantiate(store, compiled)


# ---- host functions ----------------------------------------------------------------------
HostFn = tuple[list[wasmtime.ValType], list[wasmtime.ValType], Callable[..., Any]]


def _granted(state: _RunState) -> dict[str, HostFn]:
    """The host functions this run may link: the always-present ones, and one per declared
    capability."""
    fns: dict[str, HostFn] = {
        "input": (
            [_I32, _I32, _I32, _I32],
            [_I32],
            lambda c, p, n, buf, cap: _input(c, state, p, n, buf, cap),
        ),
        "output": ([_I32, _I32], [], lambda c, ptr, n: _set_output(c, state, ptr, n)),
        "response_len": ([], [_I32], lambda c: state.last_len),
    }
    four = [_I32, _I32, _I32, _I32]
    if state.caps.network:
        fns["http_get"] = (four, [_I32], lambda c, p, n, b, cap: _http_get(c, state, p, n, b, cap))
    if state.caps.secrets:
        fns["secret"] = (four, [_I32], lambda c, p, n, b, cap: _secret(c, state, p, n, b, cap))
    if state.caps.kubernetes_reads:
        fns["kube_get"] = (four, [_I32], lambda c, p, n, b, cap: _kube_get(c, state, p, n, b, cap))
    return fns


def _memory(caller: wasmtime.Caller) -> wasmtime.Memory:
    mem = caller.get("memory")
    if not isinstance(mem, wasmtime.Memory):
        raise wasmtime.WasmtimeError("the module exports no memory")
    return mem


def _read(caller: wasmtime.Caller, ptr: int, length: int, limit: int = MAX_ARG) -> bytes:
    if length < 0 or length > limit or ptr < 0:
        raise wasmtime.WasmtimeError(f"argument too long ({length} bytes, at most {limit})")
    data = _memory(caller).read(caller, ptr, ptr + length)
    return bytes(data)


def _give(caller: wasmtime.Caller, state: _RunState, data: bytes, buf: int, cap: int) -> int:
    state.last_len = len(data)
    if cap > 0 and buf >= 0:
        _memory(caller).write(caller, data[: min(cap, len(data))], buf)
    return len(data)


def _input(caller: wasmtime.Caller, state: _RunState, p: int, n: int, buf: int, cap: int) -> int:
    value = state.inputs.get(_read(caller, p, n).decode("utf-8", "replace"))
    if value is None:
        state.last_len = 0
        return -1
    return _give(caller, state, value.encode(), buf, cap)


def _set_output(caller: wasmtime.Caller, state: _RunState, ptr: int, length: int) -> None:
    state.output = _read(caller, ptr, min(length, MAX_OUTPUT), MAX_OUTPUT)


def _http_get(caller: wasmtime.Caller, state: _RunState, p: int, n: int, buf: int, cap: int) -> int:
    url = _read(caller, p, n).decode("utf-8", "replace")
    target = check_url(state.caps, url)  # raises CapabilityViolation: the run stops
    where = f"{target.grant}{target.path}"
    if state.backends.http is None:
        state.calls.append(HostCall("http", where, "error: no HTTP backend"))
        return -1
    try:
        status, body = state.backends.http.get(target, state.remaining())
    except OSError as exc:
        state.calls.append(HostCall("http", where, f"error: {type(exc).__name__}"))
        return -1
    state.calls.append(HostCall("http", where, str(status)))
    _give(caller, state, body, buf, cap)
    return status


def _secret(caller: wasmtime.Caller, state: _RunState, p: int, n: int, buf: int, cap: int) -> int:
    ref = check_secret(state.caps, _read(caller, p, n).decode("utf-8", "replace"))
    if state.backends.secrets is None:
        state.calls.append(HostCall("secret", ref, "error: no Vault configured"))
        return -1
    try:
        value = state.backends.secrets.read(ref, state.remaining())
    except Exception as exc:  # a Vault error: the plugin sees -1, the report says which
        state.calls.append(
            HostCall("secret", ref, f"error: {getattr(exc, 'reason', type(exc).__name__)}")
        )
        return -1
    state.revealed.append(value)
    state.calls.append(HostCall("secret", ref, "ok"))
    return _give(caller, state, value.encode(), buf, cap)


def _kube_get(caller: wasmtime.Caller, state: _RunState, p: int, n: int, buf: int, cap: int) -> int:
    try:
        req = json.loads(_read(caller, p, n))
        target = KubeTarget(
            str(req["apiVersion"]), str(req["resource"]), str(req["namespace"]), str(req["name"])
        )
    except (ValueError, KeyError, TypeError):
        state.calls.append(HostCall("kubernetes", "?", "error: malformed request"))
        return -1
    check_kube(state.caps, target)
    if state.backends.kube is None:
        state.calls.append(HostCall("kubernetes", str(target), "error: no API server"))
        return -1
    try:
        obj = state.backends.kube.get(target, state.remaining())
    except Exception as exc:
        state.calls.append(HostCall("kubernetes", str(target), f"error: {type(exc).__name__}"))
        return -1
    if obj is None:
        state.calls.append(HostCall("kubernetes", str(target), "not found"))
        return -1
    state.calls.append(HostCall("kubernetes", str(target), "ok"))
    return _give(caller, state, json.dumps(obj).encode(), buf, cap)


def _classify_trap(
    exc: wasmtime.Trap, memory: wasmtime.Memory | None, store: wasmtime.Store, limit: int
) -> tuple[Outcome, str]:
    code = exc.trap_code
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        return "OutOfFuel", "stopped: the plugin used all its fuel (CPU limit)"
    if code == wasmtime.TrapCode.INTERRUPT:
        return "Timeout", "stopped: the plugin ran past its time limit"
    if memory is not None and memory.data_len(store) + PAGE > limit:
        return (
            "MemoryLimit",
            f"stopped: the plugin reached its memory limit ({limit // 1048576} MiB)",
        )
    return (
        "Trapped",
        f"the plugin trapped: {str(code).rsplit('.', 1)[-1].lower().replace('_', ' ')}",
    )


def _redact(text: str, secrets: list[str]) -> str:
    for value in secrets:
        if value:
            text = text.replace(value, "[redacted]")
    return text
