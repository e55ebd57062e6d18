"""Freed heap memory goes back to the OS after the first pass (glibc's malloc_trim)."""

from __future__ import annotations

import logging

import pytest

from stella.k8s import memory


def test_trim_returns_freed_pages_in_the_middle_of_the_heap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 100 MiB of 1 KiB blocks (malloc's, not pymalloc's), freed below a block still in
    # use: glibc keeps those pages mapped (the top of the heap cannot shrink) until
    # malloc_trim hands them back — the case of a LIST's pages under the objects kept.
    blocks = [bytes(1024 - 33) + i.to_bytes(8, "little") for i in range(100_000)]
    fence = bytes(2048)
    del blocks
    before = memory._rss_kib()
    with caplog.at_level(logging.INFO, logger="stella"):
        memory.trim("test")
    after = memory._rss_kib()
    assert before is not None and after is not None
    assert before - after > 50 * 1024, (before, after)  # KiB
    assert any(r.getMessage().startswith("memory: test; RSS") for r in caplog.records)
    assert fence
