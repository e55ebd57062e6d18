"""The Events Stella posts carry what `kubectl describe` looks them up by."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stella.k8s.events import event_body, lookup_uid

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RELEASE_REF: dict[str, Any] = {
    "apiVersion": "stella.io/v1alpha1",
    "kind": "Release",
    "metadata": {"name": "shop-1-4-2", "namespace": "shop"},
}


def test_the_uid_of_the_object_is_carried() -> None:
    body = {
        **RELEASE_REF,
        "metadata": {**RELEASE_REF["metadata"], "uid": "u-1", "resourceVersion": "7"},
    }
    event = event_body(body, "Deploying", "prod: deploying 1.4.2", now=NOW, host="op-0")
    ref = event.involved_object
    assert (ref.api_version, ref.kind, ref.name, ref.namespace, ref.uid, ref.resource_version) == (
        "stella.io/v1alpha1",
        "Release",
        "shop-1-4-2",
        "shop",
        "u-1",
        "7",
    )
    assert event.metadata.namespace == "shop" and event.metadata.generate_name == "shop-1-4-2."
    assert (event.reason, event.type, event.count) == ("Deploying", "Normal", 1)
    assert event.first_timestamp == event.last_timestamp == NOW
    assert event.source is not None
    assert event.source.component == event.reporting_component == "stella-operator"
    assert event.reporting_instance == "op-0"


def test_a_reference_without_a_uid_gets_the_one_looked_up() -> None:
    event = event_body(RELEASE_REF, "Denied", "CREATE by mallory denied", "Warning", uid="u-9")
    assert event.involved_object.uid == "u-9"
    assert event.type == "Warning"
    # the object's own uid wins over a looked-up one
    own = {**RELEASE_REF, "metadata": {**RELEASE_REF["metadata"], "uid": "u-1"}}
    assert event_body(own, "R", "m", uid="u-9").involved_object.uid == "u-1"


def test_cluster_scoped_objects_post_in_the_namespace_given_and_messages_are_bounded() -> None:
    env = {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": "prod", "uid": "e-1"},
    }
    event = event_body(env, "Halted", "x" * 5000, namespace="stella-system")
    assert event.metadata.namespace == "stella-system"
    assert event.involved_object.namespace is None and event.involved_object.uid == "e-1"
    assert event.message is not None
    assert len(event.message) == 1024
    assert event_body(env, "Halted", "m").metadata.namespace == "default"


class _NoCalls:
    """An ApiClient that must not be used."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the API was called ({name})")


def test_lookup_is_only_for_stella_objects_it_can_name() -> None:
    api = _NoCalls()
    assert lookup_uid(api, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}) is None  # type: ignore[arg-type]
    assert lookup_uid(api, {**RELEASE_REF, "metadata": {"name": "r"}}) is None  # type: ignore[arg-type]
    assert lookup_uid(api, {**RELEASE_REF, "metadata": {"namespace": "shop"}}) is None  # type: ignore[arg-type]
