"""Evidence at operator startup: publish the signer's public keys, repair lost ConfigMaps.

Two steps, with different failure semantics:

* **Publish the public keys** (``recorder.publish_keys()``) — synchronously, before the
  engine starts. It needs only the API server. If it fails (API server unreachable, or a
  ConfigMap already publishes *another* key under our key id) :func:`start` raises, the
  kopf startup handler fails and kopf retries it; ``/readyz`` stays 503 and the engine
  never runs, so nothing is deployed with a key a verifier cannot find. (Independently
  of this, :meth:`Recorder.record` publishes the key before the first packet it signs
  with it, and no deployment starts without its authorization packet.)
* **Repair** (``recorder.repair()``) writes the ConfigMap of a chain's newest log entry
  when it lacks one — a crash between the two writes of an event that is never retried.
  Older gaps are never filled: they can only be deletions, and verify must see them. It needs the
  external log, which may be down at startup; an outage of the log must not keep the
  operator (and its admission webhooks) from starting, so repair runs in the background
  and retries until it succeeds once. Deployments do not wait for it: every new packet
  heals its own chain head first, and a missing older ConfigMap changes nothing the
  engine decides. Each re-created ConfigMap is logged as a warning: without a crash
  before it, a missing ConfigMap means someone deleted it, which ``stella evidence
  verify`` would otherwise have reported.
"""

from __future__ import annotations

import asyncio
import logging

from stella.evidence.errors import EvidenceError
from stella.evidence.recorder import Recorder

log = logging.getLogger("stella.evidence")

REPAIR_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)


class EvidenceStartupError(RuntimeError):
    """The public keys could not be published: the operator must not start deploying."""


def publish_keys(recorder: Recorder) -> None:
    try:
        recorder.publish_keys()
    except EvidenceError as exc:
        raise EvidenceStartupError(
            f"evidence: cannot publish the signer's public keys ({exc.reason}): {exc.message}; "
            "the operator will not deploy until they are published"
        ) from exc
    log.info("evidence: public keys published: %s", ", ".join(recorder.signer.public_keys()))


async def repair(recorder: Recorder) -> list[str]:
    """Run :meth:`Recorder.repair` until it succeeds once; return the ConfigMaps written."""
    attempt = 0
    while True:
        try:
            written = await asyncio.to_thread(recorder.repair)
        except EvidenceError as exc:
            delay = exc.retry_after or REPAIR_BACKOFF[min(attempt, len(REPAIR_BACKOFF) - 1)]
            log.warning(
                "evidence: repair not possible yet (%s: %s); retrying in %.0fs",
                exc.reason,
                exc.message,
                delay,
            )
            attempt += 1
            await asyncio.sleep(delay)
            continue
        for name in written:
            log.warning(
                "evidence: ConfigMap %s was missing and is re-created from the external log; "
                "unless the operator crashed while writing it, someone deleted it",
                name,
            )
        log.info("evidence: repair done, %d ConfigMaps re-created", len(written))
        return written


def start(recorder: Recorder) -> asyncio.Task[list[str]]:
    """Publish the keys now (raises :class:`EvidenceStartupError`), repair in the background.

    Call inside the operator's event loop; cancel the returned task at shutdown.
    """
    publish_keys(recorder)
    return asyncio.get_running_loop().create_task(repair(recorder), name="evidence-repair")
