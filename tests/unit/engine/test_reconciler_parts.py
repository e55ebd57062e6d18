"""The Reconciler implements every part its mixins use (engine/reconciler_protocol.py): at
run time none of the protocol's placeholders is what a mixin's call reaches, whatever the
order of the mixins; mypy checks the signatures."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from stella.engine.reconcile import Reconciler
from stella.engine.reconciler_protocol import ReconcilerParts

METHODS = sorted(
    name
    for name, value in vars(ReconcilerParts).items()
    if inspect.isfunction(value) and not name.startswith("__")
)


def test_the_protocol_names_the_parts_the_mixins_use() -> None:
    assert METHODS == [
        "_agents_failed_after_rollout",
        "_credentials",
        "_evidence_pending",
        "_finish",
        "_gates_before_deploy",
        "_passport",
        "_rolled_out",
    ]
    assert set(ReconcilerParts.__annotations__) == {"view", "registry", "locks", "hooks"}


def test_every_method_resolves_to_an_implementation_not_the_placeholder() -> None:
    for name in METHODS:
        found = getattr(Reconciler, name)
        assert found is not getattr(ReconcilerParts, name), name
        owner = next(c for c in Reconciler.__mro__ if name in vars(c))
        assert owner is not ReconcilerParts, name
        assert _shape(found) == _shape(getattr(ReconcilerParts, name)), name


def _shape(fn: Callable[..., object]) -> list[tuple[str, object, object]]:
    """Parameter names, kinds and defaults (mypy compares the types)."""
    params = inspect.signature(fn).parameters.values()
    return [(p.name, p.kind, p.default) for p in params]
