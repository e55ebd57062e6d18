"""One informer for admission's view and the engine's: the primary first, every subscriber
after it, a late subscriber handed what was listed so far — none missed, none twice."""

from __future__ import annotations

import threading
from typing import Any

from stella.engine.projection import slim
from stella.engine.view import ClusterView
from stella.k8s.fanout import Fanout


def _release(name: str, version: int) -> dict[str, Any]:
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Release",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}",
            "resourceVersion": str(version),
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {"version": "1.0.0", "environments": ["dev"], "components": []},
    }


def _environment(name: str, version: int) -> dict[str, Any]:
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": str(version)},
        "spec": {"requires": []},
        "status": {"inFlight": ""},
    }


def test_the_primary_and_every_subscriber_get_each_list_and_event() -> None:
    primary, engine = ClusterView(project=slim), ClusterView(project=slim)
    shared = Fanout(primary, slim)
    shared.subscribe(engine)
    shared.replace("Release", iter([_release("a", 1), _release("b", 2)]))
    shared.replace("Environment", iter([_environment("dev", 3)]))
    shared.apply("Release", "ADDED", _release("c", 4))
    shared.apply("Release", "DELETED", _release("a", 5))
    for view in (primary, engine):
        assert sorted(view.releases) == [("shop", "b"), ("shop", "c")]
        assert "managedFields" not in view.releases["shop", "b"]["metadata"]
    # One slim copy per Release version in the process; Environments, which the engine's
    # lock edits through its view, are each view's own.
    assert primary.releases["shop", "c"] is engine.releases["shop", "c"]
    assert primary.environments["dev"] == engine.environments["dev"]
    assert primary.environments["dev"] is not engine.environments["dev"]
    engine.environments["dev"]["status"]["inFlight"] = "shop/c"
    assert primary.environments["dev"]["status"]["inFlight"] == ""


def test_a_late_subscriber_gets_what_was_listed_then_the_events() -> None:
    primary, engine = ClusterView(project=slim), ClusterView(project=slim)
    shared = Fanout(primary, slim)
    shared.replace("Release", iter([_release("a", 1)]))
    shared.apply("Release", "ADDED", _release("b", 2))
    shared.synced = True
    assert primary.synced and shared.synced
    shared.subscribe(engine)  # the engine, once this replica holds the Lease
    assert sorted(engine.releases) == [("shop", "a"), ("shop", "b")]
    assert shared.listed() == {"Release"}
    assert not engine.environments  # not listed yet: it comes with its LIST
    shared.replace("Environment", iter([_environment("dev", 3)]))
    shared.apply("Release", "ADDED", _release("c", 4))
    assert sorted(engine.releases) == [("shop", "a"), ("shop", "b"), ("shop", "c")]
    assert "dev" in engine.environments
    shared.unsubscribe(engine)  # the engine stopped: nothing more reaches its view
    shared.apply("Release", "ADDED", _release("d", 5))
    assert ("shop", "d") in primary.releases and ("shop", "d") not in engine.releases


class Recorder:
    """A subscriber that keeps every call, to count what it was handed."""

    synced = False

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str]] = []

    def apply(self, kind: str, event_type: str | None, body: Any) -> None:
        self.calls.append((kind, event_type, body["metadata"]["name"]))

    def replace(self, kind: str, items: Any) -> None:
        self.calls.extend((kind, "LISTED", b["metadata"]["name"]) for b in items)


def test_subscribing_while_events_arrive_misses_none_and_repeats_none() -> None:
    primary = ClusterView(project=slim)
    shared = Fanout(primary, slim)
    shared.replace("Release", iter([]))
    late = Recorder()
    started = threading.Event()

    def events() -> None:
        for i in range(2000):
            if i == 50:
                started.set()
            shared.apply("Release", "ADDED", _release(f"r{i}", i + 1))

    writer = threading.Thread(target=events)
    writer.start()
    started.wait()
    shared.subscribe(late)
    writer.join()
    names = [name for _, _, name in late.calls]
    assert len(names) == len(set(names)) == 2000  # each once: from the snapshot or live
    listed = [name for _, how, name in late.calls if how == "LISTED"]
    live = [name for _, how, name in late.calls if how == "ADDED"]
    assert listed and live  # it did subscribe mid-stream
    assert live == [f"r{i}" for i in range(len(listed), 2000)]  # in order, after them
