"""The console's evidence routes: the chains verified (/evidence), a chain exported
(/evidence/export, within a size limit and a per-person quota), DORA's figures (/dora).
Evidence is read with the person's own token; every read is audited and counted toward
the many-reads-by-one signal."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from stella.web import evidence, evidence_pages, kube, metrics
from stella.web.console import Console, Person, blocking, frame, html

audit = logging.getLogger("stella.audit")
security = logging.getLogger("stella.security")


def evidence_routes(console: Console) -> web.RouteTableDef:
    r = web.RouteTableDef()

    async def auditor_page(
        request: web.Request, title: str, active: str, build: Callable[[Person], str]
    ) -> web.Response:
        """A page of evidence: 403 without the auditor's Role, else `build` in a worker."""
        who: Person = request["person"]
        forbidden = await _evidence_forbidden(console, who, title, active)
        if forbidden is not None:
            return forbidden
        body = await blocking(build, who)
        return html(frame(console, who, title, body, active))

    @r.get("/evidence")
    async def evidence_page(request: web.Request) -> web.Response:
        ns = console.evidence_namespace
        return await auditor_page(
            request,
            "Evidence",
            "/evidence",
            lambda who: evidence_pages.evidence_page(checked_evidence(console, who, "page"), ns),
        )

    @r.get("/dora")
    async def dora_page(request: web.Request) -> web.Response:
        ns = console.evidence_namespace
        return await auditor_page(
            request,
            "DORA",
            "/dora",
            lambda who: evidence_pages.dora_page(*_dora(console, who), ns),
        )

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

    return r


async def _evidence_forbidden(
    console: Console, who: Person, title: str = "Evidence", active: str = "/evidence"
) -> web.Response | None:
    """A 403 page unless the person may read the evidence ConfigMaps (their own RBAC)."""
    ns = console.evidence_namespace
    if await blocking(who.permissions.may, "list", "configmaps", ns):
        return None
    body = evidence_pages.evidence_forbidden_page(ns)
    return html(frame(console, who, title, body, active), status=403)


def checked_evidence(console: Console, who: Person, what: str) -> evidence.Checked:
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

    checked = checked_evidence(console, who, "dora")
    if not checked.ok:
        return checked, []
    return checked, dora(evidence.predicates(checked.packets), now=datetime.now(UTC))
