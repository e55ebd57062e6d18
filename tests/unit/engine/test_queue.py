"""The work queue: one worker per key at a time, nothing lost, delayed requeue."""

from __future__ import annotations

import asyncio
import itertools

from stella.engine.queue import YIELD_EVERY, WorkQueue


def test_a_key_is_never_processed_concurrently_and_a_late_add_is_not_lost() -> None:
    async def scenario() -> list[str]:
        q: WorkQueue[str] = WorkQueue()
        log: list[str] = []
        active: set[str] = set()
        second = asyncio.Event()

        async def handle(key: str) -> float | None:
            assert key not in active, "processed concurrently"
            active.add(key)
            log.append(f"start {key}")
            if len(log) == 1:
                q.add(key)  # arrives while the key is being processed
                q.add(key)
            await asyncio.sleep(0.01)
            active.discard(key)
            log.append(f"end {key}")
            if log.count(f"start {key}") == 2:
                second.set()
            return None

        runner = asyncio.create_task(q.run(handle, workers=3))
        q.add("a")
        await asyncio.wait_for(second.wait(), 2)
        await asyncio.sleep(0.05)
        runner.cancel()
        return log

    log = asyncio.run(scenario())
    assert log == ["start a", "end a", "start a", "end a"]


def test_requeue_after_delay() -> None:
    async def scenario() -> float:
        q: WorkQueue[str] = WorkQueue()
        seen: list[float] = []
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        async def handle(key: str) -> float | None:
            seen.append(loop.time())
            if len(seen) == 2:
                done.set()
                return None
            return 0.2

        runner = asyncio.create_task(q.run(handle, workers=1))
        q.add("k")
        await asyncio.wait_for(done.wait(), 2)
        runner.cancel()
        return seen[1] - seen[0]

    assert asyncio.run(scenario()) >= 0.19


def test_busy_while_a_key_waits_or_runs_but_not_for_a_delayed_requeue() -> None:
    async def main() -> None:
        q: WorkQueue[str] = WorkQueue()
        assert not q.busy
        gate = asyncio.Event()

        async def handle(key: str) -> float | None:
            await gate.wait()
            return 60.0  # requeued a minute later: not work to wait for now

        q.add("a")
        assert q.busy  # waiting for a worker
        waiter = asyncio.create_task(q.drained())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        runner = asyncio.create_task(q.run(handle, workers=1))
        await asyncio.sleep(0.05)
        assert q.busy  # being processed
        assert not waiter.done()
        gate.set()
        await asyncio.sleep(0.05)
        assert waiter.done()
        assert not q.busy and len(q) == 1  # only the delayed requeue is left
        await asyncio.wait_for(q.drained(), 1.0)
        runner.cancel()

    asyncio.run(main())


def test_a_long_pass_of_handlers_that_never_await_still_lets_the_loop_run_other_tasks() -> None:
    """A warm restart's first pass: 10,000 settled Releases, each handled without awaiting
    anything. /healthz and /readyz (other tasks on the loop) must still be answered: at
    most YIELD_EVERY keys per worker pass between two turns of another task."""
    workers = 4

    async def scenario() -> tuple[int, list[int]]:
        q: WorkQueue[int] = WorkQueue()
        handled = 0
        marks: list[int] = []  # keys handled so far, at each turn of the other task

        async def handle(key: int) -> float | None:
            nonlocal handled
            handled += 1
            return None

        async def other_task() -> None:
            while True:
                marks.append(handled)
                await asyncio.sleep(0)

        for key in range(10_000):
            q.add(key)
        other = asyncio.create_task(other_task())
        await asyncio.sleep(0)
        runner = asyncio.create_task(q.run(handle, workers=workers))
        await asyncio.wait_for(q.drained(), 60)
        runner.cancel()
        other.cancel()
        return handled, [*marks, handled]

    handled, marks = asyncio.run(scenario())
    assert handled == 10_000
    longest = max(b - a for a, b in itertools.pairwise(marks))
    assert longest <= YIELD_EVERY * workers, f"{longest} keys without a turn for other tasks"
