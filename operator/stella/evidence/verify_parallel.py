"""Analyse many envelopes on every core: a process pool over batches.

Signature checks and parsing are CPU-bound and hold the GIL, so threads would not help;
worker processes each analyse a batch of distinct envelopes and send back slim
:class:`~stella.evidence.verify_envelope.Analysis` tuples in the order they were given.
Whatever depends on order (chains, the stores agreeing) is left to the caller's single
sequential pass over these results, so a finding is the same whichever path found it.

Memory stays bounded: at most ``2 x jobs`` batches are in flight at a time. Small inputs
never start a pool (start-up would cost more than it saves).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from multiprocessing.pool import AsyncResult, Pool

from stella.evidence.keys import KeyRing
from stella.evidence.verify_envelope import Analyser, Analysis, EnvelopeKey
from stella.evidence.verify_gc import paused_gc

# Below this many distinct envelopes one process is as fast as starting a pool.
PARALLEL_MIN = 2000
BATCH = 500

# The analyser of this worker process (set by _init, once per worker).
_worker: dict[str, Analyser] = {}


def default_jobs() -> int:
    """The cores this process may run on (a cgroup/affinity limit counts, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _init(pems: Mapping[str, str], trusted: Mapping[str, str] | None) -> None:
    _worker["analyser"] = Analyser(KeyRing(pems), None if trusted is None else KeyRing(trusted))


def _analyse_batch(keys: Sequence[EnvelopeKey]) -> list[Analysis]:
    analyse = _worker["analyser"].analyse
    with paused_gc():
        return [analyse(k) for k in keys]


def _context() -> multiprocessing.context.BaseContext:
    # fork: the workers inherit the imported modules and start in milliseconds; spawn and
    # forkserver re-import pydantic and the models (~0.5 s), which is what a 10,000-packet
    # verify takes in all. The workers only compute; they touch no file, socket or lock.
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def processes_for(envelopes: int, jobs: int) -> int:
    """How many processes analyse this many envelopes: 1 (this one) for small inputs."""
    return 1 if jobs <= 1 or envelopes < PARALLEL_MIN else jobs


def analyse_all(
    keys: Sequence[EnvelopeKey],
    ring: KeyRing,
    trusted: KeyRing | None,
    jobs: int,
) -> Iterator[Analysis]:
    """Each key's analysis, in the order of ``keys``; in ``jobs`` processes when it pays."""
    if processes_for(len(keys), jobs) == 1:
        analyser = Analyser(ring, trusted)
        yield from (analyser.analyse(k) for k in keys)
        return
    # Several batches per worker, so that one slow batch does not leave the others idle.
    size = min(BATCH, -(-len(keys) // (jobs * 4)))
    batches = (keys[i : i + size] for i in range(0, len(keys), size))
    initargs = (dict(ring), None if trusted is None else dict(trusted))
    with _context().Pool(jobs, initializer=_init, initargs=initargs) as pool:
        yield from _bounded(pool, batches, 2 * jobs)


def _bounded(
    pool: Pool, batches: Iterator[Sequence[EnvelopeKey]], window: int
) -> Iterator[Analysis]:
    pending: deque[AsyncResult[list[Analysis]]] = deque()
    for batch in batches:
        pending.append(pool.apply_async(_analyse_batch, (batch,)))
        if len(pending) >= window:
            yield from pending.popleft().get()
    while pending:
        yield from pending.popleft().get()
