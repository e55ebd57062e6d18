"""An open-loop load generator for the Kubernetes API: one request every 1/rate seconds,
whatever the answers take, so that a slow server shows as latency instead of a lower rate.

Cheap enough that the system under test is what limits the rate: one asyncio loop, one
keep-alive connection pool (aiohttp), bodies serialised before the clock starts. It
records, per request, its lateness (how long after it was due the generator scheduled it:
the generator's own limit, which should stay near zero), its wait for a free connection,
its service time (sent -> answered) and its latency from when it was due (the wait counts:
that is the open loop's point), and every answer by kind. By Little's law the pool
carries rate x service time requests at once: when that exceeds --connections, the pool
(not the server) would cap the rate, and run() says so.
"""

from __future__ import annotations

import asyncio
import collections
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

# A 429's message -> the refusal it is (the documented ones, docs/quotas.md).
REFUSALS = (
    ("unfinished Releases", "429 release.quota"),
    ("in a loop", "429 release.loop"),
    ("slow down", "429 ratelimit"),
    ("admission is overloaded", "429 overloaded"),
    # kube-apiserver's own backpressure (max requests in flight).
    ("Too many requests", "429 kube-apiserver"),
)


def classify(status: int, body: bytes) -> str:
    """One answer's kind: created, a 429 or 403 by rule, or an error."""
    if status in (200, 201):
        return "created"
    try:
        message = str(json.loads(body or b"{}").get("message", ""))
    except ValueError:
        message = body.decode(errors="replace")
    if status == 403:  # T10 from the API server's release-create policy (docs/quotas.md)
        for rule in ("release.quota", "release.loop"):
            if f"{rule}:" in message:
                return f"403 {rule}"
    if status == 429:
        for words, rule in REFUSALS:
            if words in message:
                return rule
        return "429 other"
    if status == 403:
        # The API server's own policy (release-create.stella.io) answers the quota and the
        # loop with Forbidden and the rule id at the head of its message.
        text = body.decode(errors="replace")
        for rule in ("release.quota", "release.loop"):
            if f"{rule}:" in text:
                return f"403 {rule}"
    return f"error: HTTP {status}"


@dataclass
class Result:
    latency: list[float] = field(default_factory=list)  # seconds, from when due
    service: list[float] = field(default_factory=list)  # seconds, sent -> answered
    queued: list[float] = field(default_factory=list)  # seconds waiting for a connection
    lateness: list[float] = field(default_factory=list)  # seconds the send was late
    answers: collections.Counter[str] = field(default_factory=collections.Counter)
    admitted: dict[str, int] = field(default_factory=dict)  # namespace -> highest index created
    elapsed: float = 0.0
    peak_in_flight: int = 0  # requests sent and not yet answered (<= connections)

    @property
    def answered(self) -> int:
        return sum(self.answers.values())

    @property
    def errors(self) -> dict[str, int]:
        return {k: v for k, v in self.answers.items() if k.startswith("error")}


class OpenLoop:
    """POSTs to one API server as one bearer-token identity."""

    def __init__(self, server: str, ca_file: Path, token: str, connections: int = 128) -> None:
        self.server = server
        self.ssl = ssl.create_default_context(cafile=str(ca_file))
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.connections = connections

    async def run(
        self, rate: float, seconds: float, request: Callable[[int], tuple[str, str, bytes]]
    ) -> Result:
        """request(i) -> (namespace, path, body), called before the clock starts."""
        total = int(rate * seconds)
        planned = [request(i) for i in range(total)]
        result = Result()
        in_flight = 0
        connector = aiohttp.TCPConnector(limit=self.connections, ssl=self.ssl)
        # No bound on the wait for a connection (that is queueing, measured); a bound on
        # the server's answer once sent.
        timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=30, sock_read=120)
        free = asyncio.Semaphore(self.connections)
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession(
            connector=connector, headers=self.headers, timeout=timeout
        ) as session:

            async def one(i: int, due: float) -> None:
                nonlocal in_flight
                ns, path, body = planned[i]
                async with free:
                    sent = loop.time()
                    in_flight += 1
                    result.peak_in_flight = max(result.peak_in_flight, in_flight)
                    try:
                        async with session.post(self.server + path, data=body) as resp:
                            kind = classify(resp.status, await resp.read())
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        kind = f"error: {type(exc).__name__}"
                    finally:
                        in_flight -= 1
                answered = loop.time()
                result.queued.append(sent - due)
                result.service.append(answered - sent)
                result.latency.append(answered - due)
                result.answers[kind] += 1
                if kind == "created":
                    result.admitted[ns] = max(result.admitted.get(ns, -1), i)

            tasks = set()
            start = loop.time()
            for i in range(total):
                due = start + i / rate
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                result.lateness.append(max(0.0, loop.time() - due))
                task = asyncio.create_task(one(i, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks)
            result.elapsed = loop.time() - start
        return result


def body_template(obj: dict[str, object], *slots: str) -> Callable[..., bytes]:
    """The JSON of `obj` once, with each slot string (a placeholder value in obj) filled
    per call: fill(a, b) -> bytes, no JSON encoding on the hot path."""
    text = json.dumps(obj, separators=(",", ":")).replace("%", "%%")
    for slot in slots:
        text = text.replace(slot, "%s")
    raw = text.encode()

    def fill(*values: str) -> bytes:
        return raw % tuple(v.encode() for v in values)

    return fill
