"""`stella plugin sign`: the Plugin it prints is admitted by the rule admission runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests import plugin_support as ps

from stella.admission.base import Request
from stella.admission.plugin import validate_plugin
from stella.cli import main
from stella.plugins.store import trust_from
from stella.policy.identity import Identity

MANIFEST = """\
apiVersion: stella.io/plugin/v1
name: smoke-test
version: 1.0.0
publisher: platform
entryPoints: [gate, postDeploy]
inputs: [{name: url, required: true}]
capabilities:
  network: [{host: shop.example.com, port: 443}]
limits: {fuel: 1000000, memoryMiB: 4, timeout: 5s}
"""


def _sign(tmp_path: Path, manifest: str, module: bytes, *extra: str) -> int:
    (tmp_path / "manifest.yaml").write_text(manifest)
    (tmp_path / "smoke.wasm").write_bytes(module)
    return main(
        [
            "plugin",
            "sign",
            str(tmp_path / "manifest.yaml"),
            "--module",
            str(tmp_path / "smoke.wasm"),
            "--key",
            str(tmp_path / "key.pem"),
            *extra,
        ]
    )


def test_sign_prints_an_admissible_plugin_and_its_publisher(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _sign(
        tmp_path,
        MANIFEST,
        ps.build(ps.SMOKE),
        "--file",
        "/plugins/smoke.wasm",
        "--publisher-out",
        str(tmp_path / "publisher.yaml"),
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    plugin = yaml.safe_load(out.out)
    assert plugin["spec"]["module"] == {"file": "/plugins/smoke.wasm"}
    assert "signed smoke-test 1.0.0 for publisher platform" in out.err
    publisher = yaml.safe_load((tmp_path / "publisher.yaml").read_text())
    req = Request("CREATE", "Plugin", None, "smoke-test", Identity("frank"), plugin, None)
    verdict = validate_plugin(req, trust_from([publisher]), lambda: None, {})
    assert verdict.allowed, verdict.message


def test_sign_refuses_a_bad_manifest_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _sign(tmp_path, MANIFEST.replace("port: 443", "port: 99999"), b"\0asm")
    err = capsys.readouterr().err
    assert code == 2
    assert "capabilities.network[0].port" in err
