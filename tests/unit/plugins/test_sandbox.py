"""The sandbox with real WebAssembly modules (built from text): what a plugin may do, and
that every undeclared capability, and every unbounded run, is stopped and reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests import plugin_support as ps

from stella.plugins import errors as e
from stella.plugins.capabilities import HttpTarget, KubeTarget
from stella.plugins.sandbox import Backends, Sandbox
from stella.plugins.signing import VerifiedManifest, verify_manifest

SERVICE = "http://127.0.0.1:8080/healthz"
NETWORK = [{"host": "127.0.0.1", "port": 8080, "scheme": "http"}]


class FakeHttp:
    """Stands in for the network (the unit tier has no sockets): records what reached it."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.reached: list[str] = []

    def get(self, target: HttpTarget, timeout: float) -> tuple[int, bytes]:
        self.reached.append(f"{target.grant}{target.path}")
        return self.status, b"ok"


class FakeVault:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.read_refs: list[str] = []

    def read(self, ref: str, timeout: float) -> str:
        self.read_refs.append(ref)
        return self.values[ref]


class FakeKube:
    def get(self, target: KubeTarget, timeout: float) -> dict[str, Any] | None:
        return {"kind": "ConfigMap", "metadata": {"name": target.name}}


@pytest.fixture(scope="module")
def publisher(tmp_path_factory: pytest.TempPathFactory) -> ps.Publisher:
    return ps.Publisher(tmp_path_factory.mktemp("keys"))


def _plugin(publisher: ps.Publisher, wat: str, **fields: Any) -> tuple[VerifiedManifest, bytes]:
    module = ps.build(wat)
    envelope = publisher.sign(ps.manifest_for(module, **fields))
    return verify_manifest(envelope, {publisher.name: publisher.trust}), module


def test_smoke_plugin_passes_when_the_declared_service_answers_200(publisher: ps.Publisher) -> None:
    http = FakeHttp(200)
    verified, module = _plugin(publisher, ps.SMOKE, capabilities={"network": NETWORK})
    report = Sandbox(Backends(http=http)).run(verified, module, "gate", {"url": SERVICE})
    assert report.outcome == "Passed", report
    assert report.message == "service answered 200"
    assert http.reached == ["http://127.0.0.1:8080/healthz"]
    assert report.fuel_used > 0 and report.memory_bytes == 65536
    ev = report.evidence()
    assert ev["inputs"] == {"url": SERVICE}
    assert ev["hostCalls"] == [
        {"kind": "http", "target": "http://127.0.0.1:8080/healthz", "result": "200"}
    ]
    assert ev["manifestDigest"] == verified.manifest_digest


def test_smoke_plugin_fails_the_gate_on_another_status(publisher: ps.Publisher) -> None:
    verified, module = _plugin(publisher, ps.SMOKE, capabilities={"network": NETWORK})
    report = Sandbox(Backends(http=FakeHttp(503))).run(verified, module, "gate", {"url": SERVICE})
    assert (report.outcome, report.exit_code) == ("Failed", 1)
    assert report.message == "service did not answer 200"
    assert not report.quarantines


def test_undeclared_egress_is_stopped_before_it_leaves(publisher: ps.Publisher) -> None:
    http = FakeHttp(200)
    verified, module = _plugin(publisher, ps.EGRESS, capabilities={"network": NETWORK})
    report = Sandbox(Backends(http=http)).run(
        verified, module, "gate", {"url": SERVICE, "exfil": "http://127.0.0.1:9999/steal?d=x"}
    )
    assert report.outcome == "CapabilityViolation"
    assert report.violation is not None
    assert (report.violation.kind, report.violation.target) == ("network", "http://127.0.0.1:9999")
    assert http.reached == ["http://127.0.0.1:8080/healthz"]  # the declared call only
    assert report.quarantines
    assert "network egress to http://127.0.0.1:9999" in report.summary()


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8080/healthz",  # other scheme
        "http://localhost:8080/",  # other name for the same host
        "http://evil@127.0.0.1:8080/",  # userinfo hides the real host from a reader
        "http://127.0.0.1:8080@evil.example/",
        "file:///etc/passwd",
        "http://127.0.0.1:notaport/",
    ],
)
def test_only_the_exact_declared_scheme_host_and_port(publisher: ps.Publisher, url: str) -> None:
    http = FakeHttp(200)
    verified, module = _plugin(publisher, ps.SMOKE, capabilities={"network": NETWORK})
    report = Sandbox(Backends(http=http)).run(verified, module, "gate", {"url": url})
    assert report.outcome == "CapabilityViolation", url
    assert http.reached == []


def test_network_host_function_is_not_linked_without_a_declaration(publisher: ps.Publisher) -> None:
    http = FakeHttp(200)
    verified, module = _plugin(publisher, ps.SMOKE)  # no capabilities at all
    report = Sandbox(Backends(http=http)).run(verified, module, "gate", {"url": SERVICE})
    assert report.outcome == "CapabilityViolation"
    assert report.violation is not None
    assert (report.violation.kind, report.violation.target) == ("import", "stella.http_get")
    assert report.fuel_used == 0 and http.reached == []


def test_wasi_is_never_linked(publisher: ps.Publisher) -> None:
    verified, module = _plugin(publisher, ps.WASI)
    report = Sandbox().run(verified, module, "gate", {})
    assert report.outcome == "CapabilityViolation"
    assert report.violation is not None
    assert report.violation.target == "wasi_snapshot_preview1.fd_write"


def test_declared_secret_is_read_and_redacted_from_the_output(publisher: ps.Publisher) -> None:
    ref = "vault:secret/smoke#token"
    vault = FakeVault({ref: "s3cr3t-value-123"})
    verified, module = _plugin(publisher, ps.secret_reader(ref), capabilities={"secrets": [ref]})
    report = Sandbox(Backends(secrets=vault)).run(verified, module, "gate", {})
    assert report.outcome == "Passed"
    assert report.message == "[redacted]"
    assert "s3cr3t" not in repr(report.evidence())
    assert vault.read_refs == [ref]


def test_undeclared_secret_is_never_read(publisher: ps.Publisher) -> None:
    declared, other = "vault:secret/smoke#token", "vault:secret/prod/db#password"
    vault = FakeVault({declared: "a", other: "b"})
    verified, module = _plugin(
        publisher, ps.secret_reader(other), capabilities={"secrets": [declared]}
    )
    report = Sandbox(Backends(secrets=vault)).run(verified, module, "gate", {})
    assert report.outcome == "CapabilityViolation"
    assert report.violation is not None
    assert (report.violation.kind, report.violation.target) == ("secret", other)
    assert vault.read_refs == []


def test_infinite_loop_runs_out_of_fuel(publisher: ps.Publisher) -> None:
    verified, module = _plugin(publisher, ps.LOOP)
    report = Sandbox().run(verified, module, "gate", {})
    assert report.outcome == "OutOfFuel"
    assert report.fuel_used == verified.manifest.limits.fuel
    assert not report.quarantines


def test_infinite_loop_with_ample_fuel_is_stopped_by_the_clock(publisher: ps.Publisher) -> None:
    verified, module = _plugin(
        publisher, ps.LOOP, limits={"fuel": 10_000_000_000, "memoryMiB": 1, "timeout": "300ms"}
    )
    report = Sandbox().run(verified, module, "gate", {})
    assert report.outcome == "Timeout"
    assert report.duration_seconds >= 0.3


def test_unbounded_allocation_stops_at_the_memory_limit(publisher: ps.Publisher) -> None:
    verified, module = _plugin(publisher, ps.ALLOC)  # memoryMiB: 2
    report = Sandbox().run(verified, module, "gate", {})
    assert report.outcome == "MemoryLimit"
    assert report.memory_bytes == 2 * 1024 * 1024


def test_runs_share_nothing(publisher: ps.Publisher) -> None:
    """A run that exhausted its memory leaves the next run of the same module a fresh one."""
    sandbox = Sandbox()
    verified, module = _plugin(publisher, ps.ALLOC)
    assert sandbox.run(verified, module, "gate", {}).outcome == "MemoryLimit"
    good, smoke = _plugin(publisher, ps.SMOKE, capabilities={"network": NETWORK})
    report = Sandbox(Backends(http=FakeHttp())).run(good, smoke, "gate", {"url": SERVICE})
    assert (report.outcome, report.memory_bytes) == ("Passed", 65536)


def test_replaced_module_is_refused_before_it_runs(publisher: ps.Publisher) -> None:
    verified, _ = _plugin(publisher, ps.SMOKE, capabilities={"network": NETWORK})
    with pytest.raises(e.PluginRefused) as err:
        Sandbox().run(verified, ps.build(ps.LOOP), "gate", {})
    assert err.value.reason == e.MODULE_MISMATCH


def test_undeclared_entry_point_is_refused(publisher: ps.Publisher) -> None:
    verified, module = _plugin(publisher, ps.SMOKE, capabilities={"network": NETWORK})
    with pytest.raises(e.PluginRefused, match="declares entry points gate, not postDeploy"):
        Sandbox().run(verified, module, "postDeploy", {"url": SERVICE})


def test_kubernetes_reads_only_the_declared_objects(publisher: ps.Publisher) -> None:
    caps = {
        "kubernetesReads": [
            {"apiVersion": "v1", "resource": "configmaps", "namespace": "shop", "names": ["flags"]}
        ]
    }
    verified, module = _plugin(publisher, ps.kube_reader("shop", "flags"), capabilities=caps)
    report = Sandbox(Backends(kube=FakeKube())).run(verified, module, "gate", {})
    assert report.outcome == "Passed"
    assert report.host_calls[0].wire() == {
        "kind": "kubernetes",
        "target": "v1/configmaps shop/flags",
        "result": "ok",
    }
    verified, module = _plugin(publisher, ps.kube_reader("shop", "other"), capabilities=caps)
    report = Sandbox(Backends(kube=FakeKube())).run(verified, module, "gate", {})
    assert report.outcome == "CapabilityViolation"


def test_not_webassembly_is_refused(publisher: ps.Publisher, tmp_path: Path) -> None:
    module = b"\x00asm-not-really"
    envelope = publisher.sign(ps.manifest_for(module))
    verified = verify_manifest(envelope, {publisher.name: publisher.trust})
    with pytest.raises(e.PluginRefused) as err:
        Sandbox().run(verified, module, "gate", {})
    assert err.value.reason == e.MODULE_INVALID
