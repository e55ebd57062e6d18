"""Analyse many envelopes on every core: threads in this process, or a process pool.

The ECDSA verify (cryptography's ``EllipticCurvePublicKey.verify``, from version 50 at
least) releases the GIL, and is about half of an envelope's analysis; the rest (base64,
JSON, the statement's checks) and the caller's order-dependent pass are Python and hold
it. Threads therefore run the signatures of one thread beside the Python of another, with
nothing to pickle and no process to start, but the Python of all packets still runs one
at a time, and the threads contend for the lock; worker processes scale with the cores.
``layout_for`` chooses (``THREADS_MAX``: processes, as measured).

Either way, workers analyse batches of distinct envelopes and give back slim
:class:`~stella.evidence.verify_envelope.Analysis` tuples. Whatever depends on order
(chains, the stores agreeing) is left to the caller's single sequential pass, which reads
analysis ``i`` as soon as its batch is back: the caller parses the stores and runs that
pass while the workers compute. A finding is the same whichever path found it.

Memory stays bounded: at most ``2 x workers`` batches are with the workers at a time (the
batches waiting for them are lists of the keys the caller holds anyway); what comes back
is a few strings per envelope. Small inputs stay in this thread (starting workers would
cost more than it saves).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any, NamedTuple

from stella.evidence.keys import KeyRing
from stella.evidence.verify_envelope import Analyser, Analysis, EnvelopeKey, Problems
from stella.evidence.verify_facts import Facts
from stella.evidence.verify_gc import paused_gc

# Below this many envelopes this thread alone is as fast as starting workers.
PARALLEL_MIN = 2000
BATCH = 500
# Up to this many jobs, threads in this process; beyond, one worker process per job. Threads
# once verified ~10% more than 2 processes on 2 cores (session 27, ~44 us a bare verify);
# on the 2 cores of session 32 (~82 us a bare verify; bench/bench_evidence.py, 3 runs)
# 2 processes verify 1.45-1.51x one process and 2 threads 1.02-1.07x: each packet's Python
# share runs one thread at a time, and the threads contending for the lock cost CPU
# (212-229 us a packet against 186-205 us in processes). Session 30 had them even (1.32x
# against 1.35x). Processes, then, from 2 jobs; the bench measures both layouts every run.
THREADS_MAX = 1


class WorkerLost(RuntimeError):
    """A worker process died (killed, out of memory): nothing can be concluded."""


_LOST = (
    "a verify worker process died (killed, or out of memory?), so nothing was concluded: "
    "run verify again, or with --jobs 1"
)


class Layout(NamedTuple):
    """Who analyses the envelopes: ``processes`` processes of ``threads`` threads each
    (1, 1: this thread alone)."""

    processes: int
    threads: int


# The analyser of this worker process (set by _init, once per worker).
_worker: dict[str, Analyser] = {}


def default_jobs() -> int:
    """The cores this process may run on (a cgroup/affinity limit counts, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def layout_for(envelopes: int, jobs: int) -> Layout:
    """How this many envelopes are analysed with ``jobs`` cores."""
    if jobs <= 1 or envelopes < PARALLEL_MIN:
        return Layout(1, 1)
    if jobs <= THREADS_MAX:
        return Layout(1, jobs)
    return Layout(jobs, 1)


def _init(pems: Mapping[str, str], trusted: Mapping[str, str] | None) -> None:
    _worker["analyser"] = Analyser(KeyRing(pems), None if trusted is None else KeyRing(trusted))


# What a worker sends back for one envelope: an Analysis as plain tuples. A NamedTuple is
# pickled through a Python call per object (__getnewargs__), twice per envelope; plain
# tuples pickle in C, in half the time.
Sent = tuple[Problems, str, str | None, tuple[Any, ...] | None]


def _analyse_batch(keys: Sequence[EnvelopeKey]) -> list[Sent]:
    analyse = _worker["analyser"].analyse
    with paused_gc():
        return [_sent(analyse(k)) for k in keys]


def _sent(a: Analysis) -> Sent:
    return a.problems, a.digest, a.key_id, None if a.facts is None else tuple(a.facts)


def _received(sent: Sent) -> Analysis:
    problems, digest, key_id, facts = sent
    return Analysis(problems, digest, key_id, None if facts is None else Facts._make(facts))


def _context() -> multiprocessing.context.BaseContext:
    # fork: the workers inherit the imported modules and start in milliseconds; spawn and
    # forkserver re-import pydantic and the models (~0.5 s), which is what a 10,000-packet
    # verify takes in all. The workers only compute; they touch no file, socket or lock.
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


class Analyses:
    """Distinct envelopes in, their analyses out by index, in the ``layout`` layout_for
    chooses.

    ``add`` returns the envelope's index (the same one for an envelope seen before);
    ``get(i)`` returns its analysis, waiting for its batch if need be. ``expected`` (how
    many envelopes are coming, roughly) decides whether workers are worth starting.
    """

    def __init__(self, ring: KeyRing, trusted: KeyRing | None, jobs: int, expected: int) -> None:
        self.layout = layout_for(expected, jobs)
        self._index: dict[EnvelopeKey, int] = {}
        self._done: list[Analysis] = []
        self._batch: list[EnvelopeKey] = []
        self._pending: deque[Future[list[Any]]] = deque()  # with the workers
        self._waiting: deque[list[EnvelopeKey]] = deque()  # for a worker to be free
        self._pool: Executor | None = None
        self._analyser: Analyser | None = None
        workers = max(self.layout)
        if workers == 1:
            self._analyser = Analyser(ring, trusted)
            return
        self._workers = workers
        # Several batches per worker, so that one slow batch does not leave the others idle.
        self._size = min(BATCH, -(-expected // (workers * 4)))
        self._work: Callable[[Sequence[EnvelopeKey]], list[Any]]
        self._unpack: Callable[[list[Any]], Sequence[Analysis]]
        if self.layout.threads > 1:
            # One analyser for every thread: its state is a cache of pinned-key verdicts,
            # which two threads at worst both compute, to the same value.
            analyse = Analyser(ring, trusted).analyse
            self._work = lambda keys: [analyse(k) for k in keys]
            self._unpack = lambda done: done
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="stella-verify")
            return
        self._work = _analyse_batch
        self._unpack = lambda sent: list(map(_received, sent))
        initargs = (dict(ring), None if trusted is None else dict(trusted))
        # An executor rather than multiprocessing.Pool: when a worker dies, Pool loses its
        # batch and waits for it forever; the executor says so (BrokenProcessPool).
        self._pool = ProcessPoolExecutor(
            workers, mp_context=_context(), initializer=_init, initargs=initargs
        )

    def __enter__(self) -> Analyses:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def add(self, key: EnvelopeKey) -> int:
        index = self._index.get(key)
        if index is not None:
            return index
        index = self._index[key] = len(self._index)
        if self._analyser is not None:
            self._done.append(self._analyser.analyse(key))
            return index
        self._batch.append(key)
        if len(self._batch) >= self._size:
            self._submit()
        return index

    def get(self, index: int) -> Analysis:
        if (
            index >= len(self._done)
            and self._batch
            and index >= len(self._index) - len(self._batch)
        ):
            self._submit()  # a partial batch holds it: send it now rather than wait
        while index >= len(self._done):
            self._collect()
        return self._done[index]

    def _submit(self) -> None:
        self._waiting.append(self._batch)
        self._batch = []
        self._feed()

    def _feed(self) -> None:
        """Hand waiting batches to the workers, never more than 2 per worker at a time."""
        assert self._pool is not None
        while self._waiting and len(self._pending) < 2 * self._workers:
            try:
                self._pending.append(self._pool.submit(self._work, self._waiting.popleft()))
            except BrokenProcessPool:
                raise WorkerLost(_LOST) from None

    def _collect(self) -> None:
        self._feed()
        try:
            self._done.extend(self._unpack(self._pending.popleft().result()))
        except BrokenProcessPool:
            raise WorkerLost(_LOST) from None
        self._feed()
