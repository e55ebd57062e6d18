"""Argo CD Applications as targets, pure: the kustomize image override Stella writes (as
Argo CD Image Updater does) and what an Application's status says about it."""

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


@dataclass(frozen=True, slots=True)
class AppState:
    state: Literal["Synced", "Waiting", "Degraded"]
    message: str
    revision: str


def judge(app: Mapping[str, Any], wanted: Sequence[str]) -> AppState:
    """Synced: Argo CD compared against our override, synced it and reports Healthy.
    Degraded: it did compare against our override and reports Degraded. Else Waiting."""
    status = app.get("status") or {}
    sync = status.get("sync") or {}
    health = status.get("health") or {}
    compared = (
        ((sync.get("comparedTo") or {}).get("source") or {}).get("kustomize") or {}
    ).get("images") or []
    revision = str(sync.get("revision") or "")
    ours = all(w in compared for w in wanted)
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
