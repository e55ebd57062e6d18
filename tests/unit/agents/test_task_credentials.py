"""A task's registry credentials go to ONE request (T8), and again to that request only
when its answer was lost (the hub killed between spending and answering): the decision,
and the agent's side that repeats the same key on a retry and never another's."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from stella.agents.client import Session
from stella.agents.task_credentials import (
    CREDENTIALS_SECONDS,
    decide,
    request_digest,
    valid_request,
)
from stella.cli.agent import _credentials

FP = "ab" * 32
KEY = "k" * 43
SPENT = {
    "phase": "Acknowledged",
    "credentialsIssued": True,
    "credentialsRequest": request_digest(FP, KEY),
}


def test_a_fresh_task_spends_its_credentials_once() -> None:
    d = decide({"phase": "Acknowledged"}, request_digest(FP, KEY), 10)
    assert d.hand_out and d.spend
    # An agent that sends no key (an older one) still gets them, once.
    assert decide({}, None, 10).spend


def test_the_same_request_after_a_lost_answer_gets_them_again_without_spending() -> None:
    d = decide(SPENT, request_digest(FP, KEY), 10)
    assert d.hand_out and not d.spend and not d.replay


@pytest.mark.parametrize(
    "digest",
    [
        request_digest(FP, "x" * 43),  # another request: a copy of the session
        request_digest("cd" * 32, KEY),  # the same key from another certificate
        None,  # no key at all
    ],
)
def test_any_other_request_for_spent_credentials_is_a_replay(digest: str | None) -> None:
    d = decide(SPENT, digest, 10)
    assert not d.hand_out and d.replay and d.status == 409
    assert "handed out already" in d.message


def test_spent_credentials_without_a_recorded_request_go_to_no_one() -> None:
    """Spent by an agent that sent no key: nothing matches, whatever is asked."""
    spent = {"phase": "Pending", "credentialsIssued": True}
    assert decide(spent, request_digest(FP, KEY), 10).replay


def test_once_the_task_applied_or_ended_not_even_the_same_request_gets_them() -> None:
    running = decide({**SPENT, "phase": "Running"}, request_digest(FP, KEY), 10)
    assert not running.hand_out and not running.replay and running.status == 409
    over = decide({**SPENT, "phase": "Failed"}, request_digest(FP, KEY), 10)
    assert not over.hand_out and over.status == 409 and "over" in over.message


def test_fifteen_minutes_after_the_task_was_made_nothing_goes_out() -> None:
    assert decide({}, None, CREDENTIALS_SECONDS).status == 410
    assert decide(SPENT, request_digest(FP, KEY), CREDENTIALS_SECONDS).status == 410


@given(
    fp=st.text("0123456789abcdef", min_size=64, max_size=64),
    mine=st.text("abcXYZ019_-", min_size=32, max_size=64),
    other=st.text("abcXYZ019_-", min_size=32, max_size=64),
    phase=st.sampled_from(["Pending", "Acknowledged", "Running", "Succeeded", "Failed"]),
    age=st.floats(min_value=0, max_value=2 * CREDENTIALS_SECONDS),
)
def test_spent_credentials_go_only_to_the_request_that_spent_them(
    fp: str, mine: str, other: str, phase: str, age: float
) -> None:
    status = {
        "phase": phase,
        "credentialsIssued": True,
        "credentialsRequest": request_digest(fp, mine),
    }
    d = decide(status, request_digest(fp, other), age)
    assert not d.spend
    if d.hand_out:
        assert other == mine and phase in ("Pending", "Acknowledged")
        assert age < CREDENTIALS_SECONDS


def test_request_keys_are_checked() -> None:
    assert valid_request("A" * 43) and valid_request("a-_9" * 8)
    for bad in ("short", "x" * 129, "with space" * 4, "é" * 40, 42, None, ["k" * 43]):
        assert not valid_request(bad)


class Hub:
    """The hub's HTTP side: the first credentials call is cut off (the hub killed before
    it answered), the next one answers; it records the keys it was sent."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def login(self) -> dict[str, Any]:
        return {"accessToken": "a", "refreshToken": "r", "expiresIn": 900}

    def credentials(self, access: str, task: str, request: str) -> list[dict[str, Any]]:
        self.keys.append(request)
        if len(self.keys) == 1:
            raise requests.exceptions.ConnectionError("Remote end closed connection")
        return [{"hosts": ["r.example"], "username": "u", "password": "p"}]


def test_the_agent_repeats_its_key_after_a_lost_answer_and_makes_a_new_one_per_fetch() -> None:
    hub = Hub()
    session = Session(hub, sleep=lambda _s: None)  # type: ignore[arg-type]
    fetch = _credentials(session, "t-1")
    assert fetch() == [{"hosts": ["r.example"], "username": "u", "password": "p"}]
    assert len(hub.keys) == 2 and hub.keys[0] == hub.keys[1] and valid_request(hub.keys[0])
    fetch()
    assert hub.keys[2] != hub.keys[0]  # another fetch: another request
