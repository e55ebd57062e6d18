"""Signed manifests: only a manifest signed by the publisher it names, with a key the
cluster trusts, is a plugin; every other one is refused with a reason saying why."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from tests import plugin_support as ps

from stella.evidence.dsse import sign_envelope
from stella.plugins import errors as e
from stella.plugins.manifest import PAYLOAD_TYPE, PluginManifest
from stella.plugins.signing import module_digest, verify_manifest, verify_module


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[ps.Publisher, ps.Publisher]:
    d = tmp_path_factory.mktemp("keys")
    return ps.Publisher(d, "platform"), ps.Publisher(d, "stranger")


def _signed(pub: ps.Publisher, **fields: Any) -> tuple[dict[str, Any], bytes]:
    module = ps.build(ps.LOOP)
    return pub.sign(ps.manifest_for(module, publisher=pub.name, **fields)), module


def _refused(envelope: Any, trust: dict[str, dict[str, str]]) -> e.PluginRefused:
    with pytest.raises(e.PluginRefused) as err:
        verify_manifest(envelope, trust)
    return err.value


def test_signed_by_its_trusted_publisher(keys: tuple[ps.Publisher, ps.Publisher]) -> None:
    platform, _ = keys
    envelope, module = _signed(platform)
    verified = verify_manifest(envelope, {"platform": platform.trust})
    assert verified.publisher == "platform"
    assert verified.key_id == platform.signer.key_id
    assert verified.manifest.module.digest == module_digest(module)
    verify_module(verified, module)  # no exception: the module is the one pinned
    assert verified.summary()["manifestDigest"].startswith("sha256:")


def test_unsigned_is_refused(keys: tuple[ps.Publisher, ps.Publisher]) -> None:
    platform, _ = keys
    envelope, _ = _signed(platform)
    assert (
        _refused({**envelope, "signatures": []}, {"platform": platform.trust}).reason == e.UNSIGNED
    )
    assert _refused(None, {"platform": platform.trust}).reason == e.UNSIGNED


def test_altered_manifest_is_refused(keys: tuple[ps.Publisher, ps.Publisher]) -> None:
    """Widening a capability after signing: the signature no longer verifies."""
    platform, _ = keys
    envelope, _ = _signed(platform)
    doc = json.loads(base64.b64decode(envelope["payload"]))
    doc["capabilities"] = {"network": [{"host": "evil.example", "port": 443}]}
    forged = {**envelope, "payload": base64.b64encode(json.dumps(doc).encode()).decode()}
    err = _refused(forged, {"platform": platform.trust})
    assert err.reason == e.TAMPERED
    assert "altered after signing" in err.message


def test_unknown_publisher_is_refused(keys: tuple[ps.Publisher, ps.Publisher]) -> None:
    platform, stranger = keys
    envelope, _ = _signed(stranger)
    err = _refused(envelope, {"platform": platform.trust})
    assert err.reason == e.UNTRUSTED
    assert stranger.signer.key_id in err.message
    assert "PluginPublisher" in err.message


def test_a_publisher_signs_only_its_own_plugins(keys: tuple[ps.Publisher, ps.Publisher]) -> None:
    """A trusted key of one publisher cannot vouch for a manifest naming another."""
    platform, stranger = keys
    module = ps.build(ps.LOOP)
    envelope = stranger.sign(ps.manifest_for(module, publisher="platform"))
    err = _refused(envelope, {"platform": platform.trust, "stranger": stranger.trust})
    assert err.reason == e.UNTRUSTED
    assert "signed by a key of 'stranger'" in err.message


def test_other_payload_types_are_refused(keys: tuple[ps.Publisher, ps.Publisher]) -> None:
    platform, _ = keys
    payload = ps.manifest_for(ps.build(ps.LOOP)).model_dump_json(by_alias=True).encode()
    envelope = sign_envelope(payload, platform.signer, "application/vnd.in-toto+json").to_dict()
    assert _refused(envelope, {"platform": platform.trust}).reason == e.MALFORMED


def test_signed_but_invalid_manifest_is_refused(keys: tuple[ps.Publisher, ps.Publisher]) -> None:
    platform, _ = keys
    envelope = sign_envelope(b'{"name": "x"}', platform.signer, PAYLOAD_TYPE).to_dict()
    err = _refused(envelope, {"platform": platform.trust})
    assert err.reason == e.MALFORMED
    assert "the signed manifest is invalid" in err.message


def test_replaced_module_is_refused(keys: tuple[ps.Publisher, ps.Publisher]) -> None:
    platform, _ = keys
    envelope, _ = _signed(platform)
    verified = verify_manifest(envelope, {"platform": platform.trust})
    with pytest.raises(e.PluginRefused) as err:
        verify_module(verified, ps.build(ps.ALLOC))
    assert err.value.reason == e.MODULE_MISMATCH


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"entryPoints": ["gate", "gate"]}, "must not repeat"),
        ({"entryPoints": ["deploy"]}, "entryPoints"),
        (
            {
                "capabilities": {
                    "kubernetesReads": [
                        {"apiVersion": "v1", "resource": "secrets", "namespace": "shop"}
                    ]
                }
            },
            "Secrets are never readable by plugins",
        ),
        ({"capabilities": {"secrets": ["hunter2"]}}, "must be a Vault reference"),
        ({"limits": {"timeout": "1h"}}, "at most 300s"),
        ({"limits": {"memoryMiB": 4096}}, "memoryMiB"),
        ({"capabilities": {"network": [{"host": "a b", "port": 1}]}}, "host"),
        ({"sideEffects": "all"}, "sideEffects"),
    ],
)
def test_manifest_model_refuses(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        ps.manifest_for(b"x", **fields)


def test_inputs_checked_against_the_declaration(tmp_path: Path) -> None:
    m: PluginManifest = ps.manifest_for(
        b"x", inputs=[{"name": "url", "required": True}, {"name": "retries"}]
    )
    assert m.check_inputs({"url": "u"}) == []
    assert m.check_inputs({"retries": "3", "extra": "1"}) == [
        "input 'extra' is not declared by plugin smoke-test",
        "input 'url' is required by plugin smoke-test",
    ]
