"""The view's indexes (issue 12) answer exactly what a scan of its mappings answers, after
any sequence of watch events, direct assignments and deletions."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stella.engine.view import ClusterView, ReleaseKey, release_order

NAMESPACES = ("shop", "blog")
ENVS = ("dev", "staging", "prod")


def release(
    ns: str, name: str, envs: list[str], created: str, rv: int, deleting: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": ns,
        "creationTimestamp": created,
        "resourceVersion": str(rv),
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-11-30T00:00:00Z"
    return {"metadata": meta, "spec": {"environments": envs}}


def approval(ns: str, name: str, rel: str, env: str, rv: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv)},
        "spec": {"release": rel, "environment": env, "decision": "Approve"},
    }


def action(name: str, env: str, kind: str, created: str, rv: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created, "resourceVersion": str(rv)},
        "spec": {"action": kind, "environment": env},
    }


# ---- what a scan answers (the view's answers before issue 12) ------------------------------
def scan_targeting(view: ClusterView, env: str) -> set[ReleaseKey]:
    return {k for k, b in view.releases.items() if env in b["spec"]["environments"]}


def scan_approvals(view: ClusterView, key: ReleaseKey, env: str) -> list[Any]:
    return [
        b
        for (ns, _), b in view.approvals.items()
        if ns == key[0] and b["spec"]["release"] == key[1] and b["spec"]["environment"] == env
    ]


def scan_newest(view: ClusterView, ns: str, env: str) -> ReleaseKey | None:
    live = [
        (release_order(b), k)
        for k, b in view.releases.items()
        if k[0] == ns
        and env in b["spec"]["environments"]
        and not b["metadata"].get("deletionTimestamp")
    ]
    return max(live)[1] if live else None


def scan_actions(view: ClusterView, env: str, arrived: dict[str, int], *types: str) -> list[Any]:
    """Oldest first: creationTimestamp, then the order they arrived on this Environment
    (the watch's order, which is etcd's) — never by name."""
    found = [
        b
        for b in view.actions.values()
        if b["spec"]["environment"] == env and (not types or b["spec"]["action"] in types)
    ]
    return sorted(
        found, key=lambda b: (b["metadata"]["creationTimestamp"], arrived[b["metadata"]["name"]])
    )


def check(view: ClusterView, arrived: dict[str, int] | None = None) -> None:
    arrived = arrived or {}
    for env in ENVS:
        assert set(view.releases_targeting(env)) == scan_targeting(view, env)
        assert scan_actions(view, env, arrived) == view.actions_for(env)
        assert scan_actions(view, env, arrived, "Promote") == view.actions_for(env, "Promote")
        for ns in NAMESPACES:
            assert view.newest_release(ns, env) == scan_newest(view, ns, env)
            assert set(view.releases_in(ns, env)) == {
                k for k in scan_targeting(view, env) if k[0] == ns
            }
            for name in ("r0", "r1", "r2", "r3"):
                got = view.approvals_for((ns, name), env)
                want = scan_approvals(view, (ns, name), env)
                assert sorted(map(id, got)) == sorted(map(id, want))


op = st.one_of(
    st.tuples(
        st.just("release"),
        st.sampled_from(NAMESPACES),
        st.sampled_from(("r0", "r1", "r2", "r3")),
        st.lists(st.sampled_from(ENVS), max_size=3),
        st.sampled_from(("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z")),
        st.booleans(),
        st.sampled_from(("apply", "assign", "delete")),
    ),
    st.tuples(
        st.just("approval"),
        st.sampled_from(NAMESPACES),
        st.sampled_from(("a0", "a1", "a2")),
        st.sampled_from(("r0", "r1", "r2", "r3")),
        st.sampled_from(ENVS),
        st.sampled_from(("apply", "assign", "delete")),
    ),
    st.tuples(
        st.just("action"),
        st.sampled_from(("x0", "x1", "x2")),
        st.sampled_from(ENVS),
        st.sampled_from(("Promote", "Suspend")),
        st.sampled_from(("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")),
        st.sampled_from(("apply", "delete")),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(op, max_size=40))
def test_indexes_answer_what_a_scan_answers(ops: list[tuple[Any, ...]]) -> None:
    view = ClusterView()
    arrived: dict[str, int] = {}  # action name -> when it arrived on its current Environment
    for rv, o in enumerate(ops, start=1):
        how = o[-1]
        if o[0] == "release":
            _, ns, name, envs, created, deleting, _ = o
            body = release(ns, name, envs, created, rv, deleting)
            if how == "assign":
                view.releases[(ns, name)] = body
            else:
                view.apply("Release", "DELETED" if how == "delete" else "MODIFIED", body)
        elif o[0] == "approval":
            _, ns, name, rel, env, _ = o
            body = approval(ns, name, rel, env, rv)
            if how == "assign":
                view.approvals[(ns, name)] = body
            else:
                view.apply("Approval", "DELETED" if how == "delete" else "ADDED", body)
        else:
            _, name, env, kind, created, _ = o
            body = action(name, env, kind, created, rv)
            old = view.actions.get(name)
            if how == "delete":
                arrived.pop(name, None)
            elif old is None or old["spec"]["environment"] != env:
                arrived[name] = rv
            view.apply("Action", "DELETED" if how == "delete" else "ADDED", body)
        check(view, arrived)


def test_a_status_write_keeps_the_newest_and_a_deletion_moves_it() -> None:
    view = ClusterView()
    view.apply("Release", None, release("shop", "old", ["dev"], "2026-01-01T00:00:00Z", 1))
    view.apply("Release", None, release("shop", "new", ["dev"], "2026-01-02T00:00:00Z", 2))
    assert view.newest_release("shop", "dev") == ("shop", "new")
    written = release("shop", "new", ["dev"], "2026-01-02T00:00:00Z", 3)
    written["status"] = {"environments": [{"name": "dev", "phase": "Deployed"}]}
    view.apply("Release", "MODIFIED", written)
    assert view.newest_release("shop", "dev") == ("shop", "new")
    assert view.releases[("shop", "new")] is written
    # Being deleted: no longer the newest; gone: the older one is the newest again.
    view.apply(
        "Release", "MODIFIED", release("shop", "new", ["dev"], "2026-01-02T00:00:00Z", 4, True)
    )
    assert view.newest_release("shop", "dev") == ("shop", "old")
    view.apply("Release", "DELETED", release("shop", "old", ["dev"], "2026-01-01T00:00:00Z", 5))
    assert view.newest_release("shop", "dev") is None
    assert list(view.releases_targeting("dev")) == [("shop", "new")]


def test_a_view_built_from_mappings_is_indexed() -> None:
    view = ClusterView(
        releases={("shop", "r"): release("shop", "r", ["dev", "prod"], "2026-01-01T00:00:00Z", 1)},
        approvals={("shop", "a"): approval("shop", "a", "r", "prod", 2)},
    )
    assert list(view.releases_targeting("prod")) == [("shop", "r")]
    assert [a["metadata"]["name"] for a in view.approvals_for(("shop", "r"), "prod")] == ["a"]
    assert view.approvals_for(("shop", "r"), "dev") == []


def test_malformed_bodies_are_held_but_not_indexed() -> None:
    view = ClusterView()
    view.apply("Release", None, {"metadata": {"name": "x", "namespace": "shop"}, "spec": None})
    view.apply(
        "Release",
        None,
        {"metadata": {"name": "y", "namespace": "shop"}, "spec": {"environments": "dev"}},
    )
    view.apply("Approval", None, {"metadata": {"name": "a", "namespace": "shop"}, "spec": []})
    assert len(view.releases) == 2 and len(view.approvals) == 1
    assert list(view.releases_targeting("dev")) == []
    assert view.newest_release("shop", "dev") is None
