"""The promotion path: Environments ordered by `requires`.

An Environment's `requires` names the Environments a Release must have reached (been
Deployed to) first. The path is the topological order of that graph, ties broken by
name so the order is stable. A cycle or a name that does not exist is an error, reported
with the names involved.

`graph` arguments map every existing Environment's name to its `requires`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

Graph = Mapping[str, Sequence[str]]


class PathError(ValueError):
    """A promotion path that cannot be used; `reason` is a condition reason."""

    reason = "InvalidPath"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownEnvironmentError(PathError):
    reason = "UnknownEnvironment"

    def __init__(self, missing: Mapping[str, Sequence[str]]) -> None:
        # missing: unknown name -> who names it ("" for the Release itself)
        self.missing = {name: tuple(sorted(by)) for name, by in sorted(missing.items())}
        parts = []
        for name, by in self.missing.items():
            named = [b for b in by if b]
            where = f"required by {', '.join(named)}" if named else "targeted by this release"
            if named and "" in by:
                where = f"targeted by this release and required by {', '.join(named)}"
            parts.append(f"{name!r} ({where})")
        super().__init__(
            f"unknown environment {'; '.join(parts)}: create the Environment or fix the name"
        )


class CycleError(PathError):
    reason = "RequiresCycle"

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = tuple(cycle)  # first name repeated at the end: a -> b -> a
        super().__init__(
            f"environments require each other in a cycle: {' -> '.join(self.cycle)}; "
            "remove one of these requires"
        )


class MissingPrerequisiteError(PathError):
    reason = "MissingPrerequisite"

    def __init__(self, missing: Mapping[str, Sequence[str]]) -> None:
        # missing: targeted environment -> its prerequisites this release does not target
        self.missing = {env: tuple(sorted(req)) for env, req in sorted(missing.items())}
        parts = [f"{env} requires {', '.join(req)}" for env, req in self.missing.items()]
        needed = sorted({r for req in self.missing.values() for r in req})
        super().__init__(
            f"{'; '.join(parts)}, which this release does not target: "
            f"add {', '.join(needed)} to spec.environments"
        )


@dataclass(frozen=True, slots=True)
class GraphReport:
    """What is wrong with the whole graph (for Environment status)."""

    order: tuple[str, ...]  # every environment not on a cycle, in path order
    unknown: Mapping[str, tuple[str, ...]]  # unknown name -> environments requiring it
    cycles: tuple[tuple[str, ...], ...]

    @property
    def ok(self) -> bool:
        return not self.unknown and not self.cycles


def topological_order(graph: Graph, names: Iterable[str] | None = None) -> list[str]:
    """`names` (default: all of graph) in path order; requires outside `names` are ignored.

    Raises CycleError if `names` contain a cycle. Unknown names are not checked here.
    """
    nodes = sorted(set(graph if names is None else names))
    node_set = set(nodes)
    indegree = {n: 0 for n in nodes}
    dependents: dict[str, list[str]] = {n: [] for n in nodes}
    for n in nodes:
        for req in set(graph.get(n, ())):
            if req in node_set and req != n:
                indegree[n] += 1
                dependents[req].append(n)
            elif req == n:
                raise CycleError([n, n])
    ready = [n for n in nodes if indegree[n] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        n = heapq.heappop(ready)
        order.append(n)
        for d in dependents[n]:
            indegree[d] -= 1
            if indegree[d] == 0:
                heapq.heappush(ready, d)
    if len(order) != len(nodes):
        rest = {n: [r for r in graph.get(n, ()) if r in node_set] for n in nodes if n not in order}
        cycle = find_cycle(rest)
        raise CycleError(cycle if cycle is not None else sorted(rest))
    return order


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle (first name repeated at the end), searched from names in sorted order."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in sorted(graph):
        if state.get(root):
            continue
        stack: list[tuple[str, list[str]]] = [(root, sorted(set(graph.get(root, ()))))]
        trail = [root]
        state[root] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                trail.pop()
                state[node] = 2
                continue
            nxt = todo.pop(0)
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return [*trail[trail.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                trail.append(nxt)
                stack.append((nxt, sorted(set(graph.get(nxt, ())))))
    return None


def unknown_names(graph: Graph, names: Iterable[str] = ()) -> dict[str, list[str]]:
    """Unknown name -> who names it: environments in `graph`, "" for `names` themselves."""
    missing: dict[str, list[str]] = {}
    for n in names:
        if n not in graph:
            missing.setdefault(n, []).append("")
    for env, reqs in graph.items():
        for r in reqs:
            if r not in graph:
                missing.setdefault(r, []).append(env)
    return missing


def check_graph(graph: Graph) -> GraphReport:
    """Everything wrong with the graph at once: unknown names, every cycle, a usable order."""
    unknown = {k: tuple(sorted(v)) for k, v in sorted(unknown_names(graph).items())}
    known = {n: [r for r in reqs if r in graph] for n, reqs in graph.items()}
    cycles: list[tuple[str, ...]] = []
    on_cycle: set[str] = set()
    for comp in _strongly_connected(known):
        if len(comp) > 1 or any(n in known[n] for n in comp):
            sub = {n: [r for r in known[n] if r in comp] for n in comp}
            cycle = find_cycle(sub)
            cycles.append(tuple(cycle if cycle is not None else sorted(comp)))
            on_cycle.update(comp)
    # Environments that depend on a cycle have no place in the order either.
    blocked = _dependents_closure(known, on_cycle)
    order = topological_order(known, [n for n in known if n not in blocked])
    return GraphReport(order=tuple(order), unknown=unknown, cycles=tuple(sorted(cycles)))


def closure(graph: Graph, names: Iterable[str]) -> set[str]:
    """`names` and everything they require, transitively (unknown names included)."""
    out: set[str] = set()
    todo = list(names)
    while todo:
        n = todo.pop()
        if n in out:
            continue
        out.add(n)
        todo.extend(graph.get(n, ()))
    return out


def environment_path(name: str, graph: Graph) -> list[str]:
    """The path up to and including `name` (for EnvironmentStatus.path). Raises PathError."""
    needed = closure(graph, [name])
    missing = unknown_names({n: graph[n] for n in needed if n in graph}, [name])
    if missing:
        raise UnknownEnvironmentError(missing)
    return topological_order(graph, needed)


def path_for(release_envs: Sequence[str], graph: Graph) -> list[str]:
    """A Release's environments in path order.

    Raises UnknownEnvironmentError (a targeted or required name does not exist),
    CycleError (the environments involved require each other in a cycle) or
    MissingPrerequisiteError (a targeted environment requires one the Release does not
    target, so it could never get there).
    """
    targeted = list(dict.fromkeys(release_envs))
    needed = closure(graph, targeted)
    relevant = {n: graph[n] for n in needed if n in graph}
    missing_names = unknown_names(relevant, targeted)
    if missing_names:
        raise UnknownEnvironmentError(missing_names)
    cycle = find_cycle(relevant)
    if cycle is not None:
        raise CycleError(cycle)
    target_set = set(targeted)
    not_targeted = {
        env: [r for r in graph[env] if r not in target_set]
        for env in targeted
        if any(r not in target_set for r in graph[env])
    }
    if not_targeted:
        raise MissingPrerequisiteError(not_targeted)
    return topological_order(graph, targeted)


def _strongly_connected(graph: Mapping[str, Sequence[str]]) -> list[set[str]]:
    """Strongly connected components by mutual reachability (paths are small graphs)."""
    reach = {n: closure(graph, graph[n]) for n in graph}
    comps: list[set[str]] = []
    assigned: set[str] = set()
    for n in sorted(graph):
        if n in assigned:
            continue
        comp = {n} | {m for m in reach[n] if m in graph and n in reach[m]}
        assigned |= comp
        comps.append(comp)
    return comps


def _dependents_closure(graph: Graph, roots: set[str]) -> set[str]:
    out = set(roots)
    changed = True
    while changed:
        changed = False
        for n, reqs in graph.items():
            if n not in out and any(r in out for r in reqs):
                out.add(n)
                changed = True
    return out
