from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stella.policy.path import (
    CycleError,
    MissingPrerequisiteError,
    PathError,
    UnknownEnvironmentError,
    check_graph,
    environment_path,
    find_cycle,
    path_for,
    topological_order,
)

SHOP = {
    "dev": [],
    "qa": ["dev"],
    "staging": ["dev"],
    "prod": ["staging", "qa"],
    "prod-eu": ["staging"],
}


@pytest.mark.parametrize(
    ("envs", "expected"),
    [
        (["prod", "staging", "dev", "qa"], ["dev", "qa", "staging", "prod"]),
        (["dev"], ["dev"]),
        (["prod-eu", "staging", "dev"], ["dev", "staging", "prod-eu"]),
        (["dev", "staging", "prod-eu", "qa", "prod"], ["dev", "qa", "staging", "prod", "prod-eu"]),
        (["qa", "dev", "qa"], ["dev", "qa"]),
    ],
)
def test_path_for(envs: list[str], expected: list[str]) -> None:
    assert path_for(envs, SHOP) == expected


@pytest.mark.parametrize(
    ("envs", "graph", "error", "reason", "message"),
    [
        (
            ["dev", "stagin"],
            SHOP,
            UnknownEnvironmentError,
            "UnknownEnvironment",
            "unknown environment 'stagin' (targeted by this release): create the Environment "
            "or fix the name",
        ),
        (
            ["dev", "prod"],
            {"dev": [], "prod": ["dev", "stagng"]},
            UnknownEnvironmentError,
            "UnknownEnvironment",
            "unknown environment 'stagng' (required by prod): create the Environment or fix "
            "the name",
        ),
        (
            ["a", "b"],
            {"a": ["c"], "b": ["a"], "c": ["b"]},
            CycleError,
            "RequiresCycle",
            "environments require each other in a cycle: a -> c -> b -> a; remove one of "
            "these requires",
        ),
        (
            ["a"],
            {"a": ["a"]},
            CycleError,
            "RequiresCycle",
            "environments require each other in a cycle: a -> a; remove one of these requires",
        ),
        (
            ["dev", "prod"],
            SHOP,
            MissingPrerequisiteError,
            "MissingPrerequisite",
            "prod requires qa, staging, which this release does not target: add qa, staging "
            "to spec.environments",
        ),
    ],
)
def test_path_errors(
    envs: list[str], graph: dict[str, list[str]], error: type[PathError], reason: str, message: str
) -> None:
    with pytest.raises(error) as err:
        path_for(envs, graph)
    assert err.value.reason == reason
    assert str(err.value) == message


def test_check_graph_reports_everything() -> None:
    graph = {**SHOP, "x": ["y"], "y": ["x"], "z": ["x"], "w": ["nope"]}
    report = check_graph(graph)
    assert not report.ok
    assert report.cycles == (("x", "y", "x"),)
    assert dict(report.unknown) == {"nope": ("w",)}
    assert report.order == ("dev", "qa", "staging", "prod", "prod-eu", "w")
    assert check_graph(SHOP).ok


def test_environment_path() -> None:
    assert environment_path("prod", SHOP) == ["dev", "qa", "staging", "prod"]
    with pytest.raises(UnknownEnvironmentError):
        environment_path("nowhere", SHOP)


# --- properties ----------------------------------------------------------------------------

NAMES = ["dev", "qa", "uat", "staging", "perf", "prod", "prod-eu", "prod-us"]


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """Acyclic by construction: a node may only require nodes earlier in a random ranking."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, unique=True))
    ranking = draw(st.permutations(names))
    graph: dict[str, list[str]] = {}
    for i, n in enumerate(ranking):
        graph[n] = draw(st.lists(st.sampled_from(ranking[:i]), unique=True)) if i else []
    return graph


@settings(max_examples=300, deadline=None)
@given(dags())
def test_topological_order_respects_every_edge_and_is_stable(graph: dict[str, list[str]]) -> None:
    order = topological_order(graph)
    assert sorted(order) == sorted(graph)
    position = {n: i for i, n in enumerate(order)}
    for n, reqs in graph.items():
        for r in reqs:
            assert position[r] < position[n]
    # stable by name: at every step the smallest name whose requirements are placed
    placed: set[str] = set()
    for n in order:
        ready = sorted(m for m in graph if m not in placed and set(graph[m]) <= placed)
        assert n == ready[0]
        placed.add(n)
    assert check_graph(graph).ok
    # a release targeting the whole graph gets exactly this order
    assert path_for(list(reversed(order)), graph) == order


@settings(max_examples=300, deadline=None)
@given(dags(), st.data())
def test_any_back_edge_makes_a_reported_cycle(
    graph: dict[str, list[str]], data: st.DataObject
) -> None:
    order = topological_order(graph)
    if len(order) < 2 or not any(graph.values()):
        return
    # add an edge from a required node back to something that (transitively) requires it
    child = data.draw(st.sampled_from([n for n in order if graph[n]]))
    parent = data.draw(st.sampled_from(graph[child]))
    cyclic = {**graph, parent: [*graph[parent], child]}
    cycle = find_cycle(cyclic)
    assert cycle is not None and cycle[0] == cycle[-1]
    for a, b in itertools.pairwise(cycle):
        assert b in cyclic[a]
    with pytest.raises(CycleError) as err:
        path_for(list(cyclic), cyclic)
    for a, b in zip(err.value.cycle, err.value.cycle[1:], strict=False):
        assert b in cyclic[a]
    assert check_graph(cyclic).cycles
