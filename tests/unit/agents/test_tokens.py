"""Agent sessions: 15-minute access tokens bound to the certificate, refresh rotation on
every use, a reused refresh token revokes the whole family."""

from __future__ import annotations

import pytest

from stella.agents import tokens as t

FP, OTHER_FP = "a" * 64, "b" * 64


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_access_tokens_last_fifteen_minutes_and_bind_the_certificate() -> None:
    clock = Clock()
    svc = t.TokenService(clock=clock)
    grant = svc.login("eu-1", FP, "127.0.0.2")
    assert svc.check(grant.access_token, FP).agent == "eu-1"
    with pytest.raises(t.TokenRefused) as other:
        svc.check(grant.access_token, OTHER_FP)
    assert other.value.signal == t.SESSION_OTHER_CERT
    clock.now += t.ACCESS_SECONDS
    with pytest.raises(t.TokenRefused):
        svc.check(grant.access_token, FP)


def test_a_forged_or_altered_access_token_is_refused() -> None:
    svc = t.TokenService()
    grant = svc.login("eu-1", FP, "127.0.0.2")
    body, mac = grant.access_token.split(".")
    for bad in (f"{body}.{mac[:-2]}AA", f"{body[:-2]}xx.{mac}", "junk", "a.b.c"):
        with pytest.raises(t.TokenRefused):
            svc.check(bad, FP)
    with pytest.raises(t.TokenRefused):  # another hub's key
        t.TokenService().check(grant.access_token, FP)


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_family() -> None:
    svc = t.TokenService()
    first = svc.login("eu-1", FP, "127.0.0.2")
    second = svc.refresh(first.refresh_token, FP, "127.0.0.2")
    assert second.refresh_token != first.refresh_token
    third = svc.refresh(second.refresh_token, FP, "127.0.0.2")
    assert svc.check(third.access_token, FP).agent == "eu-1"
    # The first refresh token again: stolen. Everything of this family stops working.
    with pytest.raises(t.TokenRefused) as reused:
        svc.refresh(first.refresh_token, FP, "127.0.0.2")
    assert reused.value.signal == t.REFRESH_REUSED
    with pytest.raises(t.TokenRefused):
        svc.refresh(third.refresh_token, FP, "127.0.0.2")
    with pytest.raises(t.TokenRefused):
        svc.check(third.access_token, FP)


def test_a_session_used_from_two_addresses_is_revoked() -> None:
    svc = t.TokenService()
    grant = svc.login("eu-1", FP, "127.0.0.2")
    with pytest.raises(t.TokenRefused) as two:
        svc.refresh(grant.refresh_token, FP, "127.0.0.9")
    assert two.value.signal == t.SESSION_TWO_ADDRESSES
    with pytest.raises(t.TokenRefused):
        svc.check(grant.access_token, FP)


def test_revoking_an_agent_ends_its_sessions_only() -> None:
    svc = t.TokenService()
    mine, theirs = svc.login("eu-1", FP, "a"), svc.login("us-1", OTHER_FP, "b")
    assert svc.revoke_agent("eu-1") == 1
    with pytest.raises(t.TokenRefused):
        svc.check(mine.access_token, FP)
    assert svc.check(theirs.access_token, OTHER_FP).agent == "us-1"
