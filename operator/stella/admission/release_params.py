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
import heapq
import threading
from array import array
from collections.abc import Iterable, Mapping
from typing import Any

from stella.admission._util import environment_spec, mapping, metadata, spec_of
from stella.admission.base import Body, ReleaseKey, Snapshot
from stella.admission.count_table import CountTable
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


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


class LoopIndex(SyncedIndex[ReleaseKey, None]):
    """(namespace, loop key) -> how many Releases made it within the window, deleted ones
    included, until they leave it (looping() forgets them).

    Held for the whole window for every Release created (T10: 200 creates/s asked, some 50
    to 80 a second admitted, for a 600-second window: 30,000 to 50,000 entries), so nothing
    per create is a Python object: a create is two 64-bit digests (of "<namespace> <loop
    key>" and of the Release's uid) appended to the array of its creation second, and two
    counts in flat tables (count_table.py): ~75 bytes a create with the tables' spare slots
    (tracemalloc, 30,000 creates). The text of a spec is kept
    only from its second create on (only a repeated spec can reach a threshold of 2 or more;
    `keep_text` keeps it from the first, for a threshold of 1). The window is exact: the
    API server's creationTimestamp has whole seconds, and a second's creates leave together.
    """

    def __init__(self, keep_text: bool = False) -> None:
        super().__init__()
        self._keep_text = keep_text
        self._counts = CountTable()  # digest of "<namespace> <loop key>" -> creates
        self._uids = CountTable()  # digest of each counted Release's uid -> 1
        self._seconds: dict[float, array[int]] = {}  # creation time -> (pair, uid) digests
        self._order: list[float] = []  # heap of the keys of _seconds
        self._texts: dict[int, str] = {}  # "<namespace> <loop key>" of the repeated pairs
        self._cutoff = float("-inf")  # creates at or before it have left the window
        self._guard = threading.Lock()

    def _replace(self, key: ReleaseKey, body: Body) -> None:
        # A later version of the same Release (each status write, a relist) is no create:
        # skip re-reading it by its uid, before any digest is made.
        hit = self._seen.get(key)
        if hit is not None and hit[0] is not body:
            uid = metadata(body).get("uid")
            if uid and uid == metadata(hit[0]).get("uid"):
                self._seen[key] = (body, None)
                return
        super()._replace(key, body)

    def _add(self, key: ReleaseKey, body: Body) -> None:
        meta = metadata(body)
        when = parse_time(meta.get("creationTimestamp"))
        if when is None:
            return
        at = when.timestamp()
        text = loop_key(spec_of(body))
        named = f"{key[0]} {text}"  # a namespace name holds no space
        pair = _digest(named)
        uid = _digest(str(meta.get("uid") or f"{key[0]}/{key[1]}"))
        with self._guard:
            if at <= self._cutoff or self._uids.get(uid):
                return  # already out of the window, or this Release is counted
            self._uids.add(uid)
            held = self._seconds.get(at)
            if held is None:
                held = self._seconds[at] = array("Q")
                heapq.heappush(self._order, at)
            held.extend((pair, uid))
            if self._counts.add(pair) >= 2 or self._keep_text:
                self._texts.setdefault(pair, named)

    def _drop(self, key: ReleaseKey, payload: None) -> None:
        return None  # a deleted Release still counts until it leaves the window

    def _expire(self, oldest: float) -> None:
        self._cutoff = max(self._cutoff, oldest)
        while self._order and self._order[0] <= self._cutoff:
            held = self._seconds.pop(heapq.heappop(self._order))
            for i in range(0, len(held), 2):
                pair = held[i]
                left = self._counts.remove(pair)
                if left == 0 or (left == 1 and not self._keep_text):
                    self._texts.pop(pair, None)
                self._uids.remove(held[i + 1])

    def looping(self, now: float, threshold: int, window: float) -> list[tuple[str, str]]:
        """The (namespace, key) pairs created `threshold` times or more within `window`."""
        out: list[tuple[str, str]] = []
        with self._guard:
            self._expire(now - window)
            for pair, named in self._texts.items():
                if self._counts.get(pair) >= max(threshold, 1):
                    ns, _, text = named.partition(" ")
                    out.append((ns, text))
        return sorted(out)

    def __len__(self) -> int:
        """The creates held (in the window, as of the last looping())."""
        return len(self._uids)


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
