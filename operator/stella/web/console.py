"""The console's state and its per-person handles: the view, the sessions, the rate
limit, the gateway; what each person may read (their own SelfSubjectAccessReviews); the
page frame. Shared by the routes (stella.web.app) and the session glue (stella.web.authn).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from kubernetes import client

from stella.admission.ratelimit import RateLimiter
from stella.web import kube, pages
from stella.web.quotas import HourlyQuota, VolumeWatch
from stella.web.render import page
from stella.web.sessions import Family, SessionStore
from stella.web.view import ConsoleView


@dataclass
class Person:
    """One session family's handles to the API server, as that person."""

    family: Family
    api: client.ApiClient
    permissions: kube.Permissions


@dataclass
class Console:
    view: ConsoleView
    api: client.ApiClient  # the console's own identity: TokenReview and the view only
    sessions: SessionStore
    limiter: RateLimiter
    header_login: bool = False  # /login/header: behind oauth2-proxy only
    gateway: Any = None  # stella.web.gateway.Gateway: /hooks/NAMESPACE/NAME
    evidence_namespace: str = "stella-system"  # the operator's: where its evidence lives
    export_limit: int = 5 * 1024 * 1024  # bytes one evidence export may hold (T9)
    # Per identity: evidence exports per hour (429 beyond), and the reads-per-hour signal.
    export_quota: HourlyQuota = field(default_factory=lambda: HourlyQuota(limit=20))
    read_watch: VolumeWatch = field(default_factory=lambda: VolumeWatch(threshold=300))

    def __post_init__(self) -> None:
        self._people: dict[str, Person] = {}
        # The pipeline as read by people who may read the same namespaces, for one
        # revision of the view: every open page polls it every 2 s.
        self._pipelines: dict[
            tuple[int, frozenset[str], bool], tuple[pages.Pipeline, str, str]
        ] = {}

    def person(self, family: Family) -> Person:
        held = self._people.get(family.id)
        if held is None or held.family is not family:
            api = kube.as_person(self.api, family.bearer)
            held = Person(family, api, kube.Permissions(api))
            self._people[family.id] = held
            if len(self._people) > 2 * max(1, len(self.sessions)) + 100:
                live = {f for f in self._people if not self._people[f].family.revoked}
                self._people = {k: v for k, v in self._people.items() if k in live}
        return held

    # ---- what this person may read --------------------------------------------------
    def readable_releases(self, who: Person) -> list[Any]:
        allowed: dict[str, bool] = {}
        out = []
        for body in self.view.release_list():
            ns = str((body.get("metadata") or {}).get("namespace") or "")
            if ns not in allowed:
                allowed[ns] = who.permissions.may("list", "releases", ns)
            if allowed[ns]:
                out.append(body)
        return out

    def pipeline(self, who: Person) -> tuple[str, str]:
        """The pipeline this person may read as the page's HTML body and as the cells' JSON;
        built once per revision of the view and set of readable namespaces."""
        revision = self.view.revision
        namespaces = frozenset(
            ns
            for ns in self.view.release_namespaces()
            if who.permissions.may("list", "releases", ns)
        )
        key = (revision, namespaces, who.permissions.may("list", "environments"))
        hit = self._pipelines.get(key)
        if hit is None:
            envs = self.view.environment_list() if key[2] else []
            rels = [
                b
                for b in self.view.release_list()
                if str((b.get("metadata") or {}).get("namespace") or "") in namespaces
            ]
            built = pages.pipeline(envs, rels)
            cells = json.dumps({"revision": revision, "cells": built.cells()})
            hit = (built, cells, pages.pipeline_page(built, revision))
            if any(k[0] != revision for k in self._pipelines) or len(self._pipelines) > 64:
                self._pipelines = {}
            self._pipelines[key] = hit
        return hit[2], hit[1]

    def readable_environments(self, who: Person) -> list[Any]:
        if not who.permissions.may("list", "environments"):
            return []
        return self.view.environment_list()


async def blocking(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def frame(
    console: Console,
    who: Person,
    title: str,
    body: str,
    active: str,
    request: web.Request | None = None,
) -> str:
    notice = ""
    if request is not None and request.query.get("done"):
        notice = f"Recorded: {request.query['done']}."
    return page(
        title,
        body,
        user=who.family.person.username,
        csrf=who.family.csrf,
        active=active,
        notice=notice,
        synced=console.view.synced,
    )
