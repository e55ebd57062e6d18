"""The watch-list's reading of a stream (stella.k8s.watchlist), on recorded answers: the
initial state ends at its bookmark, anything short of it is never taken for a whole LIST,
and a server that refuses watch-lists is told apart from one that failed. The informer
(stella.k8s.informer) lists in pages when a watch-list fails, and for good after
WATCH_LIST_ATTEMPTS failures in a row."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from stella.k8s import informer as informer_module
from stella.k8s.informer import WATCH_LIST_ATTEMPTS, Informer, Source
from stella.k8s.watchlist import INITIAL_EVENTS_END, Incomplete, StreamingList, Unsupported


class _Response:
    def __init__(
        self,
        status: int,
        lines: list[dict[str, Any]],
        body: bytes = b"",
        fails: Exception | None = None,
    ) -> None:
        self.status, self.reason, self.body = status, "reason", body
        self.released = False
        self.response = self
        self._chunks = [(json.dumps(e) + "\n").encode() for e in lines]
        self._fails = fails  # raised by the connection after the recorded lines

    def read(self) -> bytes:
        return self.body

    def stream(self, *_: Any, **__: Any) -> Any:  # what iter_resp_lines reads
        yield from self._chunks
        if self._fails is not None:
            raise self._fails

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        self.released = True


class _Api:
    def __init__(self, response: _Response) -> None:
        self.response = response
        self.query: list[tuple[str, str]] = []

    def param_serialize(self, method: str, path: str, **kw: Any) -> tuple[Any, ...]:
        self.query = kw["query_params"]
        return method, path, kw["header_params"], None, None

    def call_api(self, *_: Any, **__: Any) -> _Response:
        return self.response


def _obj(name: str, version: str = "1", **annotations: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version, "annotations": annotations}}


def _open(status: int, *events: tuple[str, dict[str, Any]]) -> tuple[StreamingList, _Api]:
    api = _Api(_Response(status, [{"type": t, "object": o} for t, o in events], b"refused"))
    return StreamingList("Release", api, "/apis/stella.io/v1alpha1/releases", 60, 90.0), api  # type: ignore[arg-type]


def test_the_initial_state_ends_at_its_bookmark_and_the_changes_follow() -> None:
    end = _obj("", "40", **{INITIAL_EVENTS_END: "true"})
    listing, api = _open(
        200,
        ("ADDED", _obj("a")),
        ("BOOKMARK", _obj("", "30")),  # an ordinary bookmark: not the end
        ("ADDED", _obj("b")),
        ("BOOKMARK", end),
        ("MODIFIED", _obj("a", "41")),
        ("BOOKMARK", _obj("", "45")),
        ("DELETED", _obj("b", "46")),
    )
    assert dict(api.query)["sendInitialEvents"] == "true"
    assert [o["metadata"]["name"] for o in listing] == ["a", "b"]
    assert listing.complete and listing.resource_version == "40"
    events = [(t, o["metadata"]["name"]) for t, o in listing.events()]
    assert events == [("MODIFIED", "a"), ("DELETED", "b")]
    assert listing.resource_version == "46"


@pytest.mark.parametrize(
    "events",
    [
        [("ADDED", _obj("a"))],  # the stream ended first
        [("ADDED", _obj("a")), ("MODIFIED", _obj("a", "2"))],  # not an initial state
    ],
)
def test_a_stream_short_of_its_bookmark_is_never_a_whole_list(
    events: list[tuple[str, dict[str, Any]]],
) -> None:
    listing, _ = _open(200, *events)
    with pytest.raises(Incomplete):
        list(listing)
    assert not listing.complete


def test_an_error_event_is_the_servers_status() -> None:
    # Before the initial state is whole it is one more way for it to be incomplete (the
    # informer lists in pages then); after it, the watch's failure, as on any watch.
    listing, _ = _open(200, ("ERROR", {"code": 410, "message": "too old"}))
    with pytest.raises(Incomplete, match="too old") as early:
        list(listing)
    assert isinstance(early.value.__cause__, ApiException)
    assert early.value.__cause__.status == 410
    end = _obj("", "40", **{INITIAL_EVENTS_END: "true"})
    listing, _ = _open(200, ("BOOKMARK", end), ("ERROR", {"code": 410, "message": "too old"}))
    assert list(listing) == []
    with pytest.raises(ApiException) as caught:
        list(listing.events())
    assert caught.value.status == 410


@pytest.mark.parametrize(
    "cut",
    [
        ReadTimeoutError(None, "/", "Read timed out."),  # type: ignore[arg-type]
        ProtocolError("Connection broken: IncompleteRead(0 bytes read)"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
    ids=["read-timeout", "cut-mid-chunk", "reset"],
)
def test_a_stream_cut_or_timed_out_before_its_bookmark_is_incomplete(cut: Exception) -> None:
    api = _Api(_Response(200, [{"type": "ADDED", "object": _obj("a")}], fails=cut))
    listing = StreamingList("Release", api, "/releases", 60, 90.0)  # type: ignore[arg-type]
    with pytest.raises(Incomplete, match="failed before the initial state"):
        list(listing)
    assert not listing.complete and listing.resource_version == ""


def test_a_server_refusing_watch_lists_is_unsupported_and_a_failure_is_not() -> None:
    for status in (400, 422):
        with pytest.raises(Unsupported, match="refused a watch-list"):
            _open(status)
    with pytest.raises(ApiException) as caught:
        _open(503)
    assert caught.value.status == 503


@pytest.mark.parametrize("status", [400, 403, 503])
def test_a_refusal_hands_its_connection_back_to_the_pool(status: int) -> None:
    response = _Response(status, [], b"refused")
    with pytest.raises((Unsupported, ApiException)):
        StreamingList("Release", _Api(response), "/apis/x", 60, 90.0)  # type: ignore[arg-type]
    assert response.released


# ---- the informer's fallback -------------------------------------------------------------
class _Sink:
    def __init__(self) -> None:
        self.synced = False
        self.replaced: list[list[str]] = []

    def apply(self, kind: str, event_type: str | None, body: Any) -> None:
        pass

    def replace(self, kind: str, items: Any) -> None:
        self.replaced.append([i["metadata"]["name"] for i in items])


class _Pages:
    """The paged LIST: one page holding a and b."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, **_: Any) -> Any:
        self.calls += 1

        class _Data:
            data = json.dumps(
                {"metadata": {"resourceVersion": "50"}, "items": [_obj("a"), _obj("b")]}
            ).encode()

        return _Data()


class _Streams:
    """Every watch-list answered the same way; the informer stopped after `limit` opens."""

    def __init__(self, informer: Informer, events: list[dict[str, Any]], limit: int) -> None:
        self.informer, self.events, self.limit, self.opened = informer, events, limit, 0

    def param_serialize(self, method: str, path: str, **kw: Any) -> tuple[Any, ...]:
        return method, path, kw["header_params"], None, None

    def call_api(self, *_: Any, **__: Any) -> _Response:
        self.opened += 1
        if self.opened >= self.limit:
            self.informer.stop()
        return _Response(200, self.events)


def _informer_over(
    events: list[dict[str, Any]], watches: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[Informer, _Sink, _Streams, _Pages]:
    """An informer of one kind whose watch-lists all answer `events`; each watch after a
    LIST ends in a relist, and the informer stops after `watches` of them (or after 10
    watch-lists: without a fallback it would try them forever)."""
    sink, pages = _Sink(), _Pages()
    informer = Informer(sink, (Source("Release", lambda _api: pages, "/releases"),), backoff=0)
    streams = _Streams(informer, events, limit=10)
    seen = {"watches": 0}

    def watch(_self: Informer, _source: Source, _call: Any, version: str) -> str:
        assert version == "50"  # the paged LIST's version, not the failed stream's
        seen["watches"] += 1
        if seen["watches"] >= watches:
            informer.stop()
            return version
        raise informer_module._Relist("the watch failed")

    monkeypatch.setattr(Informer, "_watch", watch)
    return informer, sink, streams, pages


def test_a_watch_list_cut_short_is_followed_by_pages_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    informer, sink, streams, pages = _informer_over(
        [{"type": "ADDED", "object": _obj("a")}], watches=1, monkeypatch=monkeypatch
    )
    informer._run(informer.sources[0], streams)  # type: ignore[arg-type]
    assert streams.opened == 1 and pages.calls == 1
    assert sink.replaced == [["a", "b"]] and sink.synced
    assert informer.streamed == set()


def test_a_kind_whose_watch_lists_keep_failing_is_listed_in_pages_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A server that ignores sendInitialEvents: ADDED, then changes, never the bookmark.
    events = [
        {"type": "ADDED", "object": _obj("a")},
        {"type": "MODIFIED", "object": _obj("a", "2")},
    ]
    relists = WATCH_LIST_ATTEMPTS + 3
    informer, sink, streams, pages = _informer_over(events, relists, monkeypatch)
    informer._run(informer.sources[0], streams)  # type: ignore[arg-type]
    assert streams.opened == WATCH_LIST_ATTEMPTS
    assert pages.calls == relists
    assert sink.replaced == [["a", "b"]] * relists
