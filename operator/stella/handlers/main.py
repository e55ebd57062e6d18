"""Every kopf handler of Stella, registered in one place.

kopf runs the operator's loop and its start and stop; the handlers are glue, one line
each. No resource handler is left (issue 12): the promotion engine watches what it reads
itself (stella.engine.feed, started with the engine, so only on the replica holding the
Lease), because kopf's per-event machinery — a deep copy of every body for its diff base,
a worker task and loggers per object — was about two thirds of the operator's CPU on a
cold resync. So kopf writes nothing to any object either: no finalizer, no progress or
diff-base annotations. A deleted Release arrives as a DELETED event of the engine's watch;
the engine frees what it held, and at its start what Releases deleted while no engine ran
had held (stella.engine.deletions).

Admission is not here: it has its own server, view and watches (stella.handlers.webhook),
so it never waits behind the engine's loop.
"""

from __future__ import annotations

from typing import Any

import kopf

from stella.handlers import lifecycle


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    lifecycle.configure(settings)
    memo.engine_task = lifecycle.supervise(memo)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await lifecycle.stop_controller(memo)
