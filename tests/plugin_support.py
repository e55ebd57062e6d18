"""Example plugins for the tests, written as WebAssembly text and built with wasmtime's
wat2wasm (no toolchain), plus a publisher key to sign their manifests with.

The good one is a smoke test: GET the `url` input, pass on 200. The evil ones each try one
thing their manifest does not declare, or run without bound.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import wasmtime

from devenv.services import Registry
from stella.evidence.dsse import Envelope
from stella.plugins.manifest import PluginManifest
from stella.plugins.signing import module_digest, sign_manifest
from stella.registry.artifacts import push_blob, push_manifest, sha256_digest
from stella.registry.client import OCI_MANIFEST, RegistryClient
from stella.registry.reference import parse_image_ref
from stella.secrets.signers import LocalKeySigner

_IMPORTS = """
  (import "stella" "input" (func $input (param i32 i32 i32 i32) (result i32)))
  (import "stella" "output" (func $out (param i32 i32)))
"""
_HTTP = '(import "stella" "http_get" (func $get (param i32 i32 i32 i32) (result i32)))'
_SECRET = '(import "stella" "secret" (func $secret (param i32 i32 i32 i32) (result i32)))'

# GET the input `url` (at most 1 KiB); 200 passes, anything else fails, saying the status.
SMOKE = f"""(module {_IMPORTS} {_HTTP}
  (memory (export "memory") 1)
  (data (i32.const 0) "url")
  (data (i32.const 16) "service answered 200")
  (data (i32.const 48) "service did not answer 200")
  (data (i32.const 80) "input url missing")
  (func $check (result i32)
    (local $n i32)
    (local.set $n (call $input (i32.const 0) (i32.const 3) (i32.const 1024) (i32.const 1024)))
    (if (i32.lt_s (local.get $n) (i32.const 0))
      (then (call $out (i32.const 80) (i32.const 17)) (return (i32.const 2))))
    (if (i32.eq (call $get (i32.const 1024) (local.get $n) (i32.const 4096) (i32.const 4096))
                (i32.const 200))
      (then (call $out (i32.const 16) (i32.const 20)) (return (i32.const 0))))
    (call $out (i32.const 48) (i32.const 26))
    (i32.const 1))
  (export "gate" (func $check))
  (export "post_deploy" (func $check)))
"""

# GET the input `url` first (declared), then the input `exfil` (not declared).
EGRESS = f"""(module {_IMPORTS} {_HTTP}
  (memory (export "memory") 1)
  (data (i32.const 0) "url")
  (data (i32.const 8) "exfil")
  (func (export "gate") (result i32)
    (local $n i32)
    (local.set $n (call $input (i32.const 0) (i32.const 3) (i32.const 1024) (i32.const 1024)))
    (drop (call $get (i32.const 1024) (local.get $n) (i32.const 4096) (i32.const 4096)))
    (local.set $n (call $input (i32.const 8) (i32.const 5) (i32.const 1024) (i32.const 1024)))
    (drop (call $get (i32.const 1024) (local.get $n) (i32.const 4096) (i32.const 4096)))
    (i32.const 0)))
"""


def secret_reader(ref: str) -> str:
    """Reads the Vault reference `ref` and echoes the value as its output (which the sandbox
    must redact); passes when the read succeeded."""
    return f"""(module {_IMPORTS} {_SECRET}
  (memory (export "memory") 1)
  (data (i32.const 0) "{ref}")
  (func (export "gate") (result i32)
    (local $n i32)
    (local.set $n
      (call $secret (i32.const 0) (i32.const {len(ref)}) (i32.const 1024) (i32.const 1024)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const 1))))
    (call $out (i32.const 1024) (local.get $n))
    (i32.const 0)))
"""


def kube_reader(namespace: str, name: str) -> str:
    """Gets ConfigMap namespace/name through kube_get; passes when it was found."""
    req = json.dumps(
        {"apiVersion": "v1", "resource": "configmaps", "namespace": namespace, "name": name},
        separators=(",", ":"),
    )
    data = req.replace('"', "\\22")
    return f"""(module
  (import "stella" "kube_get" (func $k (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{data}")
  (func (export "gate") (result i32)
    (if (i32.lt_s (call $k (i32.const 0) (i32.const {len(req)}) (i32.const 1024) (i32.const 4096))
                  (i32.const 0))
      (then (return (i32.const 1))))
    (i32.const 0)))
"""


LOOP = """(module (memory (export "memory") 1)
  (func (export "gate") (result i32) (loop $l (br $l)) (i32.const 0)))
"""

# Grows memory a page at a time; a refused grow (-1) is an allocation failure: abort.
ALLOC = """(module (memory (export "memory") 1)
  (func (export "gate") (result i32)
    (loop $l
      (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
      (br $l))
    (i32.const 0)))
"""

# Imports WASI to write to a file descriptor: nothing a plugin is ever given.
WASI = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "gate") (result i32) (i32.const 0)))
"""


def build(wat: str) -> bytes:
    return bytes(wasmtime.wat2wasm(wat))


def manifest_for(
    module: bytes, *, name: str = "smoke-test", publisher: str = "platform", **fields: Any
) -> PluginManifest:
    doc: dict[str, Any] = {
        "name": name,
        "version": "1.0.0",
        "publisher": publisher,
        "module": {"digest": module_digest(module)},
        "entryPoints": ["gate"],
        "limits": {"fuel": 50_000_000, "memoryMiB": 2, "timeout": "5s"},
    }
    doc.update(fields)
    return PluginManifest.model_validate(doc)


class Publisher:
    """A plugin publisher's signing key (a local P-256 key, as `stella plugin sign` uses)."""

    def __init__(self, directory: Path, name: str = "platform") -> None:
        self.name = name
        self.signer = LocalKeySigner(directory / f"{name}.pem")

    @property
    def trust(self) -> dict[str, str]:
        return {self.signer.key_id: self.signer.public_key_pem()}

    def sign(self, manifest: PluginManifest) -> dict[str, Any]:
        env: Envelope = sign_manifest(manifest, self.signer)
        return env.to_dict()


EMPTY = "application/vnd.oci.empty.v1+json"


def push_module(
    registry: Registry, repo: str, layer: bytes, media_type: str = "application/wasm"
) -> str:
    """An OCI artifact (empty config, one layer) as oras pushes it; returns repo@digest."""

    async def go() -> str:
        async with RegistryClient(insecure_registries=[registry.host]) as client:
            ref = parse_image_ref(f"{registry.host}/{repo}:v1")
            config = await push_blob(client, ref, b"{}")
            blob = await push_blob(client, ref, layer)
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": EMPTY, "digest": config, "size": 2},
                    "layers": [{"mediaType": media_type, "digest": blob, "size": len(layer)}],
                }
            ).encode()
            digest = await push_manifest(client, ref, "v1", manifest)
            assert digest == sha256_digest(manifest)
            return f"{registry.host}/{repo}@{digest}"

    return asyncio.run(go())
