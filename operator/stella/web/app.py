"""The console's aiohttp application: its routes, each thin glue.

Sessions and CSRF on the wire are stella.web.authn, the console's state and the page frame
stella.web.console; who-may-decide (stella.web.inbox), the HTML (stella.web.pages), the
evidence checks (stella.web.evidence) and the gateway (stella.web.gateway) do the work.
Blocking Kubernetes calls run in the default executor.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import generate_latest

from stella.models.action import ROLLBACK_VERB, VERB_OF_ACTION
from stella.policy.rollback import RollbackPlan, rollback_body
from stella.secrets.value import SecretValue
from stella.web import evidence, evidence_pages, kube, metrics, pages, rollbacks
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
from stella.web.headers import cookie_attributes
from stella.web.inbox import inbox, may_decide
from stella.web.render import page

log = logging.getLogger("stella.web")
audit = logging.getLogger("stella.audit")
security = logging.getLogger("stella.security")

MAX_COMMENT = 1024
# The Environment actions a page may offer: URL step -> (Action, what it does in words).
ENV_ACTIONS: dict[str, tuple[str, str]] = {
    "clear-halt": ("ClearHalt", "clear the halt of"),
    "suspend": ("Suspend", "suspend"),
    "resume": ("Resume", "resume"),
}

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

    @r.post("/releases/{namespace}/{name}/decide")
    async def decide(request: web.Request) -> web.StreamResponse:
        who: Person = request["person"]
        form = await check_csrf(request, console, who)
        ns, name = request.match_info["namespace"], request.match_info["name"]
        env = str(form.get("environment") or "")
        decision = str(form.get("decision") or "")
        comment = str(form.get("comment") or "")[:MAX_COMMENT]
        if decision not in ("Approve", "Reject") or not env:
            raise web.HTTPBadRequest(text="a decision needs an environment and Approve or Reject")
        # No check of our own here: the API server (admission, RBAC, SoD) decides.
        result = await blocking(kube.create_approval, who.api, ns, name, env, decision, comment)
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
            return html(frame(console, who, "Refused", body, ""), status=403)
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

    @r.post("/releases/{namespace}/{name}/promote")
    async def promote(request: web.Request) -> web.StreamResponse:
        """A Promote Action created with the person's token: admission stamps them as its
        actor and RBAC (`promote` on the Environment) decides, as with `stella promote`."""
        who: Person = request["person"]
        form = await check_csrf(request, console, who)
        ns, name = request.match_info["namespace"], request.match_info["name"]
        env = str(form.get("environment") or "")
        reason = str(form.get("reason") or "").strip()[:MAX_COMMENT]
        if not env:
            raise web.HTTPBadRequest(text="to promote, name the environment")
        ref = f"{ns}/{name}"
        result = await blocking(kube.create_action, who.api, "Promote", env, reason, ref)
        _written(
            who, "action", result, kind="Action", action="Promote", release=ref, environment=env
        )
        if isinstance(result, kube.Refused):
            body = pages.refused_page(ns, name, "Promote", env, result.message)
            return html(frame(console, who, "Refused", body, ""), status=403)
        raise web.HTTPSeeOther(f"/releases/{ns}/{name}?done=Promote+{env}")

    @r.get("/evidence")
    async def evidence_page(request: web.Request) -> web.Response:
        who: Person = request["person"]
        ns = console.evidence_namespace
        forbidden = await _evidence_forbidden(console, who)
        if forbidden is not None:
            return forbidden
        checked = await blocking(_checked_evidence, console, who, "page")
        body = evidence_pages.evidence_page(checked, ns)
        return html(frame(console, who, "Evidence", body, "/evidence"))

    @r.get("/dora")
    async def dora_page(request: web.Request) -> web.Response:
        who: Person = request["person"]
        ns = console.evidence_namespace
        forbidden = await _evidence_forbidden(console, who, "DORA", "/dora")
        if forbidden is not None:
            return forbidden
        checked, rows = await blocking(_dora, console, who)
        body = evidence_pages.dora_page(checked, rows, ns)
        return html(frame(console, who, "DORA", body, "/dora"))

    @r.get("/evidence/export")
    async def evidence_export(request: web.Request) -> web.StreamResponse:
        who: Person = request["person"]
        ns = console.evidence_namespace
        forbidden = await _evidence_forbidden(console, who)
        if forbidden is not None:
            return forbidden
        chain = request.query.get("chain") or None
        user = who.family.person.username
        retry = console.export_quota.take(user, time.monotonic())
        if retry is not None:
            metrics.QUOTA_REFUSED.labels("evidence-export").inc()
            audit.info(
                "evidence export user=%s namespace=%s chain=%s result=quota", user, ns, chain or "*"
            )
            security.warning(
                "console evidence export quota reached user=%s retry_after=%ds", user, retry
            )
            body = evidence_pages.quota_page(console.export_quota.limit, retry)
            resp = html(frame(console, who, "Evidence", body, "/evidence"), status=429)
            resp.headers["Retry-After"] = str(int(retry))
            return resp
        keys, packets = await blocking(kube.read_evidence, who.api, ns)
        _watch_reads(console, user)
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
            body = evidence_pages.too_large_page(str(exc))
            return html(frame(console, who, "Evidence", body, "/evidence"), status=413)
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
        envs = await blocking(console.readable_environments, who)
        return html(
            frame(console, who, "Environments", pages.environments_page(envs), "/environments")
        )

    @r.post("/environments/{name}/{step:clear-halt|suspend|resume}")
    async def environment_action(request: web.Request) -> web.StreamResponse:
        """ClearHalt, Suspend or Resume: an Action created with the person's token."""
        who: Person = request["person"]
        form = await check_csrf(request, console, who)
        name, step = request.match_info["name"], request.match_info["step"]
        action, words = ENV_ACTIONS[step]
        reason = str(form.get("reason") or "").strip()[:MAX_COMMENT]
        if not reason and action != "Resume":
            raise web.HTTPBadRequest(text=f"to {words} {name}, say why (a reason is kept)")
        result = await blocking(kube.create_action, who.api, action, name, reason)
        _written(who, "action", result, kind="Action", action=action, environment=name)
        if isinstance(result, kube.Refused):
            body = pages.action_refused_page(words, name, result.message)
            return html(frame(console, who, "Refused", body, ""), status=403)
        raise web.HTTPSeeOther(f"/environments/{name}?done={action}")

    @r.post("/environments/{name}/rollback")
    async def rollback(request: web.Request) -> web.StreamResponse:
        """A rollback Release (the earlier Release's spec, into this Environment only)
        created with the person's token, as `stella rollback ENV --to NS/REL` does:
        admission checks their `rollback` verb and the Environment's history."""
        who: Person = request["person"]
        form = await check_csrf(request, console, who)
        name, to = request.match_info["name"], str(form.get("to") or "")
        env = next(
            (e for e in await blocking(console.readable_environments, who)
             if (e.get("metadata") or {}).get("name") == name),
            None,
        )  # fmt: skip
        if env is None:
            raise web.HTTPNotFound(text=f"No Environment {name} that you may read.")
        plan = rollbacks.plan(env, to or None)
        if not isinstance(plan, RollbackPlan):
            raise web.HTTPConflict(text=f"cannot roll back {name}: {plan.message}")
        ns, source_name = plan.to_release.split("/", 1)
        source = console.view.releases.get((ns, source_name))
        if source is None:
            raise web.HTTPConflict(
                text=f"{plan.to_release} no longer exists, so it cannot be copied"
            )
        body = rollback_body(dict(source), name, plan.to_release, datetime.now(UTC))
        result = await blocking(kube.create_release, who.api, ns, body)
        _written(
            who, "rollback", result, kind="Release", rollback_of=plan.to_release, environment=name
        )
        if isinstance(result, kube.Refused):
            page_body = pages.action_refused_page("roll back", name, result.message)
            return html(frame(console, who, "Refused", page_body, ""), status=403)
        made = str((result.get("metadata") or {}).get("name") or body["metadata"]["name"])
        raise web.HTTPSeeOther(f"/releases/{ns}/{made}?done=Rollback+{name}")

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


def _written(who: Person, metric: str, result: object, **fields: str) -> None:
    """A write made in the person's name: counted by kind and result, and an audit line
    `write user=NAME field=value ... result=ok|refused`."""
    result_word = "refused" if isinstance(result, kube.Refused) else "ok"
    metrics.WRITES.labels(metric, result_word).inc()
    details = " ".join(f"{key.replace('_', '-')}={value}" for key, value in fields.items())
    audit.info("write user=%s %s result=%s", who.family.person.username, details, result_word)


async def _evidence_forbidden(
    console: Console, who: Person, title: str = "Evidence", active: str = "/evidence"
) -> web.Response | None:
    """A 403 page unless the person may read the evidence ConfigMaps (their own RBAC)."""
    ns = console.evidence_namespace
    if await blocking(who.permissions.may, "list", "configmaps", ns):
        return None
    body = evidence_pages.evidence_forbidden_page(ns)
    return html(frame(console, who, title, body, active), status=403)


def _checked_evidence(console: Console, who: Person, what: str) -> evidence.Checked:
    """The evidence ConfigMaps read with the person's token and verified; an audit line
    names who read them and for what."""
    ns = console.evidence_namespace
    keys, packets = kube.read_evidence(who.api, ns)
    checked = evidence.check(keys, packets)
    metrics.EVIDENCE_READS.labels(what).inc()
    audit.info(
        "evidence read user=%s namespace=%s for=%s packets=%d verified=%s",
        who.family.person.username,
        ns,
        what,
        len(packets),
        checked.ok,
    )
    _watch_reads(console, who.family.person.username)
    return checked


def _watch_reads(console: Console, user: str) -> None:
    """The many-reads signal: once per window per identity, one metric increment (no
    identity label) and a security log line that names who."""
    count = console.read_watch.record(user, time.monotonic())
    if count is not None:
        metrics.READ_VOLUME_SIGNALS.inc()
        security.warning(
            "console many evidence reads user=%s reads=%d window=%ds",
            user,
            count,
            int(console.read_watch.window),
        )


def _dora(console: Console, who: Person) -> tuple[evidence.Checked, list[Any]]:
    from stella.evidence.dora import dora

    checked = _checked_evidence(console, who, "dora")
    if not checked.ok:
        return checked, []
    return checked, dora(evidence.predicates(checked.packets), now=datetime.now(UTC))


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
        checked = _checked_evidence(console, who, "release")
        packets = evidence.of_release(checked, ns, name)
    return pages.release_page(body, verdicts, who.family.csrf, live, decisions, packets, promotable)


def build_app(console: Console) -> web.Application:
    app = web.Application(
        middlewares=[security_headers, session_middleware(console)],
        client_max_size=64 * 1024,
    )
    app.add_routes(routes(console))
    return app
