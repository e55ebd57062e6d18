"""An informer: LIST then WATCH of each kind Stella's admission reads, feeding a view.

Admission has its own view, fed by its own watches (one thread per kind), so that it is
never behind the engine's event loop and stays synced on a replica whose engine stands
by (issue 10: HA; issue 12: admission not behind the engine). The view is told about
each LIST (`replace`, which also drops what was deleted while no watch ran) and each
watch event (`apply`); it is `synced` once every kind has been listed once. Where the
engine runs, it subscribes to the same watches (stella.k8s.fanout) rather than make its
own.

A watch that ends (the server's timeout) resumes from the last resourceVersion seen;
one that fails (410 Gone, an ERROR event, the API server unreachable) relists after a
short backoff, so the view converges without a restart.

The LIST is a watch-list where the API server can (stella.k8s.watchlist: the objects
streamed from its watch cache, one at a time, then the changes on the same stream; issue
12: 10,000 Releases in 3.1 s where the pages below took 13.6 s); elsewhere it is read a
page at a time (PAGE objects, the API server's continue tokens, one consistent
snapshot). A watch-list that fails before its initial state is whole is followed by a LIST
in pages at once, as client-go's reflector does; after WATCH_LIST_ATTEMPTS such failures in
a row that kind is listed in pages from then on (an initial state longer than the watch's
timeout would otherwise be retried forever). Either way each object is handed to the sink
as it arrives: the sink keeps its slim copy and the rest is dropped, so the operator never
holds every object whole at once (issue 12: 10,000 Releases listed in one response, parsed
whole, twice — the engine's view and admission's — were an RSS high-water mark of ~500 MiB).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from stella import GROUP, VERSION
from stella.k8s.client import fresh_api_client
from stella.k8s.watchlist import Incomplete, StreamingList, Unsupported

log = logging.getLogger("stella.informer")

Body = Mapping[str, Any]
# A watch lasts this long on the server; the client waits a little longer (bookmarks keep
# a quiet watch alive, and a dead connection is noticed at the latest then).
WATCH_SECONDS = 240
READ_TIMEOUT = WATCH_SECONDS + 30
PAGE = 500  # objects per LIST page (client-go's pager uses 500 too)
# Watch-lists of one kind failing in a row before their initial state was whole, after
# which that kind is listed in pages for the informer's life.
WATCH_LIST_ATTEMPTS = 3


class Sink(Protocol):
    synced: bool

    def apply(self, kind: str, event_type: str | None, body: Body) -> None: ...

    def replace(self, kind: str, items: Iterable[Body]) -> None: ...


@dataclass(frozen=True)
class Source:
    """One kind: its name in the view and how to LIST it (a callable of the API)."""

    kind: str
    lister: Callable[[client.ApiClient], Callable[..., Any]]
    # The collection's URL path: with it, the first LIST is a watch-list (stella.k8s.watchlist).
    path: str | None = None


def _custom(plural: str) -> Callable[[client.ApiClient], Callable[..., Any]]:
    def lister(api: client.ApiClient) -> Callable[..., Any]:
        custom = client.CustomObjectsApi(api)

        def call(**kw: Any) -> Any:
            return custom.list_cluster_custom_object(GROUP, VERSION, plural, **kw)

        return call

    return lister


def _namespaces(api: client.ApiClient) -> Callable[..., Any]:
    return client.CoreV1Api(api).list_namespace


# What admission reads: the kinds the engine's view holds.
ADMISSION_SOURCES: tuple[Source, ...] = (
    *(
        Source(kind, _custom(plural), f"/apis/{GROUP}/{VERSION}/{plural}")
        for kind, plural in (
            ("Environment", "environments"),
            ("Release", "releases"),
            ("Approval", "approvals"),
            ("Action", "actions"),
        )
    ),
    Source("Namespace", _namespaces, "/api/v1/namespaces"),
)


class Informer:
    def __init__(
        self,
        sink: Sink,
        sources: tuple[Source, ...] = ADMISSION_SOURCES,
        api: client.ApiClient | None = None,
        backoff: float = 1.0,
        watch_list: bool = True,
    ) -> None:
        self.sink = sink
        self._watch_list = watch_list
        self.sources = sources
        self._api = api
        self._backoff = backoff
        self._listed: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # How many LISTs were made (the first of each kind, then one per failed watch).
        self.relists = 0
        # The kinds whose last LIST was a watch-list (the others were listed in pages).
        self.streamed: set[str] = set()

    def start(self) -> None:
        api = self._api or fresh_api_client()
        for source in self.sources:
            t = threading.Thread(
                target=self._run, args=(source, api), name=f"informer-{source.kind}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sink.synced:
                return True
            time.sleep(0.05)
        return bool(self.sink.synced)

    # ---- one kind ----------------------------------------------------------------------
    def _run(self, source: Source, api: client.ApiClient) -> None:
        call = source.lister(api)
        failures = 0
        stream = self._watch_list and source.path is not None
        streams_failed = 0  # watch-lists in a row that failed before their initial state
        while not self._stop.is_set():
            try:
                if stream:
                    try:
                        version = self._stream(source, api)
                        streams_failed = 0
                    except Unsupported as why:
                        log.info("%s; listing in pages instead", why)
                        stream = False
                        continue
                    except Incomplete as why:
                        # As client-go's reflector: list in pages this time; a kind whose
                        # watch-lists keep failing (an initial state longer than the
                        # watch's timeout, a server ignoring sendInitialEvents) stays so.
                        streams_failed += 1
                        stream = streams_failed < WATCH_LIST_ATTEMPTS
                        log.warning(
                            "%s; listing in pages %s",
                            why,
                            "this time" if stream else "from now on",
                        )
                        version = self._list(source, call)
                else:
                    version = self._list(source, call)
                failures = 0
                while not self._stop.is_set():
                    version = self._watch(source, call, version)
            except _Relist as why:
                log.info("%s watch: %s; listing again", source.kind, why)
            except Exception as exc:  # the API server down, a reset connection, ...
                failures += 1
                log.warning(
                    "%s watch failed (%s); listing again in %.0fs",
                    source.kind,
                    type(exc).__name__,
                    min(30.0, self._backoff * failures),
                )
                self._stop.wait(min(30.0, self._backoff * failures))

    def _list(self, source: Source, call: Callable[..., Any]) -> str:
        listing = Listing(source.kind, call)
        self.sink.replace(source.kind, listing)
        if not listing.complete:  # the sink stopped early: nothing to resume from
            raise _Relist(f"the {source.kind} LIST was not read to its end")
        self._listed_once(source)
        return listing.resource_version

    def _stream(self, source: Source, api: client.ApiClient) -> str:
        """The LIST as a watch-list, then the changes on the same stream until the server
        ends it; returns the resourceVersion to watch on from. Raises Incomplete when the
        initial state was not whole: the view was not replaced (nothing dropped from it,
        nor the kind counted as listed) and the caller lists in pages."""
        assert source.path is not None
        listing = StreamingList(source.kind, api, source.path, WATCH_SECONDS, READ_TIMEOUT)
        try:
            self.sink.replace(source.kind, listing)
            if not listing.complete:
                raise _Relist(f"the {source.kind} watch-list was not read to its end")
            self._listed_once(source, streamed=True)
            for event_type, raw in listing.events():
                if self._stop.is_set():
                    break
                self.sink.apply(source.kind, event_type, raw)
        except ApiException as exc:
            if exc.status == 410:
                raise _Relist("resourceVersion too old (410 Gone)") from None
            raise
        finally:
            listing.close()
        return listing.resource_version

    def _listed_once(self, source: Source, streamed: bool = False) -> None:
        with self._lock:
            self.relists += 1
            (self.streamed.add if streamed else self.streamed.discard)(source.kind)
            self._listed.add(source.kind)
            if len(self._listed) == len(self.sources):
                self.sink.synced = True

    def _watch(self, source: Source, call: Callable[..., Any], version: str) -> str:
        w = watch.Watch()  # type: ignore[no-untyped-call]
        stream = w.stream(  # type: ignore[no-untyped-call]
            call,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            deserialize=False,
            _request_timeout=(5.0, READ_TIMEOUT),
        )
        try:
            for event in stream:
                if self._stop.is_set():
                    break
                kind = event.get("type")
                raw = event.get("object") or {}
                meta = raw.get("metadata") or {}
                version = str(meta.get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    continue
                self.sink.apply(source.kind, kind, raw)
        except ApiException as exc:
            if exc.status == 410:
                raise _Relist("resourceVersion too old (410 Gone)") from None
            raise
        finally:
            w.stop()  # type: ignore[no-untyped-call]
        return version


class Listing:
    """One LIST of one kind, read a page at a time as it is iterated (once).

    After the last page, `resource_version` is the snapshot's version, which the watch
    resumes from. A continue token that expired (410: the snapshot was compacted away,
    after minutes) ends the iteration with _Relist, like a failed watch."""

    def __init__(self, kind: str, call: Callable[..., Any], page: int = PAGE) -> None:
        self.kind = kind
        self.call = call
        self.page = page
        self.resource_version = ""
        self.complete = False
        self.pages = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"limit": self.page}
            if token:
                kw["_continue"] = token
            try:
                resp = self.call(_preload_content=False, _request_timeout=(5.0, 60.0), **kw)
            except ApiException as exc:
                if exc.status == 410:
                    raise _Relist("the LIST's snapshot expired (410 Gone)") from None
                raise
            listed = json.loads(resp.data)
            self.pages += 1
            meta = listed.get("metadata") or {}
            items = listed.get("items") or []
            api_version = listed.get("apiVersion")
            del listed
            for item in items:
                # LIST items carry no kind or apiVersion (the list does): Events about
                # them need both, and views share these bodies and never add to them.
                item.setdefault("kind", self.kind)
                if api_version:
                    item.setdefault("apiVersion", api_version)
                yield item
            del items  # before the next page is read: one page held at a time
            token = meta.get("continue") or None
            if not token:
                self.resource_version = str(meta.get("resourceVersion") or "")
                self.complete = True
                return


class _Relist(Exception):
    pass
