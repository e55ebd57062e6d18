"""The webhook gateway: `POST /hooks/NAMESPACE/NAME` in the console's process.

Glue over stella.web.hooks (the checks and parsing, pure): the Receiver comes from the
console's synced view, its HMAC key from Vault at each delivery (never cached), a tag is
resolved to its digest once, at receipt, and the Release is created by impersonating the
receiver's own ServiceAccount, so admission records that identity as the requester and
separation of duties knows who asked. Every refusal is counted by reason; a bad
signature and a replayed nonce are security signals; every accepted delivery is an
audit line.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from stella import GROUP, VERSION
from stella.models.receiver import ReceiverSpec
from stella.registry.client import RegistryClient
from stella.registry.reference import parse_image_ref
from stella.secrets.value import SecretValue
from stella.web import kube, metrics
from stella.web.hooks import (
    BadEvent,
    Gate,
    Limits,
    Push,
    Requested,
    parse_distribution,
    parse_generic,
)

log = logging.getLogger("stella.web")
audit = logging.getLogger("stella.audit")
security = logging.getLogger("stella.security")


@dataclass
class Gateway:
    view: Any  # ConsoleView
    api: Any  # the console's ApiClient (impersonates receivers' ServiceAccounts)
    read_secret: Callable[[str], SecretValue] | None  # a Vault reference -> its value
    registries: Callable[[], RegistryClient] = RegistryClient.from_env
    gates: dict[tuple[str, str], tuple[tuple[int, int, int], Gate]] = field(default_factory=dict)

    def gate(self, key: tuple[str, str], spec: ReceiverSpec) -> Gate:
        limits = (spec.max_body_bytes, spec.rate_per_minute, spec.burst)
        held = self.gates.get(key)
        if held is None or held[0] != limits:
            gate = Gate(Limits(spec.max_body_bytes, 300.0, spec.rate_per_minute / 60, spec.burst))
            held = (limits, gate)
            self.gates[key] = held
        return held[1]

    async def deliver(self, request: web.Request) -> web.Response:
        ns, name = request.match_info["namespace"], request.match_info["name"]
        where = f"{ns}/{name}"
        body = self.view.receivers.get((ns, name))
        if body is None:
            return _answer(404, f"no Receiver {where}", "unknown")
        try:
            spec = ReceiverSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            return _answer(500, f"Receiver {where} is stored with an invalid spec", "invalid")
        if self.read_secret is None:
            return _answer(503, "the gateway has no Vault configured (STELLA_VAULT_ADDR)", "vault")
        payload = await _read_at_most(request, spec.max_body_bytes + 1)
        try:
            secret = await _blocking(self.read_secret, spec.secret)
        except Exception as exc:
            log.warning("receiver %s: its secret could not be read (%s)", where, type(exc).__name__)
            return _answer(503, "the receiver's secret could not be read; retry later", "vault")
        headers = {k: v for k, v in request.headers.items()}
        gate, now = self.gate((ns, name), spec), time.time()
        pushes: list[Push] = []
        if spec.format == "Distribution":
            verdict = gate.check_bearer(where, secret, headers, payload)
            if verdict.accepted:
                try:
                    pushes = parse_distribution(payload)
                except BadEvent as exc:
                    return _answer(400, str(exc), "bad-event")
                pushes, verdict = gate.fresh(where, pushes, now)
        else:
            verdict = gate.check(where, secret, headers, payload, now)
        del secret
        if not verdict.accepted:
            reason = verdict.refusal.value if verdict.refusal else "refused"
            if verdict.signal:
                security.warning(
                    "gateway signal=%s receiver=%s address=%s", reason, where, request.remote
                )
            extra = {"Retry-After": str(max(1, round(verdict.retry_after + 0.5)))}
            return _answer(
                verdict.status, verdict.message, reason, extra if verdict.retry_after else None
            )
        try:
            answer = await self._take_effect(ns, name, spec, pushes, payload)
        except BaseException:
            gate.forget(where, verdict)
            raise
        if answer.status >= 300:
            # Nothing was made: the sender's retry (a registry's notifier retries with the
            # same event ids) must be judged fresh, not refused as a replay.
            gate.forget(where, verdict)
        return answer

    async def _take_effect(
        self, ns: str, name: str, spec: ReceiverSpec, pushes: list[Push], payload: bytes
    ) -> web.Response:
        """The Release an accepted delivery asks for, created as the receiver's identity."""
        where = f"{ns}/{name}"
        try:
            if spec.format == "Distribution":
                found = _pushed(spec, pushes)
                if found is None:  # pulls, blobs, other repositories: nothing to ask for
                    return web.json_response({"ignored": len(pushes)}, status=202)
                requested, images = found
            else:
                requested = parse_generic(payload)
                images = await self._pin(spec, requested)
        except BadEvent as exc:
            return _answer(400, str(exc), "bad-event")
        release = release_body(name, spec, requested, images)
        created = await _blocking(
            kube.create_release_as, self.api, ns, spec.service_account_name, release
        )
        if isinstance(created, kube.Refused):
            audit.info(
                "gateway delivery receiver=%s release=%s result=refused code=%d",
                where,
                release["metadata"]["name"],
                created.code,
            )
            return _answer(created.code, created.message, "api-refused")
        metrics.HOOK_DELIVERIES.labels("accepted").inc()
        audit.info(
            "gateway delivery receiver=%s release=%s/%s as=%s result=ok",
            where,
            ns,
            release["metadata"]["name"],
            spec.service_account_name,
        )
        return web.json_response(
            {"release": f"{ns}/{release['metadata']['name']}", "images": images}, status=201
        )

    async def _pin(self, spec: ReceiverSpec, requested: Requested) -> dict[str, str]:
        """Each named component's image, from its own repository, pinned by digest."""
        allowed = {c.name: c.repository for c in spec.components}
        out: dict[str, str] = {}
        async with self.registries() as registry:
            for component, image in requested.images.items():
                if component not in allowed:
                    raise BadEvent(f"component {component[:63]} is not one of this receiver's")
                try:
                    ref = parse_image_ref(image)
                except Exception:
                    raise BadEvent(f"{image[:200]} is not an image reference") from None
                repository = f"{ref.registry}/{ref.repository}"
                if repository != allowed[component]:
                    raise BadEvent(
                        f"component {component} must come from {allowed[component]}, "
                        f"not {repository}"
                    )
                digest = ref.digest
                if not digest:
                    try:
                        digest = await registry.resolve_tag(ref)
                    except Exception as exc:
                        raise BadEvent(
                            f"tag {ref.tag} of {repository} could not be resolved: "
                            f"{type(exc).__name__}"
                        ) from None
                out[component] = f"{repository}@{digest}"
        return out


def _pushed(spec: ReceiverSpec, pushes: list[Push]) -> tuple[Requested, dict[str, str]] | None:
    """The first push of a component's repository: already pinned (the registry names the
    manifest's digest); its tag, or the digest's start, is the version."""
    for push in pushes:
        for c in spec.components:
            if push.repository == c.repository:
                version = push.tag or push.digest.removeprefix("sha256:")[:12]
                image = f"{push.repository}@{push.digest}"
                return Requested(version, {c.name: image}), {c.name: image}
    return None


def release_body(
    receiver: str, spec: ReceiverSpec, requested: Requested, images: dict[str, str]
) -> dict[str, Any]:
    version = re.sub(r"[^a-z0-9-]+", "-", requested.version.lower()).strip("-") or "v"
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Release",
        "metadata": {
            "name": f"{receiver}-{version}"[:63].rstrip("-"),
            "labels": {"stella.io/receiver": receiver},
        },
        "spec": {
            "version": requested.version[:64],
            "environments": list(spec.environments),
            "components": [
                {
                    "name": c.name,
                    "image": images[c.name],
                    "workload": c.workload.model_dump(by_alias=True),
                }
                for c in spec.components
                if c.name in images
            ],
        },
    }


def _answer(
    status: int, message: str, reason: str, headers: dict[str, str] | None = None
) -> web.Response:
    if status >= 400:
        metrics.HOOK_DELIVERIES.labels(reason).inc()
    return web.json_response({"error": message, "reason": reason}, status=status, headers=headers)


async def _read_at_most(request: web.Request, limit: int) -> bytes:
    """The body, or its first `limit` bytes (a read may return less than asked: loop)."""
    if (request.content_length or 0) >= limit:
        return b"\0" * limit  # announced too large: refused by size without reading it
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await request.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def _blocking(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
