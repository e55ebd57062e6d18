"""Argo CD Applications as targets, pure: the image override Stella writes (as Argo CD
Image Updater writes back: the kustomize images, or the Helm parameter a target names)
and what an Application's status says about it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal


def repo_of(image: str) -> str:
    """registry/shop/web@sha256:... or registry/shop/web:1.0 -> registry/shop/web."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def entry_name(entry: str) -> str:
    """The image a kustomize override entry replaces: `name=new` or `new`."""
    return entry.split("=", 1)[0] if "=" in entry else repo_of(entry)


def override(images: Sequence[str], image: str) -> list[str]:
    """The list with `image` (pinned) replacing the entry for its repository, or added."""
    repo = repo_of(image)
    out = [e for e in images if entry_name(e) != repo]
    return [*out, image]


def previous(images: Sequence[str], image: str) -> str:
    """The entry for `image`'s repository before Stella changed it ('' when none)."""
    repo = repo_of(image)
    return next((e for e in images if entry_name(e) == repo), "")


def restore(images: Sequence[str], image: str, before: str) -> list[str]:
    """Put back what was there before `image` was written ('' removes Stella's entry)."""
    repo = repo_of(image)
    out = [e for e in images if entry_name(e) != repo]
    return [*out, before] if before else out


def images_of(app: Mapping[str, Any]) -> list[str]:
    kustomize = ((app.get("spec") or {}).get("source") or {}).get("kustomize") or {}
    return [str(i) for i in kustomize.get("images") or []]


def parameters_of(source: Mapping[str, Any]) -> list[dict[str, Any]]:
    """spec.source.helm.parameters (or the same of a status' comparedTo.source)."""
    helm = source.get("helm") or {}
    return [dict(p) for p in helm.get("parameters") or [] if isinstance(p, Mapping)]


def app_parameters(app: Mapping[str, Any]) -> list[dict[str, Any]]:
    return parameters_of((app.get("spec") or {}).get("source") or {})


def parameter(params: Sequence[Mapping[str, Any]], name: str) -> str:
    """The value of Helm parameter `name` ('' when it is not set)."""
    return next((str(p.get("value", "")) for p in params if p.get("name") == name), "")


def set_parameter(
    params: Sequence[Mapping[str, Any]], name: str, value: str
) -> list[dict[str, Any]]:
    """The parameters with `name` set to `value` (its other keys, e.g. forceString, kept),
    or added."""
    out = [dict(p) for p in params]
    for p in out:
        if p.get("name") == name:
            p["value"] = value
            return out
    return [*out, {"name": name, "value": value}]


def restore_parameter(
    params: Sequence[Mapping[str, Any]], name: str, before: str
) -> list[dict[str, Any]]:
    """Put back what parameter `name` held before ('' removes Stella's parameter)."""
    if before:
        return set_parameter(params, name, before)
    return [dict(p) for p in params if p.get("name") != name]


@dataclass(frozen=True, slots=True)
class AppState:
    state: Literal["Synced", "Waiting", "Degraded"]
    message: str
    revision: str


def judge(
    app: Mapping[str, Any], wanted: Sequence[str], parameters: Mapping[str, str] | None = None
) -> AppState:
    """Synced: Argo CD compared against our override (the kustomize entries `wanted`, and
    the Helm `parameters` name -> value), synced it and reports Healthy. Degraded: it did
    compare against our override and reports Degraded. Else Waiting."""
    status = app.get("status") or {}
    sync = status.get("sync") or {}
    health = status.get("health") or {}
    source = (sync.get("comparedTo") or {}).get("source") or {}
    compared = (source.get("kustomize") or {}).get("images") or []
    compared_params = parameters_of(source)
    revision = str(sync.get("revision") or "")
    ours = all(w in compared for w in wanted) and all(
        parameter(compared_params, name) == value for name, value in (parameters or {}).items()
    )
    said = f"sync {sync.get('status', 'Unknown')}, health {health.get('status', 'Unknown')}"
    if health.get("message"):
        said += f" ({str(health['message'])[:300]})"
    if ours and health.get("status") == "Degraded":
        return AppState("Degraded", said, revision)
    if ours and sync.get("status") == "Synced" and health.get("status") == "Healthy":
        return AppState("Synced", said + (f" at {revision[:12]}" if revision else ""), revision)
    if not ours:
        said = "Argo CD has not compared against the new override yet; " + said
    return AppState("Waiting", said, revision)
