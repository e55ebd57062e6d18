"""A plugin's module from an OCI registry, pinned by digest: the artifact's manifest is
fetched by its digest (bytes checked against it), its one WebAssembly layer fetched as a
blob (bytes checked against the layer's digest). The signed manifest's module digest is
checked after that, by the sandbox, like any module's.

The artifact is what `oras push REG/REPO:TAG plugin.wasm:application/wasm` makes, or any
OCI image manifest with exactly one layer of a WebAssembly media type.
"""

from __future__ import annotations

import asyncio

from stella.plugins import errors as e
from stella.registry.artifacts import MAX_ARTIFACT_BYTES, fetch_blob, fetch_manifest
from stella.registry.client import RegistryClient
from stella.registry.errors import RegistryError
from stella.registry.reference import parse_image_ref

WASM_LAYER_TYPES = frozenset(
    {
        "application/wasm",
        "application/vnd.wasm.content.layer.v1+wasm",
        "application/vnd.module.wasm.content.layer.v1+wasm",
    }
)


async def pull_module(client: RegistryClient, image: str) -> bytes:
    """The module bytes of `image` (repo@sha256:...); PluginRefused when the artifact is
    not a plugin, ModuleUnavailable when the registry cannot answer now."""
    try:
        ref = parse_image_ref(image)
        digest = image.rpartition("@")[2]
        manifest = await fetch_manifest(client, ref, digest)
        if manifest is None:
            raise e.PluginRefused(
                e.MODULE_INVALID, f"the registry has no manifest {image}: push the module first"
            )
        layers = [x for x in manifest.layers if x.get("mediaType") in WASM_LAYER_TYPES]
        if len(layers) != 1:
            raise e.PluginRefused(
                e.MODULE_INVALID,
                f"{image} must have exactly one WebAssembly layer "
                f"({', '.join(sorted(WASM_LAYER_TYPES))}); it has {len(layers)}",
            )
        size = layers[0].get("size")
        if isinstance(size, int) and size > MAX_ARTIFACT_BYTES:
            raise e.PluginRefused(
                e.MODULE_INVALID, f"the module is larger than {MAX_ARTIFACT_BYTES} bytes"
            )
        return await fetch_blob(client, ref, str(layers[0].get("digest")))
    except RegistryError as exc:
        if exc.transient:
            raise e.ModuleUnavailable(
                f"the registry cannot give {image} now ({exc.reason}: {exc.message[:300]})",
                retry_after=exc.retry_after or 15.0,
            ) from None
        raise e.PluginRefused(
            e.MODULE_INVALID, f"{image}: {exc.reason}: {exc.message[:300]}"
        ) from None
    except ValueError as exc:
        raise e.PluginRefused(e.MODULE_INVALID, f"{image}: {exc}") from None


def load_from_registry(image: str) -> bytes:
    """Blocking: for the runner's worker thread (its own event loop and client)."""

    async def pull() -> bytes:
        async with RegistryClient.from_env() as client:
            return await pull_module(client, image)

    return asyncio.run(pull())
