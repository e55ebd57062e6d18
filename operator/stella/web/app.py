"""The console's aiohttp application: its read routes, each thin glue; the writes are
stella.web.write_routes, the evidence and DORA stella.web.evidence_routes.

Sessions and CSRF on the wire are stella.web.authn, the console's state and the page frame
stella.web.console; who-may-decide (stella.web.inbox), the HTML (stella.web.pages), the
evidence checks (stella.web.evidence) and the gateway (stella.web.gateway) do the work.
Blocking Kubernetes calls run in the default executor.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import generate_latest

from stella.models.action import ROLLBACK_VERB, VERB_OF_ACTION
from stella.policy.rollback import RollbackPlan
from stella.secrets.value import SecretValue
from stella.web import evidence, kube, metrics, pages, rollbacks
from stella.web.authn import (
    LOGIN_COOKIE,
    check_csrf,
    clear_tokens,
    security_headers,
    session_middleware,
    start_session,
    to_login,
)
from stella.web.console import Console, Person, blocking, frame, html
from stella.web.csrf import csrf_refusal
from stella.web.evidence_routes import checked_evidence, evidence_routes
from stella.web.headers import cookie_attributes
from stella.web.inbox import inbox, may_decide
from stella.web.render import page
from stella.web.write_routes import ENV_ACTIONS, write_routes

log = logging.getLogger("stella.web")
audit = logging.getLogger("stella.audit")
security = logging.getLogger("stella.security")

__all__ = ["Console", "build_app"]


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
        resp = html(page("Log in", pages.login_page(token, message)))
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
            return to_login("csrf")
        bearer = SecretValue(str(form.get("token") or "").strip())
        response = await start_session(console, request, bearer)
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
            return to_login("empty")
        return await start_session(console, request, SecretValue(token.strip()))

    @r.post("/logout")
    async def logout(request: web.Request) -> web.StreamResponse:
        who: Person = request["person"]
        await check_csrf(request, console, who)
        console.sessions.logout(who.family)
        audit.info("logout user=%s", who.family.person.username)
        resp = web.HTTPSeeOther("/login?m=logout")
        clear_tokens(resp)
        return resp

    @r.get("/")
    async def pipelines(request: web.Request) -> web.Response:
        who: Person = request["person"]
        body, _ = await blocking(console.pipeline, who)
        return html(frame(console, who, "Pipelines", body, "/"))

    @r.get("/api/pipeline")
    async def pipeline_json(request: web.Request) -> web.Response:
        who: Person = request["person"]
        since = request.query.get("since", "")
        if since == str(console.view.revision):  # nothing changed since the last poll
            return web.json_response({"revision": console.view.revision, "unchanged": True})
        _, cells = await blocking(console.pipeline, who)
        return web.Response(text=cells, content_type="application/json")

    @r.get("/inbox")
    async def waiting(request: web.Request) -> web.Response:
        who: Person = request["person"]
        items = await blocking(_inbox, console, who)
        body = pages.inbox_page(items, who.family.csrf)
        return html(frame(console, who, "Waiting for me", body, "/inbox", request))

    @r.get("/releases/{namespace}/{name}")
    async def release(request: web.Request) -> web.Response:
        who: Person = request["person"]
        ns, name = request.match_info["namespace"], request.match_info["name"]
        found = await blocking(_release_page, console, who, ns, name)
        if found is None:
            raise web.HTTPNotFound(text=f"No Release {ns}/{name} that you may read.")
        return html(frame(console, who, f"Release {ns}/{name}", found, "/", request))

    @r.get("/environments")
    async def environments(request: web.Request) -> web.Response:
        who: Person = request["person"]
        envs = await blocking(console.readable_environments, who)
        return html(
            frame(console, who, "Environments", pages.environments_page(envs), "/environments")
        )

    @r.get("/environments/{name}")
    async def environment(request: web.Request) -> web.Response:
        who: Person = request["person"]
        name = request.match_info["name"]
        envs = await blocking(console.readable_environments, who)
        body = next((e for e in envs if (e.get("metadata") or {}).get("name") == name), None)
        if body is None:
            raise web.HTTPNotFound(text=f"No Environment {name} that you may read.")
        offers = {
            step
            for step, (action, _) in ENV_ACTIONS.items()
            if pages.env_action_applies(body, action)
            and await blocking(
                who.permissions.may, VERB_OF_ACTION[action], "environments", "", name
            )
        }
        plan = rollbacks.plan(body)
        offer_rollback = isinstance(plan, RollbackPlan) and await blocking(
            who.permissions.may, ROLLBACK_VERB, "environments", "", name
        )
        page_body = pages.environment_page(
            body,
            offers,
            who.family.csrf,
            datetime.now(UTC),
            plan if offer_rollback and isinstance(plan, RollbackPlan) else None,
        )
        title = f"Environment {name}"
        return html(frame(console, who, title, page_body, "/environments", request))

    return r


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
    promotable = {
        str(entry.get("name") or "")
        for entry in (body.get("status") or {}).get("environments") or []
        if pages.awaits_promotion(entry)
        and who.permissions.may("promote", "environments", "", str(entry.get("name") or ""))
    }
    packets = None
    if who.permissions.may("list", "configmaps", console.evidence_namespace):
        checked = checked_evidence(console, who, "release")
        packets = evidence.of_release(checked, ns, name)
    return pages.release_page(body, verdicts, who.family.csrf, live, decisions, packets, promotable)


def build_app(console: Console) -> web.Application:
    app = web.Application(
        middlewares=[security_headers, session_middleware(console)],
        client_max_size=64 * 1024,
    )
    app.add_routes(routes(console))
    app.add_routes(write_routes(console))
    app.add_routes(evidence_routes(console))
    return app
