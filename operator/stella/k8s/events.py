"""Kubernetes Events about Stella objects: what a person sees in `kubectl describe`.

`kubectl describe` finds an object's Events by `involvedObject.uid` (with name, namespace
and kind), so an Event without the uid is invisible there. Callers sometimes hold only a
reference (an Approval refused at CREATE names its Release by name): `emit` then reads
the object's uid from the API server before posting.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stella import GROUP
from stella.k8s.client import api_client
from stella.models import ALL_KINDS

log = logging.getLogger("stella.events")
COMPONENT = "stella-operator"
MAX_MESSAGE = 1024
_PLURALS: dict[str, tuple[str, bool]] = {
    k.kind: (k.plural, k.scope == "Namespaced") for k in ALL_KINDS
}


def event_body(
    involved: Mapping[str, Any],
    reason: str,
    message: str,
    type_: str = "Normal",
    namespace: str | None = None,
    *,
    uid: str | None = None,
    now: datetime | None = None,
    host: str | None = None,
) -> client.CoreV1Event:
    """The Event to post about `involved` (pure). `uid` fills in a reference without one."""
    meta = involved.get("metadata") or {}
    ns = namespace or meta.get("namespace") or "default"
    at = now or datetime.now(UTC)
    reporter = host or socket.gethostname()
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{meta.get('name', 'stella')}.", namespace=ns),
        involved_object=client.V1ObjectReference(
            api_version=involved.get("apiVersion"),
            kind=involved.get("kind"),
            name=meta.get("name"),
            namespace=meta.get("namespace"),
            uid=meta.get("uid") or uid,
            resource_version=meta.get("resourceVersion"),
        ),
        reason=reason,
        message=message[:MAX_MESSAGE],
        type=type_,
        first_timestamp=at,
        last_timestamp=at,
        count=1,
        source=client.V1EventSource(component=COMPONENT, host=reporter),
        reporting_component=COMPONENT,
        reporting_instance=reporter,
    )


def lookup_uid(api: client.ApiClient, involved: Mapping[str, Any]) -> str | None:
    """The uid of a Stella object given by reference (apiVersion, kind, name, namespace);
    None when it is not a Stella kind, does not exist, or cannot be read."""
    meta = involved.get("metadata") or {}
    group, _, version = str(involved.get("apiVersion", "")).rpartition("/")
    found = _PLURALS.get(str(involved.get("kind", "")))
    name = meta.get("name")
    if group != GROUP or found is None or not name:
        return None
    plural, namespaced = found
    custom = client.CustomObjectsApi(api)
    try:
        if namespaced:
            if not meta.get("namespace"):
                return None
            obj = custom.get_namespaced_custom_object(
                group, version, meta["namespace"], plural, name
            )
        else:
            obj = custom.get_cluster_custom_object(group, version, plural, name)
    except Exception as exc:  # best effort: the Event is posted without the uid
        reason = exc.reason if isinstance(exc, ApiException) else type(exc).__name__
        log.debug("no uid for the Event on %s %s: %s", involved.get("kind"), name, reason)
        return None
    uid = (obj.get("metadata") or {}).get("uid") if isinstance(obj, Mapping) else None
    return str(uid) if uid else None


def emit(
    involved: Mapping[str, Any],
    reason: str,
    message: str,
    type_: str = "Normal",
    namespace: str | None = None,
    *,
    api: client.ApiClient | None = None,
) -> None:
    """Best effort: an Event lost to an API hiccup must never fail a promotion."""
    meta = involved.get("metadata") or {}
    api = api or api_client()
    uid = None if meta.get("uid") else lookup_uid(api, involved)
    event = event_body(involved, reason, message, type_, namespace, uid=uid)
    try:
        client.CoreV1Api(api).create_namespaced_event(str(event.metadata.namespace), event)
    except ApiException as exc:
        log.warning("could not post Event %s on %s: %s", reason, meta.get("name"), exc.reason)


class EventPoster:
    """Posts Events from one background thread, through a bounded queue.

    The engine's coroutines must never block the event loop that also serves admission
    (issue 9), and must not pile up unbounded work either: posting each Event from its own
    worker-thread task held every involved body until its POST ran, and a cold resync of
    1,000 Releases x 5 Environments peaked at 498 MiB (issue 12). Here a slim reference is
    queued (bounded; an Event is best effort, so a full queue drops it, logged), and one
    thread posts them in order."""

    def __init__(self, maxsize: int = 1024) -> None:
        self._queue: queue.Queue[tuple[dict[str, Any], str, str, str, str | None]] = queue.Queue(
            maxsize
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.dropped = 0

    def post(
        self,
        involved: Mapping[str, Any],
        reason: str,
        message: str,
        type_: str = "Normal",
        namespace: str | None = None,
    ) -> None:
        meta = involved.get("metadata") or {}
        slim = {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "metadata": {
                k: meta.get(k)
                for k in ("name", "namespace", "uid", "resourceVersion")
                if meta.get(k) is not None
            },
        }
        try:
            self._queue.put_nowait((slim, reason, message[:MAX_MESSAGE], type_, namespace))
        except queue.Full:
            self.dropped += 1
            log.warning("Event %s on %s dropped: the poster is behind", reason, meta.get("name"))
            return
        self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="stella-events", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            involved, reason, message, type_, namespace = self._queue.get()
            try:
                emit(involved, reason, message, type_, namespace)
            except Exception as exc:  # best effort: never let the poster die
                log.warning("could not post Event %s: %s", reason, type(exc).__name__)
            finally:
                self._queue.task_done()

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every queued Event was posted (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks


POSTER = EventPoster()
