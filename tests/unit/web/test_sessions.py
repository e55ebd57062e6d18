"""Console sessions (T2): 15-minute access tokens, refresh rotation, reuse and address signals."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stella.policy.identity import Identity
from stella.secrets.value import SecretValue
from stella.web.sessions import (
    ACCESS_SECONDS,
    FAMILY_SECONDS,
    REUSE_GRACE_SECONDS,
    SessionStore,
    Signal,
)

BOB = Identity("bob", "uid-bob", frozenset({"release-approvers"}))
HOME, ELSEWHERE = "10.0.0.1", "10.9.9.9"


def login(store: SessionStore, now: float = 1000.0):  # type: ignore[no-untyped-def]
    return store.login(BOB, SecretValue("kube-token-of-bob"), HOME, now)


def test_access_token_lives_fifteen_minutes() -> None:
    store = SessionStore()
    issued = login(store)
    assert ACCESS_SECONDS == 900
    assert store.authenticate(issued.access, HOME, 1000.0 + 899).family is issued.family
    late = store.authenticate(issued.access, HOME, 1000.0 + 900)
    assert not late.ok and late.signal is None and "expired" in late.reason


def test_refresh_rotates_both_tokens_and_the_old_access_token_stops_working() -> None:
    store = SessionStore()
    first = login(store)
    outcome, second = store.refresh(first.refresh, HOME, 1500.0)
    assert outcome.ok and second is not None
    assert second.access != first.access and second.refresh != first.refresh
    assert not store.authenticate(first.access, HOME, 1500.0).ok
    assert store.authenticate(second.access, HOME, 1500.0).family is first.family
    assert second.family is not None and first.family is not None
    assert second.family.csrf == first.family.csrf  # one CSRF token per session


def test_a_rotated_refresh_token_presented_again_revokes_the_family() -> None:
    store = SessionStore()
    first = login(store)
    _, second = store.refresh(first.refresh, HOME, 1100.0)
    assert second is not None
    replay, issued = store.refresh(first.refresh, HOME, 1200.0)
    assert issued is None and replay.signal is Signal.REFRESH_REUSE
    assert "used twice" in replay.reason
    # Everything of the family is dead now, the newest tokens included; its owner's next
    # request learns why (and raises no second signal).
    owner = store.authenticate(second.access, HOME, 1200.0)
    assert not owner.ok and owner.code == "refresh-reuse" and owner.signal is None
    again, none = store.refresh(second.refresh, HOME, 1200.0)
    assert not again.ok and none is None
    assert len(store) == 0


def test_the_same_session_from_another_address_is_a_signal_and_revokes_it() -> None:
    store = SessionStore()
    issued = login(store)
    moved = store.authenticate(issued.access, ELSEWHERE, 1001.0)
    assert moved.signal is Signal.ADDRESS_CHANGE and not moved.ok
    assert not store.authenticate(issued.access, HOME, 1002.0).ok
    other = login(store)
    refreshed, tokens = store.refresh(other.refresh, ELSEWHERE, 1003.0)
    assert refreshed.signal is Signal.ADDRESS_CHANGE and tokens is None


def test_a_family_ends_however_often_it_is_refreshed() -> None:
    store = SessionStore()
    issued = login(store, now=0.0)
    now = 0.0
    while now + ACCESS_SECONDS < FAMILY_SECONDS:
        now += ACCESS_SECONDS - 1
        outcome, fresh = store.refresh(issued.refresh, HOME, now)
        assert fresh is not None, outcome.reason
        issued = fresh
    assert issued.family.access_expires <= FAMILY_SECONDS
    ended, none = store.refresh(issued.refresh, HOME, FAMILY_SECONDS + 1)
    assert none is None and "log in again" in ended.reason


def test_unknown_tokens_and_logout() -> None:
    store = SessionStore()
    assert not store.authenticate("nope", HOME, 0.0).ok
    assert store.refresh("nope", HOME, 0.0)[1] is None
    issued = login(store)
    store.logout(issued.family)
    assert not store.authenticate(issued.access, HOME, 1001.0).ok
    assert store.refresh(issued.refresh, HOME, 1001.0)[1] is None


def test_the_bearer_token_never_prints() -> None:
    issued = login(SessionStore())
    assert "kube-token-of-bob" not in repr(issued.family)
    assert "kube-token-of-bob" not in str(issued.family.bearer)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["refresh", "replay", "auth"]), min_size=1, max_size=12))
def test_after_any_replay_nothing_of_the_family_works(steps: list[str]) -> None:
    store = SessionStore()
    current = login(store)
    spent: list[str] = []
    replayed = False
    now = 1000.0
    for step in steps:
        now += REUSE_GRACE_SECONDS + 1  # a replay, not a concurrent request
        if step == "refresh":
            _, fresh = store.refresh(current.refresh, HOME, now)
            if fresh is not None:
                spent.append(current.refresh)
                current = fresh
            else:
                assert replayed
        elif step == "replay" and spent:
            _, fresh = store.refresh(spent[0], HOME, now)
            assert fresh is None
            replayed = True
        ok = store.authenticate(current.access, HOME, now).ok
        assert ok is not replayed


def test_a_concurrent_request_of_the_same_browser_is_not_a_replay() -> None:
    """Page and script present the same refresh token at once: within the grace, from the
    same address, the second gets the family but no new tokens; later it is a replay."""
    store = SessionStore()
    first = login(store)
    _, second = store.refresh(first.refresh, HOME, 2000.0)
    assert second is not None
    twin, none = store.refresh(first.refresh, HOME, 2000.0 + REUSE_GRACE_SECONDS - 0.5)
    assert twin.family is first.family and none is None and twin.signal is None
    thief, _ = store.refresh(first.refresh, ELSEWHERE, 2001.0)
    assert thief.signal is Signal.ADDRESS_CHANGE


def test_after_the_grace_the_same_token_is_a_replay() -> None:
    store = SessionStore()
    first = login(store)
    store.refresh(first.refresh, HOME, 2000.0)
    late, none = store.refresh(first.refresh, HOME, 2000.0 + REUSE_GRACE_SECONDS)
    assert late.signal is Signal.REFRESH_REUSE and none is None
