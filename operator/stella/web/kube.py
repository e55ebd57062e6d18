"""The console's calls to the API server: TokenReview as the console, everything else as
the person, with their own bearer token.

The console's own identity may only review tokens and read (list/watch) Stella's kinds
for its view. Whether a person may read or do something is asked with a
SelfSubjectAccessReview made with the person's token, so the answer is the API server's
RBAC for exactly that person; writes are made with the person's token, so admission
stamps their identity and applies RBAC and separation of duties as with kubectl.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from stella import GROUP, VERSION
from stella.evidence.records import StoredPacket
from stella.policy.identity import Identity
from stella.secrets.value import SecretValue

TIMEOUT: tuple[float, float] = (5.0, 15.0)


@dataclass(frozen=True)
class Refused:
    """The API server said no (or could not be asked): its status code and message."""

    code: int
    message: str


def review_token(console: client.ApiClient, bearer: SecretValue) -> Identity | None:
    """The person a bearer token authenticates, by TokenReview; None when it does not."""
    review = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=bearer.reveal()))
    answer = client.AuthenticationV1Api(console).create_token_review(
        review, _request_timeout=TIMEOUT
    )
    status = answer.status
    if status is None or not status.authenticated or status.user is None:
        return None
    user = status.user
    if not user.username:
        return None
    return Identity(
        username=str(user.username), uid=str(user.uid or ""), groups=frozenset(user.groups or ())
    )


def as_person(console: client.ApiClient, bearer: SecretValue) -> client.ApiClient:
    """An ApiClient to the same API server (and CA) as the console, authenticated as the
    person by their bearer token only (no client certificate, no other credential)."""
    base = console.configuration
    cfg = client.Configuration()
    cfg.host = base.host
    cfg.ssl_ca_cert = base.ssl_ca_cert
    cfg.verify_ssl = base.verify_ssl
    cfg.api_key = {"authorization": "Bearer " + bearer.reveal()}
    return client.ApiClient(cfg)


class Permissions:
    """SelfSubjectAccessReviews of one person, cached for `ttl` seconds per question.

    An error is False (fail closed: the console offers nothing it could not confirm; the
    API server would still refuse the write itself)."""

    def __init__(self, api: client.ApiClient, ttl: float = 10.0) -> None:
        self._api = api
        self._ttl = ttl
        self._cache: dict[tuple[str, str, str, str], tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def may(self, verb: str, resource: str, namespace: str = "", name: str = "") -> bool:
        key = (verb, resource, namespace, name)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        group = "" if resource in ("configmaps", "namespaces") else GROUP
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    group=group,
                    resource=resource,
                    verb=verb,
                    namespace=namespace or None,
                    name=name or None,
                )
            )
        )
        try:
            answer = client.AuthorizationV1Api(self._api).create_self_subject_access_review(
                review, _request_timeout=TIMEOUT
            )
            allowed = bool(answer.status and answer.status.allowed)
        except Exception:
            return False
        with self._lock:
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[key] = (now + self._ttl, allowed)
        return allowed


class PersonAuthorizer:
    """admission's Authorizer, answered by the person's own SelfSubjectAccessReview: the
    inbox runs admission's Approval rule with it (only ever for this same person)."""

    def __init__(self, permissions: Permissions, person: Identity) -> None:
        self._permissions = permissions
        self._person = person

    def may(self, user: Identity, verb: str, environment: str) -> bool | None:
        if user != self._person:
            return None  # never asked about anyone else: fail closed
        return self._permissions.may(verb, "environments", name=environment)


def _attempt(call: Callable[[], object]) -> dict[str, Any] | Refused:
    """One write to the API server: what it created, or why it refused (its own words)."""
    try:
        created = call()
    except client.ApiException as exc:
        return Refused(exc.status or 500, _status_message(exc))
    except Exception as exc:  # the API server unreachable
        return Refused(503, f"the API server could not be reached ({type(exc).__name__})")
    return created if isinstance(created, dict) else {}


def create_approval(
    api: client.ApiClient,
    namespace: str,
    release: str,
    environment: str,
    decision: str,
    comment: str,
) -> dict[str, Any] | Refused:
    """An Approval created as the person: admission stamps them as its approver."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Approval",
        "metadata": {"generateName": f"{release[:40]}-{environment[:15]}-"},
        "spec": {
            "release": release,
            "environment": environment,
            "decision": decision,
            "comment": comment,
        },
    }
    return _attempt(
        lambda: client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, "approvals", copy.deepcopy(body), _request_timeout=TIMEOUT
        )
    )


def create_release(
    api: client.ApiClient, namespace: str, body: dict[str, Any]
) -> dict[str, Any] | Refused:
    """A Release created as the person (a rollback): admission stamps them as its requester
    and checks their `rollback` verb on the Environment."""
    return _attempt(
        lambda: client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, "releases", body, _request_timeout=TIMEOUT
        )
    )


def create_release_as(
    console: client.ApiClient, namespace: str, service_account: str, body: dict[str, Any]
) -> dict[str, Any] | Refused:
    """A Release created by the console *impersonating* a receiver's ServiceAccount: the
    API server authorizes it as that account (the console needs `impersonate` on it and
    nothing else), and admission records it as the requester."""
    api = client.ApiClient(console.configuration)
    user = f"system:serviceaccount:{namespace}:{service_account}"
    api.default_headers["Impersonate-User"] = user  # no groups: RBAC binds the account
    try:
        return create_release(api, namespace, body)
    finally:
        api.close()  # type: ignore[no-untyped-call]


def create_action(
    api: client.ApiClient, action: str, environment: str, reason: str, release: str = ""
) -> dict[str, Any] | Refused:
    """An Action (Promote NS/NAME, ClearHalt, Suspend, Resume) created as the person:
    admission stamps them as its actor and checks their RBAC verb on the Environment; the
    operator carries it out."""
    spec = {"action": action, "environment": environment, "reason": reason}
    if release:
        spec["release"] = release
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Action",
        "metadata": {"generateName": f"{action.lower()}-{environment}"[:57].rstrip("-.") + "-"},
        "spec": spec,
    }
    return _attempt(
        lambda: client.CustomObjectsApi(api).create_cluster_custom_object(
            GROUP, VERSION, "actions", body, _request_timeout=TIMEOUT
        )
    )


def _status_message(exc: client.ApiException) -> str:
    try:
        status = json.loads(exc.body or "{}")
        message = str(status.get("message") or "")
    except (ValueError, AttributeError):
        message = ""
    return message or str(exc.reason or "refused")


def read_evidence(
    api: client.ApiClient, namespace: str
) -> tuple[dict[str, str], list[StoredPacket]]:
    """The published keys and the evidence packets, read with the person's own ApiClient."""
    from stella.evidence.store_configmap import ConfigMapStore

    store = ConfigMapStore(api, namespace)
    return store.published_keys(), store.list()
