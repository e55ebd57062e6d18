"""The agent's session across a hub restart: a 401 means the hub forgot the session (log
in again with the certificate, once); a hub out of reach is tried again for a while; a
refusal (403) is never papered over."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from stella.agents.client import HubError, Session


class Hub:
    """Stands in for the hub's HTTP side; counts logins and hands out numbered tokens."""

    def __init__(self, fail: list[BaseException]) -> None:
        self.fail = fail
        self.logins = 0
        self.seen: list[str] = []

    def login(self) -> dict[str, Any]:
        self.logins += 1
        return {"accessToken": f"a{self.logins}", "refreshToken": "r", "expiresIn": 900}

    def heartbeat(self, access: str, capabilities: list[str]) -> dict[str, Any]:
        self.seen.append(access)
        if self.fail:
            raise self.fail.pop(0)
        return {"ok": capabilities}


def session(hub: Hub) -> Session:
    return Session(hub, sleep=lambda _s: None)  # type: ignore[arg-type]


def test_a_forgotten_session_logs_in_again_once() -> None:
    hub = Hub([HubError(401, "this session was revoked; log in again")])
    assert session(hub).call(hub.heartbeat, ["deploy.kubernetes"]) == {"ok": ["deploy.kubernetes"]}
    assert hub.logins == 2 and hub.seen == ["a1", "a2"]


def test_a_second_401_is_not_retried() -> None:
    hub = Hub([HubError(401, "no"), HubError(401, "no")])
    with pytest.raises(HubError) as err:
        session(hub).call(hub.heartbeat, [])
    assert err.value.status == 401 and hub.logins == 2


@pytest.mark.parametrize("status", [403, 409])
def test_a_refusal_is_the_callers(status: int) -> None:
    hub = Hub([HubError(status, "this agent is revoked")])
    with pytest.raises(HubError):
        session(hub).call(hub.heartbeat, [])
    assert hub.logins == 1


def test_a_hub_out_of_reach_is_tried_again() -> None:
    down = requests.exceptions.ConnectionError("refused")
    hub = Hub([down, down])
    assert session(hub).call(hub.heartbeat, []) == {"ok": []}
    assert len(hub.seen) == 3


def test_a_certificate_refused_is_not_a_hub_away() -> None:
    hub = Hub([requests.exceptions.SSLError("unknown ca")])
    with pytest.raises(requests.exceptions.SSLError):
        session(hub).call(hub.heartbeat, [])


def test_a_connection_dropped_mid_handshake_is_a_hub_away() -> None:
    """A hub killed while the agent's TLS handshake is under way closes the connection
    with no alert (SSLEOFError, as requests wraps it): tried again, not taken for a
    refused certificate."""
    import ssl

    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    try:
        try:
            raise eof
        except ssl.SSLEOFError as inner:
            raise requests.exceptions.SSLError(inner) from inner
    except requests.exceptions.SSLError as wrapped:
        dropped = wrapped
    hub = Hub([dropped])
    assert session(hub).call(hub.heartbeat, []) == {"ok": []}
    assert len(hub.seen) == 2
