"""Evidence ConfigMaps in the operator's namespace, through the official kubernetes client.

One immutable ConfigMap per packet (see :mod:`stella.evidence.manifest` for names and
labels) and one per published public key. Writes are create-only: an existing ConfigMap
with the same content is success (a retry), one with different content is an
:class:`~stella.evidence.errors.IntegrityError`. The API server itself refuses any edit of
an immutable ConfigMap; a delete (or delete and re-create) is what ``verify`` finds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from stella.evidence.errors import IntegrityError, StoreUnavailable
from stella.evidence.manifest import (
    A_KEY_ID,
    DATA_ENVELOPE,
    DATA_KEY_ID,
    DATA_KEY_PEM,
    DATA_LOG,
    KEY_SELECTOR,
    LOG_SELECTOR,
    PACKET_SELECTOR,
    chain_selector,
    configmap_manifest,
    key_configmap_name,
    key_manifest,
    log_manifest,
)
from stella.evidence.records import StoredPacket

_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)


def _unavailable(what: str, exc: Exception) -> NoReturn:
    if isinstance(exc, ApiException):
        detail = f"HTTP {exc.status} {exc.reason}"
        retry = 2.0 if exc.status in (429, 500, 502, 503, 504) else 10.0
    else:
        detail, retry = type(exc).__name__, 2.0
    raise StoreUnavailable(f"cannot {what}: API server said {detail}", retry_after=retry) from exc


def _to_packet(cm: Any) -> StoredPacket:
    meta = cm.metadata
    return StoredPacket(
        name=str(meta.name),
        envelope_json=str((cm.data or {}).get(DATA_ENVELOPE, "")),
        labels=dict(meta.labels or {}),
        annotations=dict(meta.annotations or {}),
    )


class ConfigMapStore:
    def __init__(self, api_client: k8s.ApiClient, namespace: str, *, timeout: float = 10) -> None:
        self.core = k8s.CoreV1Api(api_client)
        self.namespace = namespace
        self.timeout = timeout

    def _create(self, manifest: dict[str, Any]) -> bool:
        """Create; False when it already exists."""
        body = k8s.V1ConfigMap.from_dict(manifest)
        assert body is not None
        try:
            self.core.create_namespaced_config_map(
                self.namespace, body, _request_timeout=self.timeout
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            _unavailable(f"create ConfigMap {manifest['metadata']['name']}", exc)
        except _TRANSPORT_ERRORS as exc:
            _unavailable(f"create ConfigMap {manifest['metadata']['name']}", exc)
        return True

    def _read(self, name: str) -> Any | None:
        try:
            return self.core.read_namespaced_config_map(
                name, self.namespace, _request_timeout=self.timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            _unavailable(f"read ConfigMap {name}", exc)
        except _TRANSPORT_ERRORS as exc:
            _unavailable(f"read ConfigMap {name}", exc)

    def put(self, packet: StoredPacket) -> None:
        if self._create(configmap_manifest(packet, self.namespace)):
            return
        existing = self._read(packet.name)
        if existing is None:  # deleted in between: try once more
            if self._create(configmap_manifest(packet, self.namespace)):
                return
            existing = self._read(packet.name)
        have = _to_packet(existing).envelope_json if existing is not None else None
        if have != packet.envelope_json:
            raise IntegrityError(
                f"ConfigMap {self.namespace}/{packet.name} exists with different content"
            )

    def get(self, name: str) -> StoredPacket | None:
        cm = self._read(name)
        return _to_packet(cm) if cm is not None else None

    def _list(self, selector: str) -> Iterator[Any]:
        token: str | None = None
        while True:
            try:
                page = self.core.list_namespaced_config_map(
                    self.namespace,
                    label_selector=selector,
                    limit=500,
                    _continue=token,
                    _request_timeout=max(self.timeout, 30),
                )
            except (ApiException, *_TRANSPORT_ERRORS) as exc:
                _unavailable("list evidence ConfigMaps", exc)
            yield from page.items or []
            token = page.metadata._continue if page.metadata else None
            if not token:
                return

    def list(self, chain: str | None = None) -> list[StoredPacket]:
        selector = chain_selector(chain) if chain is not None else PACKET_SELECTOR
        return sorted((_to_packet(cm) for cm in self._list(selector)), key=lambda p: p.name)

    def publish_keys(self, keys: Mapping[str, str]) -> None:
        for key_id, pem in keys.items():
            if self._create(key_manifest(key_id, pem, self.namespace)):
                continue
            existing = self._read(key_configmap_name(key_id))
            data = (existing.data or {}) if existing is not None else {}
            if data.get(DATA_KEY_PEM, "").strip() != pem.strip():
                raise IntegrityError(f"public key {key_id} is published with another value")

    def published_keys(self) -> dict[str, str]:
        keys: dict[str, str] = {}
        for cm in self._list(KEY_SELECTOR):
            data = cm.data or {}
            key_id = data.get(DATA_KEY_ID) or (cm.metadata.annotations or {}).get(A_KEY_ID)
            if key_id and data.get(DATA_KEY_PEM):
                keys[str(key_id)] = str(data[DATA_KEY_PEM])
        return keys

    def publish_log_locator(self, locator: str) -> None:
        """Say where the external log is (create-only; the same locator again is a no-op)."""
        self._create(log_manifest(locator, self.namespace))

    def log_locators(self) -> tuple[str, ...]:
        """Every log locator published here, oldest first."""
        cms = sorted(
            self._list(LOG_SELECTOR),
            key=lambda cm: (str(cm.metadata.creation_timestamp or ""), cm.metadata.name),
        )
        return tuple(str(loc) for cm in cms if (loc := (cm.data or {}).get(DATA_LOG)))
