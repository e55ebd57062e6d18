"""Freed heap memory goes back to the OS after the first pass (glibc's malloc_trim)."""

from __future__ import annotations

import gc
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


def test_release_gives_back_what_another_thread_freed_in_its_own_arena() -> None:
    # The steady-load case (T10): the webhook server's and the I/O threads' allocations live
    # in their own glibc arenas; a periodic release from any thread trims every arena.
    import threading

    fences: list[bytes] = []

    def churn() -> None:
        blocks = [bytes(1024 - 33) + i.to_bytes(8, "little") for i in range(100_000)]
        fences.append(bytes(2048))  # kept: the arena's top cannot shrink below it
        del blocks

    worker = threading.Thread(target=churn)
    worker.start()
    worker.join()
    given_back = memory.release("test")
    assert given_back is not None and given_back > 50 * 1024, given_back  # KiB
    assert fences


def test_release_every_zero_never_runs_and_a_period_keeps_releasing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    asyncio.run(asyncio.wait_for(memory.release_every(0), 1.0))  # returns at once: off
    calls: list[str] = []

    async def some() -> None:
        three = asyncio.Event()
        loop = asyncio.get_running_loop()

        def release(why: str, *_: object) -> int:
            calls.append(why)
            if len(calls) >= 3:
                loop.call_soon_threadsafe(three.set)
            return 0

        monkeypatch.setattr(memory, "release", release)
        task = asyncio.create_task(memory.release_every(0.01))
        await three.wait()
        task.cancel()

    asyncio.run(asyncio.wait_for(some(), 10.0))
    assert calls[:3] == ["periodic trim"] * 3


def test_the_operator_tunes_the_collector_once_its_modules_are_loaded() -> None:
    before = gc.get_threshold()
    try:
        memory.tune_gc()
        assert gc.get_threshold() == memory.GC_THRESHOLDS
        assert gc.get_freeze_count() > 0  # what was loaded is out of the collector's sight
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
