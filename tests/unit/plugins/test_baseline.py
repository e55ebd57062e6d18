from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stella.plugins.baseline import ResourceBaseline


def test_a_sudden_jump_in_fuel_is_a_signal() -> None:
    b = ResourceBaseline()
    for _ in range(5):
        assert b.observe("smoke", 1000, 65536) is None
    signal = b.observe("smoke", 50_000, 65536)
    assert signal is not None and "50x the median of its last 5 runs" in signal


def test_a_jump_in_memory_is_a_signal_and_plugins_are_apart() -> None:
    b = ResourceBaseline()
    for _ in range(5):
        b.observe("a", 1000, 65536)
    assert b.observe("b", 10**9, 10**9) is None  # b has no history yet
    assert "bytes of memory" in (b.observe("a", 1000, 65536 * 16) or "")


@given(st.lists(st.integers(min_value=1, max_value=10**6), min_size=6, max_size=30))
def test_steady_use_is_never_a_signal(values: list[int]) -> None:
    """Runs within a factor of 10 of each other never signal."""
    low = max(values) // 10 + 1
    b = ResourceBaseline()
    assert all(b.observe("p", max(v, low), 65536) is None for v in values)
