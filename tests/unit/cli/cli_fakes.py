"""An in-memory stand-in of the CustomObjectsApi calls the CLI makes (get, list, create of
stella.io objects), so a unit test can assert what a command creates — or that it creates
nothing. The real API server is exercised in tests/integration/cli."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

Key = tuple[str, str | None, str]


def api_exception(status: int, message: str, reason: str = "") -> ApiException:
    exc = ApiException(
        status=status, reason=reason or {403: "Forbidden", 404: "Not Found"}.get(status, "Error")
    )
    exc.body = json.dumps(
        {"kind": "Status", "status": "Failure", "message": message, "code": status}
    )
    return exc


class FakeCustomObjects:
    """The CustomObjectsApi methods `stella.cli.kube.Kube` calls, over a dict."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.fail_create: ApiException | None = None
        self.on_get: Callable[[dict[str, Any]], None] | None = None
        self._suffix = itertools.count(1)

    def add(self, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        self.objects[(plural, meta.get("namespace"), meta["name"])] = obj
        return obj

    def _get(self, plural: str, ns: str | None, name: str) -> dict[str, Any]:
        try:
            obj = self.objects[(plural, ns, name)]
        except KeyError:
            raise api_exception(404, f'{plural}.stella.io "{name}" not found') from None
        if self.on_get is not None:
            self.on_get(obj)
        return obj

    def _list(self, plural: str, ns: str | None, all_ns: bool = False) -> dict[str, Any]:
        items = [o for (p, n, _), o in self.objects.items() if p == plural and (all_ns or n == ns)]
        return {"items": items}

    def _create(self, plural: str, ns: str | None, body: dict[str, Any]) -> dict[str, Any]:
        if self.fail_create is not None:
            raise self.fail_create
        obj = json.loads(json.dumps(body))
        meta = obj["metadata"]
        if "name" not in meta:
            meta["name"] = f"{meta['generateName']}x{next(self._suffix):04d}"
        if ns is not None:
            meta["namespace"] = ns
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        self.created.append(obj)
        return self.add(plural, obj)

    # the client's method names
    def get_cluster_custom_object(self, g: str, v: str, plural: str, name: str, **_: Any) -> Any:
        return self._get(plural, None, name)

    def get_namespaced_custom_object(
        self, g: str, v: str, ns: str, plural: str, name: str, **_: Any
    ) -> Any:
        return self._get(plural, ns, name)

    def list_cluster_custom_object(self, g: str, v: str, plural: str, **_: Any) -> Any:
        return self._list(plural, None, all_ns=True)

    def list_namespaced_custom_object(self, g: str, v: str, ns: str, plural: str, **_: Any) -> Any:
        return self._list(plural, ns)

    def create_cluster_custom_object(self, g: str, v: str, plural: str, body: Any, **_: Any) -> Any:
        return self._create(plural, None, body)

    def create_namespaced_custom_object(
        self, g: str, v: str, ns: str, plural: str, body: Any, **_: Any
    ) -> Any:
        return self._create(plural, ns, body)


def environment(
    name: str, requires: tuple[str, ...] = (), auto: bool | None = None, **status: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"requires": list(requires)}
    if auto is not None:
        spec["autoPromote"] = auto
    return {"metadata": {"name": name}, "spec": spec, "status": status}


def release(name: str, ns: str, envs: tuple[str, ...], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"version": "1.4.2", "components": [], "environments": list(envs)},
        "status": status,
    }
