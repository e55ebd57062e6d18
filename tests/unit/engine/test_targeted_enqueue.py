"""Which Releases one Environment event enqueues (issue 12): only those it can affect."""

from __future__ import annotations

import copy
from typing import Any, cast

from stella.engine.controller import affected_by_environment, downstream
from stella.engine.view import ClusterView


def env(name: str, requires: list[str] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "resourceVersion": "1"},
        "spec": {"requires": requires or [], "targets": [{"namespace": f"shop-{name}"}]},
        "status": status,
    }


def rel(name: str, envs: list[str], **phases: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": name},
        "spec": {"environments": envs},
        "status": {"environments": [{"name": e, "phase": p} for e, p in phases.items()]},
    }


def world() -> ClusterView:
    view = ClusterView()
    view.apply("Environment", None, env("dev"))
    view.apply("Environment", None, env("staging", ["dev"]))
    view.apply("Environment", None, env("prod", ["staging"]))
    view.apply("Environment", None, env("lab"))
    view.apply(
        "Release",
        None,
        rel("r1", ["dev", "staging", "prod"], dev="Deployed", staging="Deployed", prod="Deployed"),
    )
    view.apply(
        "Release",
        None,
        rel(
            "r2",
            ["dev", "staging", "prod"],
            dev="Deployed",
            staging="WaitingForApproval",
            prod="Pending",
        ),
    )
    view.apply("Release", None, rel("r3", ["dev", "staging"], dev="Pending"))
    view.apply("Release", None, rel("r4", ["lab"], lab="Pending"))
    return view


def event(view: ClusterView, new: dict[str, Any], kind: str | None = "MODIFIED") -> Any:
    before = view.environment(new["metadata"]["name"])
    view.apply("Environment", kind, new)
    return affected_by_environment(view, kind, before, new)


def stored(view: ClusterView, name: str) -> dict[str, Any]:
    """A copy of the view's Environment to edit (the view's bodies are dicts)."""
    return cast(dict[str, Any], copy.deepcopy(view.environments[name]))


def names(keys: list[tuple[str, str]]) -> list[str]:
    return sorted(k[1] for k in keys)


def test_the_engines_own_status_writes_enqueue_nothing_but_what_they_change() -> None:
    view = world()
    staging = stored(view, "staging")
    # Conditions and history: no decision reads them.
    staging["status"] = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "history": [{"release": "shop/r1"}],
    }
    envs, releases = event(view, staging)
    assert envs == ["staging"] and releases == []
    # currentRelease: the new current Release (and the old one) re-summarise who is Live.
    staging = copy.deepcopy(staging)
    staging["status"]["currentRelease"] = "shop/r1"
    envs, releases = event(view, staging)
    assert envs == ["staging"] and names(releases) == ["r1"]
    moved = copy.deepcopy(staging)
    moved["status"]["currentRelease"] = "shop/r2"
    assert names(event(view, moved)[1]) == ["r1", "r2"]
    staging = moved
    # The lock taken: the Releases not finished in staging, and the holder.
    locked = copy.deepcopy(staging)
    locked["status"]["inFlight"] = "shop/r2"
    envs, releases = event(view, locked)
    assert envs == ["staging"] and names(releases) == ["r2", "r3"]
    # A halt: the same set; r1 (finished in staging) is never among them.
    halted = copy.deepcopy(locked)
    halted["status"]["halted"] = {"reason": "DigestMismatch"}
    assert names(event(view, halted)[1]) == ["r2", "r3"]


def test_a_finished_holder_is_enqueued_to_free_the_lock() -> None:
    view = world()
    prod = stored(view, "prod")
    prod["status"] = {"inFlight": "shop/r1"}
    assert names(event(view, prod)[1]) == ["r1", "r2"]


def test_a_spec_change_enqueues_the_unfinished_releases_there() -> None:
    view = world()
    prod = stored(view, "prod")
    prod["spec"]["approvals"] = {"required": 2}
    envs, releases = event(view, prod)
    assert envs == ["prod"] and names(releases) == ["r2"]


def test_a_requires_change_enqueues_every_release_downstream() -> None:
    view = world()
    staging = stored(view, "staging")
    staging["spec"]["requires"] = ["lab"]
    envs, releases = event(view, staging)
    assert envs == ["dev", "lab", "prod", "staging"]
    # staging and prod (which requires staging): every Release targeting them, finished or not.
    assert names(releases) == ["r1", "r2", "r3"]


def test_an_environment_added_or_deleted_is_a_path_change() -> None:
    view = world()
    assert names(event(view, env("qa", ["dev"]), "ADDED")[1]) == []
    view.apply("Release", None, rel("r5", ["dev", "qa"]))
    assert names(event(view, env("qa", ["dev"]), "ADDED")[1]) == ["r5"]
    envs, releases = event(view, cast(dict[str, Any], view.environments["dev"]), "DELETED")
    assert "dev" not in view.environments and "dev" in envs
    assert names(releases) == ["r1", "r2", "r3", "r5"]


def test_downstream_follows_requires_transitively() -> None:
    graph = {"dev": [], "staging": ["dev"], "prod": ["staging"], "lab": [], "qa": ["dev", "lab"]}
    assert downstream(graph, "dev") == {"staging", "prod", "qa"}
    assert downstream(graph, "prod") == set()
    assert downstream({"a": ["b"], "b": ["a"]}, "a") == {"b"}


def test_a_release_event_the_view_already_holds_is_an_echo() -> None:
    """The watch's echo of the engine's own status write (the view took the write's
    answer) is not reconciled again (issue 12); anything newer, or unknown, is."""
    from stella.engine.controller import is_echo

    def at(rv: str) -> dict[str, Any]:
        return {"metadata": {"name": "r1", "namespace": "shop", "resourceVersion": rv}}

    assert is_echo(at("7"), at("7"))
    assert is_echo(at("8"), at("7"))  # an older version arriving late
    assert not is_echo(at("7"), at("8"))
    assert not is_echo(None, at("7"))
    assert not is_echo(at("7"), at(""))  # no version: never assume it is known
