"""Admission's read-through view: a whole-view read (the synced indexes' keys/values/
items) is one snapshot, so a Release the watch deletes meanwhile is not looked up again —
found by bench_t10: a namespace deleted during the load made one create fail as an
internal error (KeyError from the lookup of an object already gone)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from stella.handlers.admission import _ReadThrough


def view(store: dict[Any, Any]) -> _ReadThrough:
    return _ReadThrough(store, fetch=lambda _key: None, apply=lambda _body: None)


def test_values_and_items_survive_a_delete_while_they_are_read() -> None:
    reads: tuple[Callable[[_ReadThrough], Iterable[Any]], ...] = (
        lambda v: v.values(),
        lambda v: v.items(),
        lambda v: v.keys(),
    )
    for read in reads:
        store = {("shop", "a"): {"n": 1}, ("shop", "b"): {"n": 2}}
        it = iter(read(view(store)))
        next(it)
        del store[("shop", "b")]  # the watch thread deletes it meanwhile
        assert len([next(it)]) == 1  # the snapshot still has it; no KeyError


def test_a_miss_is_still_a_miss() -> None:
    v = view({("shop", "a"): {"n": 1}})
    assert ("shop", "b") not in v
    assert v.get(("shop", "b")) is None
    assert dict(v.items()) == {("shop", "a"): {"n": 1}}
