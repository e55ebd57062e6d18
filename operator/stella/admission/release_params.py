"""The parameter object of the release-create ValidatingAdmissionPolicy: what a Release
CREATE is judged by inside the API server (CEL, no webhook), computed from admission's
view and written by the operator (stella/handlers/release_params.py) into the ConfigMap
`stella-release-params` in its own namespace.

A policy cannot read Environments or count Releases, so the operator publishes what the
rules need, as flat strings (a ConfigMap's data; the API server converts the parameter for
every request, so it stays small: a few keys per Environment, never one per Release):

  registries.<env>  every Environment stored valid: its allowedRegistries, normalized as
                    admission compares them (lower case, Docker Hub's aliases as docker.io),
                    one a line between newlines ("\\nregistry.example.com\\n"); "" = any
                    registry. The key's presence says the Environment exists.
  namespaces.<env>  when its releaseNamespaces selects: one requirement a line,
                    `In <key> |v1|v2|`, `NotIn ...`, `Exists <key> |`, `DoesNotExist <key> |`
                    (matchLabels as In); label keys and values hold no space nor `|`.
  invalid.<env>     an Environment stored with an invalid spec: why (fail closed).
  full              T10: the namespaces holding `quota` or more unfinished Releases, one a
                    line between newlines.
  loops             T10: `<namespace> <loop key>` a line between newlines, for every Release
                    spec created `loopThreshold` times or more in that namespace within the
                    window (deleted ones count: a loop that deletes what it made is a loop).
  quota, loopThreshold, loopWindow   the settings, for the messages.

The loop key (loop_key) is written the same way by the policy's CEL
(charts/stella/files/admission-policies.yaml; an integration test proves they agree).
Everything here can be a moment stale (an Environment created or changed since): the
engine checks again at promotion what it acts on (releaseNamespaces, allowedRegistries and
the Environment's existence, engine/reconcile.py and engine/gates.py).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from stella.admission._util import environment_spec, mapping, metadata, spec_of
from stella.admission.base import Body, ReleaseKey, Snapshot
from stella.admission.index import SyncedIndex, _index_for
from stella.admission.quotas import pending_index
from stella.models.common import LabelSelector, parse_time
from stella.registry.reference import registry_hosts

PARAMS_NAME = "stella-release-params"


def lines(values: Iterable[str]) -> str:
    """Values one a line between newlines, so `contains('\\n' + v + '\\n')` is exact."""
    items = list(values)
    return "\n" + "\n".join(items) + "\n" if items else ""


def selector_lines(selector: LabelSelector) -> str:
    """A label selector as the requirement lines the policy's CEL reads."""
    out = [f"In {k} |{v}|" for k, v in sorted(selector.match_labels.items())]
    for req in selector.match_expressions:
        out.append(f"{req.operator} {req.key} |{'|'.join(req.values)}{'|' if req.values else ''}")
    return "".join(line + "\n" for line in out)


def loop_key(spec: object) -> str:
    """What makes two Releases "the same" for loop detection: version, environments and
    components (name=image), exactly as the policy's CEL writes it."""
    s = mapping(spec)
    envs = s.get("environments")
    comps = s.get("components")
    env_part = ",".join(str(e) for e in envs) if isinstance(envs, list) else ""
    comp_part = (
        ",".join(f"{mapping(c).get('name', '')}={mapping(c).get('image', '')}" for c in comps)
        if isinstance(comps, list)
        else ""
    )
    return f"{s.get('version', '')}|{env_part}|{comp_part}"


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class _Repeated:
    """A spec created more than once in the window: its text (what is published) and the
    creation time of each Release that made it, by the digest of its uid."""

    __slots__ = ("key", "namespace", "times")

    def __init__(self, namespace: str, key: str, times: dict[bytes, float]) -> None:
        self.namespace, self.key, self.times = namespace, key, times


# One spec created once: (digest of its Release's uid, creation time, and "<namespace>
# <loop key>" only when kept from the first create).
_Once = tuple[bytes, float, str | None]


class LoopIndex(SyncedIndex[ReleaseKey, None]):
    """(namespace, loop key) -> the creation time of every Release that made it, deleted
    ones included, until they leave the window (looping() forgets them).

    Held for the whole window for every Release created (T10: 200 creates/s asked, some 50
    a second admitted, for a 600-second window: ~30,000 entries), so it is kept small: keys
    are 16-byte digests, and a spec created once — nearly all of them — is one tuple without
    its text, which is kept from its second create on (only a repeated spec can reach a
    threshold of 2 or more; `keep_text` keeps it from the first, for a threshold of 1).
    ~220 bytes a create (measured with tracemalloc), against ~470 with the texts and a
    dict per spec."""

    def __init__(self, keep_text: bool = False) -> None:
        super().__init__()
        self._created: dict[bytes, _Once | _Repeated] = {}
        self._keep_text = keep_text
        self._guard = threading.Lock()

    def _add(self, key: ReleaseKey, body: Body) -> None:
        meta = metadata(body)
        when = parse_time(meta.get("creationTimestamp"))
        if when is None:
            return
        text = loop_key(spec_of(body))
        named = f"{key[0]} {text}"  # a namespace name holds no space
        pair = _digest(named)
        uid = _digest(str(meta.get("uid") or f"{key[0]}/{key[1]}"))
        at = when.timestamp()
        with self._guard:
            held = self._created.get(pair)
            if held is None:
                self._created[pair] = (uid, at, named if self._keep_text else None)
            elif isinstance(held, _Repeated):
                held.times[uid] = at
            elif held[0] != uid:  # the same Release again (a later version of it) is no create
                self._created[pair] = _Repeated(key[0], text, {held[0]: held[1], uid: at})

    def _drop(self, key: ReleaseKey, payload: None) -> None:
        return None  # a deleted Release still counts until it leaves the window

    def looping(self, now: float, threshold: int, window: float) -> list[tuple[str, str]]:
        """The (namespace, key) pairs created `threshold` times or more within `window`."""
        out: list[tuple[str, str]] = []
        oldest = now - window
        with self._guard:
            for pair, held in list(self._created.items()):
                if isinstance(held, tuple):
                    if held[1] <= oldest:
                        del self._created[pair]
                    elif threshold <= 1 and held[2] is not None:
                        ns, _, text = held[2].partition(" ")
                        out.append((ns, text))
                    continue
                for uid in [u for u, t in held.times.items() if t <= oldest]:
                    del held.times[uid]
                if not held.times:
                    del self._created[pair]
                elif len(held.times) >= threshold:
                    out.append((held.namespace, held.key))
        return sorted(out)


def loop_index(snap: Snapshot, threshold: int = 2) -> LoopIndex:
    keep_text = threshold <= 1  # a setting: one index per value, built from the view
    index = _index_for(
        "loops-text" if keep_text else "loops",
        snap.releases,
        getattr(snap, "revision", None),
        lambda: LoopIndex(keep_text=keep_text),
    )
    assert isinstance(index, LoopIndex)
    return index


def release_params(
    snap: Snapshot, *, quota: int, loop_threshold: int, loop_window: float, now: float
) -> dict[str, str]:
    """The ConfigMap data for a synced snapshot (see the module's docstring)."""
    data: dict[str, str] = {
        "quota": str(quota),
        "loopThreshold": str(loop_threshold),
        "loopWindow": f"{loop_window:.0f}",
    }
    for name in sorted(snap.environments):
        found = environment_spec(snap, name)
        if found is None:
            continue
        if isinstance(found, str):
            data[f"invalid.{name}"] = found
            continue
        data[f"registries.{name}"] = lines(sorted(registry_hosts(found.allowed_registries)))
        if found.release_namespaces is not None:
            selected = selector_lines(found.release_namespaces)
            if selected:
                data[f"namespaces.{name}"] = selected
    full = pending_index(snap).at_least(quota)
    if full:
        data["full"] = lines(full)
    looping = loop_index(snap, loop_threshold).looping(now, loop_threshold, loop_window)
    if looping:
        data["loops"] = lines(f"{ns} {key}" for ns, key in looping)
    return data


def configmap(namespace: str, data: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": PARAMS_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "stella"},
        },
        "data": dict(data),
    }
