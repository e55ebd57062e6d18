"""Sessions on the wire: the session middleware (access token, refresh rotation, the
signals), the security headers, login and the CSRF check of every write. The rules
themselves are pure (stella.web.sessions, stella.web.csrf, stella.web.headers).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from stella.secrets.value import SecretValue
from stella.web import kube, metrics, pages
from stella.web.console import Console, Person, blocking, frame
from stella.web.csrf import csrf_refusal
from stella.web.headers import (
    ACCESS_COOKIE,
    REFRESH_COOKIE,
    SECURITY_HEADERS,
    cookie_attributes,
)
from stella.web.sessions import FAMILY_SECONDS, Family, Issued

log = logging.getLogger("stella.web")
audit = logging.getLogger("stella.audit")
security = logging.getLogger("stella.security")

LOGIN_COOKIE = "__Host-stella-login"
# No session: the login itself, static files, probes, metrics, and the webhook gateway
# (its deliveries are signed instead; stella.web.gateway).
PUBLIC = ("/login", "/static/", "/healthz", "/readyz", "/metrics", "/hooks/")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def set_tokens(resp: web.StreamResponse, issued: Issued) -> None:
    resp.set_cookie(ACCESS_COOKIE, issued.access, **cookie_attributes(FAMILY_SECONDS))  # type: ignore[arg-type]
    resp.set_cookie(REFRESH_COOKIE, issued.refresh, **cookie_attributes(FAMILY_SECONDS))  # type: ignore[arg-type]


def clear_tokens(resp: web.StreamResponse) -> None:
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        resp.del_cookie(name, path="/", secure=True, httponly=True, samesite="Strict")


def to_login(why: str) -> web.StreamResponse:
    """Back to the login form (a fresh login CSRF token), saying why: one of
    pages.LOGIN_MESSAGES (a code, so no text of the request is reflected)."""
    resp = web.HTTPSeeOther(f"/login?m={why}")
    clear_tokens(resp)
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
                clear_tokens(resp)
                return resp
            return to_login(_why(outcome.code if outcome else "login"))
        family = outcome.family
        if issued is not None and not await _still_valid(console, family):
            console.sessions.logout(family)
            audit.info(
                "session ended user=%s: the API server no longer accepts its token",
                family.person.username,
            )
            return to_login("expired")
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
            set_tokens(resp, issued)
        return resp

    return middleware


async def _still_valid(console: Console, family: Family) -> bool:
    """At each rotation (every access-token lifetime) the person's own token is reviewed
    again: a revoked or expired Kubernetes/OIDC token ends the console session too. The
    API server unreachable keeps it (its writes would fail anyway)."""
    try:
        person = await blocking(kube.review_token, console.api, family.bearer)
    except Exception:
        return True
    return person is not None and person.username == family.person.username


# ---- handlers -------------------------------------------------------------------------
async def start_session(
    console: Console, request: web.Request, bearer: SecretValue
) -> web.StreamResponse:
    """A new session family for whoever the API server says `bearer` authenticates."""
    if not bearer.reveal() or len(bearer.reveal()) > 8192:
        return to_login("empty")
    try:
        person = await blocking(kube.review_token, console.api, bearer)
    except Exception as exc:
        metrics.LOGINS.labels("unavailable").inc()
        log.warning("TokenReview failed: %s", type(exc).__name__)
        return to_login("unavailable")
    if person is None:
        metrics.LOGINS.labels("refused").inc()
        audit.info("login refused address=%s", request.remote)
        return to_login("refused")
    metrics.LOGINS.labels("ok").inc()
    issued = console.sessions.login(person, bearer, request.remote or "", time.time())
    metrics.SESSIONS.set(len(console.sessions))
    audit.info("login user=%s address=%s", person.username, request.remote)
    resp = web.HTTPSeeOther("/")
    set_tokens(resp, issued)
    return resp


def _why(code: str) -> str:
    return code if code in pages.LOGIN_MESSAGES else "login"


async def check_csrf(request: web.Request, console: Console, who: Person) -> Any:
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
            text=frame(console, who, "Refused", body, ""), content_type="text/html"
        )
    return form
