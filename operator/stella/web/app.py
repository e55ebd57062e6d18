"""The console's aiohttp application: routes, the session middleware, the headers.

Thin glue: sessions (stella.web.sessions), CSRF (stella.web.csrf), who-may-decide
(stella.web.inbox) and the HTML (stella.web.pages) are pure modules; this file moves
cookies, forms and API calls between them. Blocking Kubernetes calls run in the
default executor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web
from kubernetes import client
from prometheus_client import generate_latest

from stella.admission.ratelimit import RateLimiter
from stella.secrets.value import SecretValue
from stella.web import evidence, kube, metrics, pages
from stella.web.csrf import csrf_refusal
from stella.web.headers import (
    ACCESS_COOKIE,
    REFRESH_COOKIE,
    SECURITY_HEADERS,
    cookie_attributes,
)
from stella.web.inbox import inbox, may_decide
from stella.web.render import page
from stella.web.sessions import FAMILY_SECONDS, Family, Issued, SessionStore
from stella.web.view import ConsoleView

log = logging.getLogger("stella.web")
audit = logging.getLogger("stella.audit")
security = logging.getLogger("stella.security")

LOGIN_COOKIE = "__Host-stella-login"
# No session: the login itself, static files, probes, metrics, and the webhook gateway
# (its deliveries are signed instead; stella.web.gateway).
PUBLIC = ("/login", "/static/", "/healthz", "/readyz", "/metrics", "/hooks/")
MAX_COMMENT = 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


async def _blocking(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def _set_tokens(resp: web.StreamResponse, issued: Issued) -> None:
    resp.set_cookie(ACCESS_COOKIE, issued.access, **cookie_attributes(FAMILY_SECONDS))  # type: ignore[arg-type]
    resp.set_cookie(REFRESH_COOKIE, issued.refresh, **cookie_attributes(FAMILY_SECONDS))  # type: ignore[arg-type]


def _clear_tokens(resp: web.StreamResponse) -> None:
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        resp.del_cookie(name, path="/", secure=True, httponly=True, samesite="Strict")


def _to_login(why: str) -> web.StreamResponse:
    """Back to the login form (a fresh login CSRF token), saying why: one of
    pages.LOGIN_MESSAGES (a code, so no text of the request is reflected)."""
    resp = web.HTTPSeeOther(f"/login?m={why}")
    _clear_tokens(resp)
    return resp


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        resp = exc
    resp.headers.update(SECURITY_HEADERS)
    if isinstance(resp, web.HTTPException) and resp.status >= 400 and not resp.text:
        resp.text = resp.reason
    return resp


def session_middleware(console: Console) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PUBLIC):
            return await handler(request)
        address = request.remote or ""
        now = time.time()
        access = request.cookies.get(ACCESS_COOKIE, "")
        outcome = console.sessions.authenticate(access, address, now) if access else None
        issued: Issued | None = None
        if outcome is None or not outcome.ok:
            refresh = request.cookies.get(REFRESH_COOKIE, "")
            if refresh and (outcome is None or outcome.signal is None):
                outcome, issued = console.sessions.refresh(refresh, address, now)
        if outcome is None or outcome.family is None:
            if outcome is not None and outcome.signal is not None:
                metrics.SESSION_SIGNALS.labels(outcome.signal.value).inc()
                security.warning(
                    "console session signal=%s address=%s path=%s: %s",
                    outcome.signal.value,
                    address,
                    request.path,
                    outcome.reason,
                )
            metrics.SESSIONS.set(len(console.sessions))
            if request.path.startswith("/api/"):
                resp: web.StreamResponse = web.json_response(
                    {"error": outcome.reason if outcome else "log in"}, status=401
                )
                resp.headers["X-Stella-Login"] = _why(outcome.code if outcome else "login")
                _clear_tokens(resp)
                return resp
            return _to_login(_why(outcome.code if outcome else "login"))
        family = outcome.family
        if issued is not None and not await _still_valid(console, family):
            console.sessions.logout(family)
            audit.info(
                "session ended user=%s: the API server no longer accepts its token",
                family.person.username,
            )
            return _to_login("expired")
        allowed, retry_after = console.limiter.allow(family.person.username)
        if not allowed:
            metrics.RATE_LIMITED.inc()
            wait = max(1, int(retry_after + 0.999))
            return web.Response(
                status=429,
                text=f"Too many requests from {family.person.username}: retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        request["person"] = console.person(family)
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            resp = exc
        if issued is not None:
            _set_tokens(resp, issued)
        return resp

    return middleware


async def _still_valid(console: Console, family: Family) -> bool:
    """At each rotation (every access-token lifetime) the person's own token is reviewed
    again: a revoked or expired Kubernetes/OIDC token ends the console session too. The
    API server unreachable keeps it (its writes would fail anyway)."""
    try:
        person = await _blocking(kube.review_token, console.api, family.bearer)
    except Exception:
        return True
    return person is not None and person.username == family.person.username


# ---- handlers -------------------------------------------------------------------------
def routes(console: Console) -> web.RouteTableDef:
    r = web.RouteTableDef()

    @r.get("/healthz")
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok" if console.view.synced else "syncing")

    @r.post("/hooks/{namespace}/{name}")
    async def hook(request: web.Request) -> web.Response:
        if console.gateway is None:
            raise web.HTTPNotFound()
        return await console.gateway.deliver(request)  # type: ignore[no-any-return]

    @r.get("/readyz")
    async def readyz(request: web.Request) -> web.Response:
        """Ready once the view holds a complete LIST of every kind."""
        return (
            web.Response(text="ok", status=200)
            if console.view.synced
            else web.Response(text="the console's view is not synced yet", status=503)
        )

    @r.get("/metrics")
    async def prom(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.REGISTRY), content_type="text/plain")

    @r.get("/static/{name}")
    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        types = {"console.js": "text/javascript", "console.css": "text/css"}
        if name not in types:
            raise web.HTTPNotFound()
        text = resources.files("stella.web").joinpath("static", name).read_text()
        return web.Response(text=text, content_type=types[name], charset="utf-8")

    @r.get("/login")
    async def login_form(request: web.Request) -> web.Response:
        # One token per browser until it logs in: a second tab, or a stray request
        # redirected here, must not invalidate the form already on screen.
        token = request.cookies.get(LOGIN_COOKIE, "")
        if not (20 <= len(token) <= 64):
            token = secrets.token_urlsafe(24)
        message = pages.LOGIN_MESSAGES.get(request.query.get("m", ""), "")
        resp = _html(page("Log in", pages.login_page(token, message)))
        resp.set_cookie(LOGIN_COOKIE, token, **cookie_attributes(600))  # type: ignore[arg-type]
        return resp

    @r.post("/login")
    async def login(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        refused = csrf_refusal(
            request.cookies.get(LOGIN_COOKIE, ""),
            str(form.get("csrf") or "") or None,
            request.headers.get("Origin"),
            request.headers.get("Referer"),
            request.host,
        )
        if refused is not None or not request.cookies.get(LOGIN_COOKIE):
            metrics.SESSION_SIGNALS.labels("csrf").inc()
            security.warning(
                "console login csrf refused address=%s: %s",
                request.remote,
                refused or "no login cookie",
            )
            return _to_login("csrf")
        bearer = SecretValue(str(form.get("token") or "").strip())
        response = await _start_session(console, request, bearer)
        response.del_cookie(LOGIN_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
        return response

    @r.get("/login/header")
    async def login_by_header(request: web.Request) -> web.StreamResponse:
        """Behind oauth2-proxy (docs/console.md): the proxy passes the person's OIDC ID
        token as `Authorization: Bearer`; the API server checks it like any other token.
        A navigation from another site cannot set this header."""
        if not console.header_login:
            raise web.HTTPNotFound(text="header login is off (STELLA_WEB_HEADER_LOGIN)")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return _to_login("empty")
        return await _start_session(console, request, SecretValue(token.strip()))

    @r.post("/logout")
    async def logout(request: web.Request) -> web.StreamResponse:
        who: Person = request["person"]
        await _check_csrf(request, console, who)
        console.sessions.logout(who.family)
        audit.info("logout user=%s", who.family.person.username)
        resp = web.HTTPSeeOther("/login?m=logout")
        _clear_tokens(resp)
        return resp

    @r.get("/")
    async def pipelines(request: web.Request) -> web.Response:
        who: Person = request["person"]
        body, _ = await _blocking(console.pipeline, who)
        return _html(_frame(console, who, "Pipelines", body, "/"))

    @r.get("/api/pipeline")
    async def pipeline_json(request: web.Request) -> web.Response:
        who: Person = request["person"]
        since = request.query.get("since", "")
        if since == str(console.view.revision):  # nothing changed since the last poll
            return web.json_response({"revision": console.view.revision, "unchanged": True})
        _, cells = await _blocking(console.pipeline, who)
        return web.Response(text=cells, content_type="application/json")

    @r.get("/inbox")
    async def waiting(request: web.Request) -> web.Response:
        who: Person = request["person"]
        items = await _blocking(_inbox, console, who)
        body = pages.inbox_page(items, who.family.csrf)
        return _html(_frame(console, who, "Waiting for me", body, "/inbox", request))

    @r.get("/releases/{namespace}/{name}")
    async def release(request: web.Request) -> web.Response:
        who: Person = request["person"]
        ns, name = request.match_info["namespace"], request.match_info["name"]
        found = await _blocking(_release_page, console, who, ns, name)
        if found is None:
            raise web.HTTPNotFound(text=f"No Release {ns}/{name} that you may read.")
        return _html(_frame(console, who, f"Release {ns}/{name}", found, "/", request))

    @r.post("/releases/{namespace}/{name}/decide")
    async def decide(request: web.Request) -> web.StreamResponse:
        who: Person = request["person"]
        form = await _check_csrf(request, console, who)
        ns, name = request.match_info["namespace"], request.match_info["name"]
        env = str(form.get("environment") or "")
        decision = str(form.get("decision") or "")
        comment = str(form.get("comment") or "")[:MAX_COMMENT]
        if decision not in ("Approve", "Reject") or not env:
            raise web.HTTPBadRequest(text="a decision needs an environment and Approve or Reject")
        # No check of our own here: the API server (admission, RBAC, SoD) decides.
        result = await _blocking(kube.create_approval, who.api, ns, name, env, decision, comment)
        user = who.family.person.username
        if isinstance(result, kube.Refused):
            metrics.WRITES.labels("approval", "refused").inc()
            audit.info(
                "write user=%s kind=Approval release=%s/%s environment=%s decision=%s "
                "result=refused code=%d",
                user,
                ns,
                name,
                env,
                decision,
                result.code,
            )
            body = pages.refused_page(ns, name, decision, env, result.message)
            return _html(_frame(console, who, "Refused", body, ""), status=403)
        metrics.WRITES.labels("approval", "ok").inc()
        created = str((result.get("metadata") or {}).get("name") or "")
        audit.info(
            "write user=%s kind=Approval name=%s/%s release=%s environment=%s decision=%s "
            "result=ok",
            user,
            ns,
            created,
            name,
            env,
            decision,
        )
        raise web.HTTPSeeOther(f"/releases/{ns}/{name}?done={decision}+{env}")

    @r.get("/evidence")
    async def evidence_page(request: web.Request) -> web.Response:
        who: Person = request["person"]
        ns = console.evidence_namespace
        forbidden = await _evidence_forbidden(console, who)
        if forbidden is not None:
            return forbidden
        keys, packets = await _blocking(kube.read_evidence, who.api, ns)
        checked = await _blocking(evidence.check, keys, packets)
        metrics.EVIDENCE_READS.labels("page").inc()
        audit.info(
            "evidence read user=%s namespace=%s packets=%d verified=%s",
            who.family.person.username,
            ns,
            len(packets),
            checked.ok,
        )
        body = pages.evidence_page(checked, ns)
        return _html(_frame(console, who, "Evidence", body, "/evidence"))

    @r.get("/evidence/export")
    async def evidence_export(request: web.Request) -> web.StreamResponse:
        who: Person = request["person"]
        ns = console.evidence_namespace
        forbidden = await _evidence_forbidden(console, who)
        if forbidden is not None:
            return forbidden
        chain = request.query.get("chain") or None
        keys, packets = await _blocking(kube.read_evidence, who.api, ns)
        user = who.family.person.username
        try:
            doc = evidence.export_document(keys, packets, ns, chain, console.export_limit)
        except evidence.TooLarge as exc:
            metrics.EXPORT_BYTES.observe(exc.size)
            audit.info(
                "evidence export user=%s namespace=%s chain=%s bytes=%d result=refused",
                user,
                ns,
                chain or "*",
                exc.size,
            )
            security.warning(
                "console evidence export over the limit user=%s bytes=%d", user, exc.size
            )
            body = pages.too_large_page(str(exc))
            return _html(_frame(console, who, "Evidence", body, "/evidence"), status=413)
        metrics.EVIDENCE_READS.labels("export").inc()
        metrics.EXPORT_BYTES.observe(len(doc))
        audit.info(
            "evidence export user=%s namespace=%s chain=%s bytes=%d result=ok",
            user,
            ns,
            chain or "*",
            len(doc),
        )
        name = f"stella-evidence-{chain or 'all'}.json".replace("/", "_")
        return web.Response(
            body=doc,
            content_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @r.get("/environments")
    async def environments(request: web.Request) -> web.Response:
        who: Person = request["person"]
        envs = await _blocking(console.readable_environments, who)
        return _html(
            _frame(console, who, "Environments", pages.environments_page(envs), "/environments")
        )

    @r.post("/environments/{name}/clear-halt")
    async def clear_halt(request: web.Request) -> web.StreamResponse:
        who: Person = request["person"]
        form = await _check_csrf(request, console, who)
        name = request.match_info["name"]
        reason = str(form.get("reason") or "").strip()[:MAX_COMMENT]
        if not reason:
            raise web.HTTPBadRequest(text="clearing a halt needs a reason: say why it is safe now")
        result = await _blocking(kube.create_action, who.api, "ClearHalt", name, reason)
        user = who.family.person.username
        ok = not isinstance(result, kube.Refused)
        metrics.WRITES.labels("action", "ok" if ok else "refused").inc()
        audit.info(
            "write user=%s kind=Action action=ClearHalt environment=%s result=%s",
            user,
            name,
            "ok" if ok else "refused",
        )
        if isinstance(result, kube.Refused):
            body = pages.action_refused_page("clear the halt of", name, result.message)
            return _html(_frame(console, who, "Refused", body, ""), status=403)
        raise web.HTTPSeeOther(f"/environments/{name}?done=ClearHalt")

    @r.get("/environments/{name}")
    async def environment(request: web.Request) -> web.Response:
        who: Person = request["person"]
        name = request.match_info["name"]
        envs = await _blocking(console.readable_environments, who)
        body = next((e for e in envs if (e.get("metadata") or {}).get("name") == name), None)
        if body is None:
            raise web.HTTPNotFound(text=f"No Environment {name} that you may read.")
        halted = bool((body.get("status") or {}).get("halted"))
        may_clear = halted and await _blocking(
            who.permissions.may, "clear-halt", "environments", "", name
        )
        page_body = pages.environment_page(body, may_clear, who.family.csrf)
        title = f"Environment {name}"
        return _html(_frame(console, who, title, page_body, "/environments", request))

    return r


async def _start_session(
    console: Console, request: web.Request, bearer: SecretValue
) -> web.StreamResponse:
    """A new session family for whoever the API server says `bearer` authenticates."""
    if not bearer.reveal() or len(bearer.reveal()) > 8192:
        return _to_login("empty")
    try:
        person = await _blocking(kube.review_token, console.api, bearer)
    except Exception as exc:
        metrics.LOGINS.labels("unavailable").inc()
        log.warning("TokenReview failed: %s", type(exc).__name__)
        return _to_login("unavailable")
    if person is None:
        metrics.LOGINS.labels("refused").inc()
        audit.info("login refused address=%s", request.remote)
        return _to_login("refused")
    metrics.LOGINS.labels("ok").inc()
    issued = console.sessions.login(person, bearer, request.remote or "", time.time())
    metrics.SESSIONS.set(len(console.sessions))
    audit.info("login user=%s address=%s", person.username, request.remote)
    resp = web.HTTPSeeOther("/")
    _set_tokens(resp, issued)
    return resp


async def _evidence_forbidden(console: Console, who: Person) -> web.Response | None:
    """A 403 page unless the person may read the evidence ConfigMaps (their own RBAC)."""
    ns = console.evidence_namespace
    if await _blocking(who.permissions.may, "list", "configmaps", ns):
        return None
    body = pages.evidence_forbidden_page(ns)
    return _html(_frame(console, who, "Evidence", body, "/evidence"), status=403)


def _why(code: str) -> str:
    return code if code in pages.LOGIN_MESSAGES else "login"


async def _check_csrf(request: web.Request, console: Console, who: Person) -> Any:
    """The posted form, when its CSRF token and origin are this session's; else a 403 page
    (raised) saying nothing was changed."""
    form = await request.post()
    refused = csrf_refusal(
        who.family.csrf,
        str(form.get("csrf") or request.headers.get("X-CSRF-Token") or "") or None,
        request.headers.get("Origin"),
        request.headers.get("Referer"),
        request.host,
    )
    if refused is not None:
        metrics.SESSION_SIGNALS.labels("csrf").inc()
        security.warning(
            "console csrf refused user=%s path=%s: %s",
            who.family.person.username,
            request.path,
            refused,
        )
        body = pages.csrf_refused_page(refused)
        raise web.HTTPForbidden(
            text=_frame(console, who, "Refused", body, ""), content_type="text/html"
        )
    return form


def _frame(
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


def _inbox(console: Console, who: Person) -> list[Any]:
    if not console.view.synced:
        return []
    authorizer = kube.PersonAuthorizer(who.permissions, who.family.person)
    return inbox(console.view, who.family.person, authorizer, console.readable_releases(who))


def _release_page(console: Console, who: Person, ns: str, name: str) -> str | None:
    body = console.view.releases.get((ns, name))
    if body is None or not who.permissions.may("get", "releases", ns, name):
        return None
    authorizer = kube.PersonAuthorizer(who.permissions, who.family.person)
    verdicts = {}
    ref = f"{ns}/{name}"
    live = set()
    for env in console.readable_environments(who):
        env_name = str((env.get("metadata") or {}).get("name") or "")
        if (env.get("status") or {}).get("currentRelease") == ref:
            live.add(env_name)
    if console.view.synced:
        for entry in (body.get("status") or {}).get("environments") or []:
            if entry.get("phase") == "WaitingForApproval":
                env_name = str(entry.get("name") or "")
                verdicts[env_name] = may_decide(
                    console.view, who.family.person, authorizer, ns, name, env_name
                )
    decisions = {
        str(env): sorted(
            console.view.approvals_for((ns, name), str(env)),
            key=lambda a: str((a.get("metadata") or {}).get("creationTimestamp") or ""),
        )
        for env in (body.get("spec") or {}).get("environments") or []
    }
    if not who.permissions.may("list", "approvals", ns):
        decisions = {}
    return pages.release_page(body, verdicts, who.family.csrf, live, decisions)


def build_app(console: Console) -> web.Application:
    app = web.Application(
        middlewares=[security_headers, session_middleware(console)],
        client_max_size=64 * 1024,
    )
    app.add_routes(routes(console))
    return app
