"""The runner's decisions before anything runs: a missing, quarantined, re-verified,
mis-configured plugin, and the bound on runs in flight."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from tests import plugin_support as ps
from tests.unit.plugins.test_sandbox import NETWORK, SERVICE, FakeHttp

from stella.models.plugin import ModuleSource, PluginStep
from stella.plugins import errors as e
from stella.plugins.runner import NOT_FOUND, QUARANTINED, PluginRunner
from stella.plugins.sandbox import Backends, Sandbox


@pytest.fixture(scope="module")
def publisher(tmp_path_factory: pytest.TempPathFactory) -> ps.Publisher:
    return ps.Publisher(tmp_path_factory.mktemp("keys"))


def _runner(
    publisher: ps.Publisher, body: dict[str, Any] | None, module: bytes, **kw: Any
) -> PluginRunner:
    return PluginRunner(
        Sandbox(Backends(http=FakeHttp())),
        get_plugin=lambda name: body,
        trust=lambda: {publisher.name: publisher.trust},
        load=lambda source: module,
        **{"list_plugins": list, **kw},
    )


def _body(publisher: ps.Publisher, module: bytes, **status: Any) -> dict[str, Any]:
    manifest = ps.manifest_for(
        module, capabilities={"network": NETWORK}, inputs=[{"name": "url", "required": True}]
    )
    return {
        "metadata": {"name": "smoke-test"},
        "spec": {"manifest": publisher.sign(manifest), "module": {"file": "/m.wasm"}},
        "status": status,
    }


STEP = PluginStep(plugin="smoke-test", at="Gate", inputs={"url": SERVICE})


def test_runs_a_verified_plugin(publisher: ps.Publisher) -> None:
    module = ps.build(ps.SMOKE)
    result = _runner(publisher, _body(publisher, module), module).run(STEP)
    assert result.passed and result.reason == "Passed"
    assert result.verified is not None and result.verified.publisher == publisher.name


def test_missing_plugin(publisher: ps.Publisher) -> None:
    result = _runner(publisher, None, b"").run(STEP)
    assert result.refused is not None and result.refused.reason == NOT_FOUND
    assert "does not exist" in result.message


def test_quarantined_plugin_never_runs(publisher: ps.Publisher) -> None:
    module = ps.build(ps.SMOKE)
    body = _body(publisher, module, quarantine={"since": "2026-11-30T06:00:00Z", "message": "x"})
    result = _runner(publisher, body, module).run(STEP)
    assert result.report is None and result.refused is not None
    assert result.refused.reason == QUARANTINED and "stella plugin reenable" in result.message


def test_a_violation_quarantines_in_this_process_before_the_status_says_so(
    publisher: ps.Publisher,
) -> None:
    module = ps.build(ps.EGRESS)
    step = PluginStep(
        plugin="smoke-test", at="Gate", inputs={"url": SERVICE, "exfil": "http://x:1/"}
    )
    # The manifest must declare exfil for this step to pass the input check.
    manifest = ps.manifest_for(
        module, capabilities={"network": NETWORK}, inputs=[{"name": "url"}, {"name": "exfil"}]
    )
    body = {
        "metadata": {"name": "smoke-test"},
        "spec": {"manifest": publisher.sign(manifest), "module": {"file": "/m"}},
    }
    runner = _runner(publisher, body, module)
    first = runner.run(step)
    assert first.report is not None and first.report.quarantines
    second = runner.run(step)
    assert second.refused is not None and second.refused.reason == QUARANTINED


def test_publisher_removed_since_admission_is_refused_before_the_run(
    publisher: ps.Publisher,
) -> None:
    module = ps.build(ps.SMOKE)
    runner = PluginRunner(
        Sandbox(),
        get_plugin=lambda n: _body(publisher, module),
        trust=dict,
        list_plugins=list,
        load=lambda s: module,
    )
    result = runner.run(STEP)
    assert result.refused is not None and result.refused.reason == e.UNTRUSTED


def test_inputs_checked_against_the_manifest(publisher: ps.Publisher) -> None:
    module = ps.build(ps.SMOKE)
    step = PluginStep(plugin="smoke-test", at="Gate", inputs={"uri": SERVICE})
    result = _runner(publisher, _body(publisher, module), module).run(step)
    assert result.refused is not None and result.refused.reason == "PluginInputsInvalid"
    assert "input 'uri' is not declared" in result.message


def test_runs_in_flight_are_bounded(publisher: ps.Publisher) -> None:
    module = ps.build(ps.SMOKE)
    started, release = threading.Event(), threading.Event()

    def slow_load(source: ModuleSource) -> bytes:
        started.set()
        release.wait(10)
        return module

    runner = PluginRunner(
        Sandbox(Backends(http=FakeHttp())),
        max_in_flight=1,
        get_plugin=lambda n: _body(publisher, module),
        trust=lambda: {publisher.name: publisher.trust},
        list_plugins=list,
        load=slow_load,
    )
    results: list[Any] = []
    t = threading.Thread(target=lambda: results.append(runner.run(STEP)))
    t.start()
    assert started.wait(10)
    busy = runner.run(STEP)
    release.set()
    t.join(10)
    assert busy.refused is not None and busy.refused.reason == "PluginRunsBusy"
    assert busy.refused.retry_after == 10.0
    assert results[0].passed


def test_the_module_of_a_quarantined_plugin_runs_under_no_other_name(
    publisher: ps.Publisher,
) -> None:
    module = ps.build(ps.SMOKE)
    digest = ps.manifest_for(module).module.digest
    evil = {
        "metadata": {"name": "evil"},
        "status": {"quarantine": {"since": "2026-11-30T06:00:00Z", "moduleDigest": digest}},
    }
    runner = _runner(publisher, _body(publisher, module), module, list_plugins=lambda: [evil])
    result = runner.run(STEP)
    assert result.report is None and result.refused is not None
    assert result.refused.reason == QUARANTINED and "module of Plugin evil" in result.message
