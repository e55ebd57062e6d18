"""Leader election on a coordination.k8s.io Lease, as client-go does it.

Several operator replicas run; the one that holds the Lease runs the promotion engine,
the others stand by (their admission webhooks and views keep running). A holder renews
every `retry` seconds; a candidate takes the Lease over only when it has seen the same
record, unrenewed, for `duration` seconds by its own clock (no clock skew between nodes
matters). A holder that cannot renew within `renew_deadline` must stop acting at once:
by then another replica may take over (the caller exits the process).

Why not kopf peering: a standby kopf pauses its watches (so its view, and any admission
answered from it, would go stale) and replicas of equal priority pause each other; a
Lease is what controller-runtime and the Kubernetes controllers use.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("stella.lease")


def own_identity() -> str:
    """The Pod's name (its hostname) and a random suffix: a restarted container is a new
    candidate, never mistaken for the holder it replaced."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def micro_time(when: datetime | None = None) -> str:
    """RFC 3339 with microseconds (MicroTime), as the API server wants it."""
    return (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Timing:
    duration: float = 15.0  # a record unrenewed this long may be taken over
    renew_deadline: float = 10.0  # a holder that cannot renew this long stops acting
    retry: float = 2.0  # how often a holder renews and a candidate tries

    @classmethod
    def for_duration(cls, duration: float) -> Timing:
        """client-go's proportions (15 / 10 / 2 s) for another duration."""
        return cls(duration, duration * 2 / 3, max(0.2, duration * 2 / 15))


class LeaseElector:
    def __init__(
        self,
        name: str,
        namespace: str,
        api: client.ApiClient,
        identity: str | None = None,
        timing: Timing = Timing(),
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.identity = identity or own_identity()
        self.timing = timing
        self._api = client.CoordinationV1Api(api)
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.last_renewed = 0.0  # monotonic time of our last successful acquire/renew

    # ---- one attempt ---------------------------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        """True when this replica holds the Lease now (acquired or renewed)."""
        now = time.monotonic()
        try:
            lease = self._read()
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self._create(now)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or self.timing.duration)
        if holder and holder != self.identity and self._observed_at + duration > now:
            return False
        ours = holder == self.identity
        lease["spec"] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": round(self.timing.duration),
            "acquireTime": spec.get("acquireTime") if ours else micro_time(),
            "renewTime": micro_time(),
            "leaseTransitions": int(spec.get("leaseTransitions") or 0) + (0 if ours else 1),
        }
        try:
            self._api.replace_namespaced_lease(self.name, self.namespace, lease)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status == 409:  # someone else wrote it first
                return False
            raise
        if not ours:
            log.info("took over lease %s/%s from %r", self.namespace, self.name, holder or None)
        self.last_renewed = now
        return True

    def _create(self, now: float) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": round(self.timing.duration),
                "acquireTime": micro_time(),
                "renewTime": micro_time(),
                "leaseTransitions": 0,
            },
        }
        try:
            self._api.create_namespaced_lease(self.namespace, body)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        log.info("created lease %s/%s", self.namespace, self.name)
        self.last_renewed = now
        return True

    def _read(self) -> dict[str, Any]:
        # Raw JSON: the generated model would turn MicroTimes into datetimes and back.
        resp: Any = self._api.read_namespaced_lease(
            self.name, self.namespace, _preload_content=False
        )
        return dict(json.loads(resp.data))

    def attempt(self) -> bool:
        """One try; an API error is a failed try (logged), never an exception."""
        try:
            return self.try_acquire_or_renew()
        except Exception as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    def holding(self) -> bool:
        """Still safe to act: renewed within the renew deadline."""
        return time.monotonic() - self.last_renewed < self.timing.renew_deadline

    def release(self) -> None:
        """On a clean stop: hand the Lease back at once (the next replica need not wait
        out its duration). Only if we still hold it."""
        try:
            lease = self._read()
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            lease["spec"] = {
                **spec,
                "holderIdentity": None,
                "leaseDurationSeconds": 1,
                "renewTime": micro_time(),
            }
            self._api.replace_namespaced_lease(self.name, self.namespace, lease)  # type: ignore[arg-type]
            log.info("released lease %s/%s", self.namespace, self.name)
        except Exception as exc:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)
