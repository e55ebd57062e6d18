"""Every kopf handler of Stella, registered in one place.

Each handler is glue: it translates a kopf event into one call of a function that does
the work (in stella.engine or a domain package) and returns or patches its result.
"""

from __future__ import annotations

from typing import Any

import kopf

from stella import GROUP, VERSION
from stella.engine import release_status
from stella.handlers import lifecycle
from stella.models import ReleaseSpec


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    lifecycle.configure(settings)


@kopf.on.create(GROUP, VERSION, "releases")
def release_created(
    spec: kopf.Spec, meta: kopf.Meta, patch: kopf.Patch, **_: Any
) -> None:
    patch.status.update(
        release_status.initial_status(ReleaseSpec.model_validate(dict(spec)), meta.get("generation"))
    )
