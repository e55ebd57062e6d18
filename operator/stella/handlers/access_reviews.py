"""Admission's Authorizer: RBAC custom verbs on Environments, asked of the API server with a
SubjectAccessReview, each answer used for at most `ttl` seconds.

An answer is cached per (user name, uid, groups, verb, Environment) for `ttl` seconds
(default 5) from the moment its review was sent, so a burst of Approvals costs one review
per person and verb. Once an answer is older than half its life, the next use still gets
it and asks again in the background (at most one review in flight per key): a person who
keeps deciding never waits for a review, yet no answer older than `ttl` is ever used. So
a revoked grant stops admitting within `ttl` seconds (plus the API server's own RBAC
propagation, milliseconds), and a new grant takes effect within as long. A review that
fails is no answer (None: the rule refuses, fail closed) and is never cached; a failed
background review leaves the old answer to expire on time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from stella.policy import Identity

log = logging.getLogger("stella.admission")

Key = tuple[str, str, tuple[str, ...], str, str]
Review = Callable[[Identity, str, str, float], bool]


def review_access(
    user: Identity, verb: str, name: str, timeout: float, resource: str = "environments"
) -> bool:
    """One SubjectAccessReview: may `user` do `verb` on <resource>/<name> (group stella.io)?"""
    from kubernetes import client

    from stella import GROUP
    from stella.k8s.client import api_client

    body = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user.username,
            uid=user.uid or None,
            groups=sorted(user.groups),
            resource_attributes=client.V1ResourceAttributes(
                group=GROUP, resource=resource, name=name, verb=verb
            ),
        )
    )
    out = client.AuthorizationV1Api(api_client()).create_subject_access_review(
        body, _request_timeout=timeout
    )
    return bool(out.status and out.status.allowed)


class SubjectAccessReviews:
    """The Authorizer of admission (stella.admission.base.Authorizer)."""

    MAX_KEYS = 10_000

    def __init__(
        self,
        ttl: float = 5.0,
        timeout: float = 5.0,
        review: Review = review_access,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self._review = review
        self._clock = clock
        self._cache: dict[Key, tuple[float, bool]] = {}  # key -> (asked at, allowed)
        self._refreshing: set[Key] = set()
        self._lock = threading.Lock()
        self._background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="access-review")

    def may(self, user: Identity, verb: str, environment: str) -> bool | None:
        key: Key = (user.username, user.uid, tuple(sorted(user.groups)), verb, environment)
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                if now - hit[0] >= self.ttl / 2 and key not in self._refreshing:
                    self._refreshing.add(key)
                    self._background.submit(self._refresh, key, user, verb, environment)
                return hit[1]
        return self._ask(key, user, verb, environment)

    def _ask(self, key: Key, user: Identity, verb: str, environment: str) -> bool | None:
        asked = self._clock()
        try:
            allowed = self._review(user, verb, environment, self.timeout)
        except Exception as exc:
            log.warning("SubjectAccessReview for %s failed: %s", user.username, exc)
            return None
        with self._lock:
            held = self._cache.get(key)
            if held is None or held[0] <= asked:  # never replace a newer answer
                if len(self._cache) >= self.MAX_KEYS:
                    self._cache.clear()
                self._cache[key] = (asked, allowed)
        return allowed

    def _refresh(self, key: Key, user: Identity, verb: str, environment: str) -> None:
        try:
            self._ask(key, user, verb, environment)
        finally:
            with self._lock:
                self._refreshing.discard(key)
