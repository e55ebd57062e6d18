"""The Plugin and PluginPublisher objects as the API server has them now: read live before
every run (never from a cache a stale watch could leave behind), and the operator's writes
of a Plugin's status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from stella import GROUP, VERSION
from stella.k8s.client import custom
from stella.plugins.signing import Trust


def get_plugin(name: str) -> dict[str, Any] | None:
    try:
        body: Any = custom().get_cluster_custom_object(GROUP, VERSION, "plugins", name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return body if isinstance(body, dict) else None


def list_plugins() -> list[dict[str, Any]]:
    listed: Any = custom().list_cluster_custom_object(GROUP, VERSION, "plugins")
    return [p for p in listed.get("items") or [] if isinstance(p, dict)]


def trust_from(publishers: list[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """publisher name -> key id -> PEM, from PluginPublisher bodies."""
    out: dict[str, dict[str, str]] = {}
    for p in publishers:
        name = str((p.get("metadata") or {}).get("name") or "")
        keys = ((p.get("spec") or {}).get("keys")) or []
        out[name] = {
            str(k.get("keyId")): str(k.get("publicKey"))
            for k in keys
            if isinstance(k, Mapping) and k.get("keyId") and k.get("publicKey")
        }
    return out


def trust() -> Trust:
    listed: Any = custom().list_cluster_custom_object(GROUP, VERSION, "pluginpublishers")
    return trust_from(list(listed.get("items") or []))


def patch_status(name: str, status: Mapping[str, Any]) -> None:
    custom().patch_cluster_custom_object_status(
        GROUP, VERSION, "plugins", name, {"status": dict(status)}
    )
