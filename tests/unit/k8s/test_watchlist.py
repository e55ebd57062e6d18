"""The watch-list's reading of a stream (stella.k8s.watchlist), on recorded answers: the
initial state ends at its bookmark, anything short of it is never taken for a whole LIST,
and a server that refuses watch-lists is told apart from one that failed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from stella.k8s.watchlist import INITIAL_EVENTS_END, Incomplete, StreamingList, Unsupported


class _Response:
    def __init__(self, status: int, lines: list[dict[str, Any]], body: bytes = b"") -> None:
        self.status, self.reason, self.body = status, "reason", body
        self.response = self
        self._chunks = [(json.dumps(e) + "\n").encode() for e in lines]

    def read(self) -> bytes:
        return self.body

    def stream(self, *_: Any, **__: Any) -> Any:  # what iter_resp_lines reads
        return iter(self._chunks)

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


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
    listing, _ = _open(200, ("ERROR", {"code": 410, "message": "too old"}))
    with pytest.raises(ApiException) as caught:
        list(listing)
    assert caught.value.status == 410


def test_a_server_refusing_watch_lists_is_unsupported_and_a_failure_is_not() -> None:
    for status in (400, 422):
        with pytest.raises(Unsupported, match="refused a watch-list"):
            _open(status)
    with pytest.raises(ApiException) as caught:
        _open(503)
    assert caught.value.status == 503
