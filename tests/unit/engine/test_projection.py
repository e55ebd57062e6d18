"""The engine's view keeps what the engine reads, not whole bodies (issue 12)."""

from __future__ import annotations

import copy
import sys
from types import MappingProxyType
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stella.engine.projection import _shared, slim
from stella.engine.view import ClusterView
from stella.policy.binding import binding_of

RELEASE: dict[str, Any] = {
    "apiVersion": "stella.io/v1alpha1",
    "kind": "Release",
    "metadata": {
        "name": "r1",
        "namespace": "shop",
        "uid": "u-1",
        "resourceVersion": "42",
        "generation": 1,
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "labels": {"team": "shop"},
        "annotations": {
            "stella.io/requester": '{"username":"alice"}',
            "kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 4000 + "}",
        },
        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}] * 20,
        "finalizers": ["stella.io/finalizer"],
    },
    "spec": {"version": "1.0.0", "environments": ["dev"], "components": []},
    "status": {"environments": [{"name": "dev", "phase": "Pending"}]},
}


def test_slim_keeps_what_the_engine_reads_and_drops_the_rest() -> None:
    body = copy.deepcopy(RELEASE)
    out = slim("Release", body)
    assert out["spec"] == RELEASE["spec"] and out["status"] == RELEASE["status"]
    assert out["apiVersion"] == RELEASE["apiVersion"] and out["kind"] == "Release"
    meta = out["metadata"]
    for k in ("name", "namespace", "uid", "resourceVersion", "generation", "labels"):
        assert meta[k] == RELEASE["metadata"][k]
    assert meta["annotations"] == {"stella.io/requester": '{"username":"alice"}'}
    assert "managedFields" not in meta and meta["finalizers"] == ["stella.io/finalizer"]
    # An Approval's binding (uid + digest of the exact spec) reads the same from the copy.
    assert binding_of(out) == binding_of(RELEASE)
    assert body == RELEASE  # the event's body is not edited


def test_environments_are_kept_whole() -> None:
    env = {"metadata": {"name": "dev", "managedFields": [{}]}, "spec": {}}
    assert slim("Environment", env) is env


def test_the_engine_view_projects_and_a_plain_view_does_not() -> None:
    engine, plain = ClusterView(project=slim), ClusterView()
    for view in (engine, plain):
        view.apply("Release", None, copy.deepcopy(RELEASE))
    assert "managedFields" not in (engine.release(("shop", "r1")) or {})["metadata"]
    assert "managedFields" in (plain.release(("shop", "r1")) or {})["metadata"]
    assert list(engine.releases_targeting("dev")) == [("shop", "r1")]


def test_the_engine_and_admission_views_share_one_copy_of_each_version() -> None:
    """Two views fed by their own watches (the leader's engine and admission) hold the
    same object for the same version — one copy in memory, not two — and their own once
    the versions differ; a copy no view holds any more is forgotten."""
    import gc

    from stella.engine import projection

    engine, admission = ClusterView(project=slim), ClusterView(project=slim)
    engine.apply("Release", "ADDED", copy.deepcopy(RELEASE))
    admission.apply("Release", "ADDED", copy.deepcopy(RELEASE))  # its own parse
    key = ("shop", "r1")
    assert engine.releases[key] is admission.releases[key]
    newer = copy.deepcopy(RELEASE)
    newer["metadata"]["resourceVersion"] = "43"
    newer["status"] = {"environments": [{"name": "dev", "phase": "Deployed"}]}
    engine.apply("Release", "MODIFIED", newer)
    assert engine.releases[key] is not admission.releases[key]
    assert admission.releases[key]["status"] == RELEASE["status"]  # its version, untouched
    admission.apply("Release", "MODIFIED", copy.deepcopy(newer))
    assert engine.releases[key] is admission.releases[key]
    # Without uid or resourceVersion (a body no API server sent): never shared.
    bare = copy.deepcopy(RELEASE)
    del bare["metadata"]["uid"]
    assert slim("Release", bare) is not slim("Release", bare)
    # Gone from both views: gone from the table too.
    engine.apply("Release", "DELETED", newer)
    admission.apply("Release", "DELETED", newer)
    gc.collect()
    assert ("Release", "u-1", "43") not in projection._COPIES


# What json.loads makes: dicts, lists, strings, numbers, booleans and None, nested.
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_the_copy_equals_what_was_parsed_with_keys_and_short_strings_interned(value: Any) -> None:
    out = _shared(value)
    assert out == value

    def interned(v: Any) -> None:
        if isinstance(v, dict):
            for k, item in v.items():
                assert k is sys.intern(k)
                interned(item)
        elif isinstance(v, list):
            for item in v:
                interned(item)
        elif isinstance(v, str) and len(v) <= 64:
            assert v is sys.intern(v)

    interned(out)


def test_a_mapping_that_is_not_a_plain_dict_is_copied_into_one() -> None:
    # Only json.loads' own types take the fast path; any other Mapping or str subclass
    # takes the general one, as before.
    class Name(str):
        pass

    value = MappingProxyType({"a": [MappingProxyType({"b": Name("x")})]})
    out = _shared(value)
    assert out == {"a": [{"b": "x"}]}
    assert type(out) is dict and type(out["a"][0]) is dict
    assert out["a"][0]["b"] is sys.intern("x")
