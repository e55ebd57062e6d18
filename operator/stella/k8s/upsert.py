"""Create an object, or replace the one there guarded by its resourceVersion — for the
few objects the operator owns by name (RBAC: create, and get/update of that name only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException


def upsert(
    read: Callable[[], Any],
    create: Callable[[dict[str, Any]], Any],
    replace: Callable[[dict[str, Any]], Any],
    body: dict[str, Any],
    what: str,
    attempts: int = 5,
) -> None:
    """read() the current object (404: create BODY), else replace it with BODY at its
    resourceVersion; a race lost (409) is read and tried again."""
    for _ in range(attempts):
        try:
            current = read()
        except ApiException as exc:
            if exc.status != 404:
                raise
            body["metadata"].pop("resourceVersion", None)
            try:
                create(body)
                return
            except ApiException as again:
                if again.status != 409:
                    raise
                continue
        meta = getattr(current, "metadata", None)
        body["metadata"]["resourceVersion"] = getattr(meta, "resource_version", None)
        try:
            replace(body)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
    raise RuntimeError(f"{what} kept changing under the operator; try again")
