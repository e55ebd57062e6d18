"""Per-identity quotas (429 + Retry-After) and the many-reads signal, without a clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stella.web.quotas import HourlyQuota, VolumeWatch


def test_a_quota_counts_per_identity_and_says_when_to_come_back() -> None:
    quota = HourlyQuota(limit=2, window=3600)
    assert quota.take("erin", 0) is None
    assert quota.take("erin", 100) is None
    assert quota.take("erin", 200) == 3400  # the first export leaves the window at 3600
    assert quota.take("dave", 200) is None  # someone else's quota is their own
    assert quota.take("erin", 3600) is None  # the first one has left the window
    assert quota.take("erin", 3601) == 99


def test_a_zero_quota_refuses_everything() -> None:
    assert HourlyQuota(limit=0).take("erin", 0) == 3600


@given(st.lists(st.floats(min_value=0, max_value=20_000), max_size=60), st.integers(1, 5))
def test_never_more_than_the_limit_in_any_window(times: list[float], limit: int) -> None:
    quota, accepted = HourlyQuota(limit=limit, window=1000), []
    for t in sorted(times):
        retry = quota.take("erin", t)
        if retry is None:
            accepted.append(t)
        else:
            assert retry >= 1
    for t in accepted:
        assert len([a for a in accepted if t <= a < t + 1000]) <= limit


def test_the_read_signal_fires_once_per_window_per_identity() -> None:
    watch = VolumeWatch(threshold=3, window=3600)
    assert [watch.record("erin", t) for t in (0, 1, 2, 3, 4)] == [None, None, 3, None, None]
    assert watch.record("dave", 5) is None
    assert watch.record("erin", 3600) is None  # a new window starts counting again
    assert watch.record("erin", 3601, amount=5) == 6
