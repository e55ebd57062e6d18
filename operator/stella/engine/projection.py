"""What the engine's view keeps of an object: the fields the engine reads, not the body the
API server sent (issue 12: 10,000 Releases held whole — managedFields, the client's
last-applied copy, kopf's wrapper around the event — would be most of the operator's
memory). Admission's own view (handlers/run.py) keeps the same slim copies.

Kept: apiVersion, kind, spec and status as they are (spec whole: an Approval's binding
is a digest over the exact spec), and of metadata what decisions, evidence, Events and
guarded writes read: name, namespace, uid, resourceVersion, generation, the creation and
deletion timestamps, finalizers (an earlier version's is taken off), labels (namespace
selectors) and annotations (the identity, binding
and rollback stamps) without the client's last-applied copy.

Environments are kept whole: few, and the lock writes them back from the view's copy.

One copy per object version in the process: the leader's engine view and admission's view
each receive every Release (from the same watch, stella.k8s.fanout, or, where the engine
runs without admission, from their own) — a version already slimmed for one view is
handed to the other as the same object (by uid and resourceVersion, held weakly: it lives
as long as a view holds it). Views never change a body in place; they replace it. At 10,000 Releases
that was about 9 KB per Release, a third of the leader's RSS (issue 12).
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from stella.engine.view import Body

_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "finalizers",
    "labels",
)
_DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
_TOP = ("apiVersion", "kind", "spec", "status")
_INTERNED = 64  # longer strings (messages, images) are mostly unique: not worth a lookup


class _Slim(dict[str, Any]):
    """A view's copy: a dict that can be referenced weakly (plain dicts cannot)."""

    __slots__ = ("__weakref__",)


# (kind, uid, resourceVersion) -> the copy some view holds of that version.
_COPIES: weakref.WeakValueDictionary[tuple[str, str, str], _Slim] = weakref.WeakValueDictionary()
_COPIES_LOCK = threading.Lock()  # informer threads and the engine's loop both slim


def slim(kind: str, body: Body) -> Body:
    """The views' copy of `body` (`body` is not changed): the one already made of this
    version of this object if a view still holds it, else a new one."""
    if kind == "Environment":
        return body
    meta = body.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    uid, version = meta.get("uid"), meta.get("resourceVersion")
    key = (kind, str(uid), str(version)) if uid and version else None
    if key is not None:
        with _COPIES_LOCK:
            held = _COPIES.get(key)
        if held is not None:
            return held
    out = _copy(meta, body)
    if key is None:
        return out
    with _COPIES_LOCK:
        return _COPIES.setdefault(key, out)


def _copy(meta: Mapping[str, Any], body: Body) -> _Slim:
    kept: dict[str, Any] = {k: meta[k] for k in _METADATA if meta.get(k) is not None}
    annotations = meta.get("annotations")
    if isinstance(annotations, Mapping):
        kept["annotations"] = {
            k: v for k, v in annotations.items() if k not in _DROPPED_ANNOTATIONS
        }
    out = _Slim({k: _shared(body[k]) for k in _TOP if k in body})
    out["metadata"] = kept
    return out


def _shared(value: Any) -> Any:
    """A copy whose keys and short strings are interned: every Release repeats the same
    keys (name, phase, reason, message, ...) and a few values (phases, reasons, environment
    names), and each event's JSON was parsed on its own. About 40% of a Release's copy at
    10,000 Releases (9.8 -> 6.0 KB each, measured with tracemalloc on a bench Release).

    What json.loads made is dicts, lists and strings exactly: those are told apart by
    their type, which is several times cheaper than isinstance against the abstract
    Mapping (issue 12: that check was most of this copy's cost in a warm restart's LIST).
    Anything else (a Mapping from elsewhere) takes the general path."""
    cls = type(value)
    if cls is str:
        return _intern(value) if len(value) <= _INTERNED else value
    if cls is dict:
        return {_intern(k if type(k) is str else str(k)): _shared(v) for k, v in value.items()}
    if cls is list:
        return [_shared(v) for v in value]
    if isinstance(value, Mapping):
        return {_intern(str(k)): _shared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared(v) for v in value]
    if isinstance(value, str) and len(value) <= _INTERNED:
        return _intern(str(value))  # a str subclass cannot be interned as it is
    return value


_intern = sys.intern
