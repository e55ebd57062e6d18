"""Analyse many envelopes on every core: a process pool over batches.

Signature checks and parsing are CPU-bound and hold the GIL, so threads would not help;
worker processes each analyse a batch of distinct envelopes and send back slim
:class:`~stella.evidence.verify_envelope.Analysis` tuples. Whatever depends on order
(chains, the stores agreeing) is left to the caller's single sequential pass, which reads
analysis ``i`` as soon as its batch is back: the caller parses the stores and runs that
pass while the workers compute, so no core waits for the other half of the work. A
finding is the same whichever path found it.

Memory stays bounded: at most ``2 x jobs`` batches are in flight; what comes back is a
few strings per envelope. Small inputs never start a pool (start-up would cost more than
it saves).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any

from stella.evidence.keys import KeyRing
from stella.evidence.verify_envelope import Analyser, Analysis, EnvelopeKey, Problems
from stella.evidence.verify_facts import Facts
from stella.evidence.verify_gc import paused_gc

# Below this many envelopes one process is as fast as starting a pool.
PARALLEL_MIN = 2000
BATCH = 500


class WorkerLost(RuntimeError):
    """A worker process died (killed, out of memory): nothing can be concluded."""


_LOST = (
    "a verify worker process died (killed, or out of memory?), so nothing was concluded: "
    "run verify again, or with --jobs 1"
)


# The analyser of this worker process (set by _init, once per worker).
_worker: dict[str, Analyser] = {}


def default_jobs() -> int:
    """The cores this process may run on (a cgroup/affinity limit counts, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def processes_for(envelopes: int, jobs: int) -> int:
    """How many processes analyse this many envelopes: 1 (this one) for small inputs."""
    return 1 if jobs <= 1 or envelopes < PARALLEL_MIN else jobs


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
    """Distinct envelopes in, their analyses out by index, in ``processes`` processes.

    ``add`` returns the envelope's index (the same one for an envelope seen before);
    ``get(i)`` returns its analysis, waiting for its batch if need be. ``expected`` (how
    many envelopes are coming, roughly) decides whether a pool is worth starting.
    """

    def __init__(self, ring: KeyRing, trusted: KeyRing | None, jobs: int, expected: int) -> None:
        self.processes = processes_for(expected, jobs)
        self._index: dict[EnvelopeKey, int] = {}
        self._done: list[Analysis] = []
        self._batch: list[EnvelopeKey] = []
        self._pending: deque[Future[list[Sent]]] = deque()
        self._pool: ProcessPoolExecutor | None = None
        self._analyser: Analyser | None = None
        if self.processes == 1:
            self._analyser = Analyser(ring, trusted)
            return
        # Several batches per worker, so that one slow batch does not leave the others idle.
        self._size = min(BATCH, -(-expected // (self.processes * 4)))
        initargs = (dict(ring), None if trusted is None else dict(trusted))
        # An executor rather than multiprocessing.Pool: when a worker dies, Pool loses its
        # batch and waits for it forever; the executor says so (BrokenProcessPool).
        self._pool = ProcessPoolExecutor(
            self.processes, mp_context=_context(), initializer=_init, initargs=initargs
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
        assert self._pool is not None
        if len(self._pending) >= 2 * self.processes:
            self._collect()  # bounded: never more than 2 batches per worker in flight
        try:
            self._pending.append(self._pool.submit(_analyse_batch, self._batch))
        except BrokenProcessPool:
            raise WorkerLost(_LOST) from None
        self._batch = []

    def _collect(self) -> None:
        try:
            self._done.extend(map(_received, self._pending.popleft().result()))
        except BrokenProcessPool:
            raise WorkerLost(_LOST) from None
