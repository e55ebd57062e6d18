"""Admission's view is fed by its own watches: a LIST, then every change, and a relist
that drops what was deleted while no watch ran; the engine's view subscribes to the same
watches (one LIST per kind in the process)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes import client

from stella.engine.projection import slim
from stella.engine.view import ClusterView
from stella.k8s.fanout import Fanout
from stella.k8s.informer import ADMISSION_SOURCES, Informer, Listing
from stella.k8s.watchlist import StreamingList

DIGEST = "d" * 64


def _release(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Release",
        "metadata": {"name": name},
        "spec": {
            "version": "1.0.0",
            "components": [
                {
                    "name": "web",
                    "image": f"registry.example.com/shop/web@sha256:{DIGEST}",
                    "workload": {"name": "web", "container": "web"},
                }
            ],
            "environments": ["dev"],
        },
    }


def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("the view did not catch up")


def test_the_view_follows_lists_and_watches(
    kube_admin: client.ApiClient, test_namespace: str
) -> None:
    api = client.CustomObjectsApi(kube_admin)
    first = f"r-{uuid.uuid4().hex[:6]}"
    api.create_namespaced_custom_object(
        "stella.io", "v1alpha1", test_namespace, "releases", _release(first)
    )
    view = ClusterView()
    informer = Informer(view, api=kube_admin)
    informer.start()
    try:
        assert informer.wait_synced(20)
        assert (test_namespace, first) in view.releases  # from the LIST
        assert test_namespace in view.namespaces
        second = f"r-{uuid.uuid4().hex[:6]}"
        api.create_namespaced_custom_object(
            "stella.io", "v1alpha1", test_namespace, "releases", _release(second)
        )
        _until(lambda: (test_namespace, second) in view.releases)  # from the watch
        assert list(view.releases_targeting("dev")).count((test_namespace, second)) == 1
        api.delete_namespaced_custom_object(
            "stella.io", "v1alpha1", test_namespace, "releases", second
        )
        _until(lambda: (test_namespace, second) not in view.releases)
    finally:
        informer.stop()

    # Deleted while no watch ran: the next informer's LIST drops it from the same view.
    api.delete_namespaced_custom_object("stella.io", "v1alpha1", test_namespace, "releases", first)
    assert (test_namespace, first) in view.releases
    again = Informer(view, api=kube_admin)
    again.start()
    try:
        _until(lambda: (test_namespace, first) not in view.releases)
    finally:
        again.stop()


def test_not_synced_until_every_kind_is_listed(kube_admin: client.ApiClient) -> None:
    view = ClusterView()
    informer = Informer(view, api=kube_admin)
    assert not view.synced
    informer.start()
    try:
        assert informer.wait_synced(20)
        assert informer.relists == len(informer.sources)
    finally:
        informer.stop()


def test_a_list_is_read_a_page_at_a_time_and_a_relist_still_drops_the_deleted(
    kube_admin: client.ApiClient, test_namespace: str
) -> None:
    """Pages of 3 over 7 Releases: every one reaches the view, the watch resumes from the
    snapshot's version, and a relist into a view holding one that is gone drops it."""
    api = client.CustomObjectsApi(kube_admin)
    names = [f"p{i}-{uuid.uuid4().hex[:4]}" for i in range(7)]
    for name in names:
        api.create_namespaced_custom_object(
            "stella.io", "v1alpha1", test_namespace, "releases", _release(name)
        )
    ghost = (test_namespace, "deleted-while-no-watch-ran")
    view = ClusterView()
    view.apply(
        "Release",
        None,
        {**_release(ghost[1]), "metadata": {"name": ghost[1], "namespace": ghost[0]}},
    )
    [releases] = [s for s in ADMISSION_SOURCES if s.kind == "Release"]
    listing = Listing("Release", releases.lister(kube_admin), page=3)
    view.replace("Release", listing)
    mine = {k for k in view.releases if k[0] == test_namespace}
    assert mine == {(test_namespace, n) for n in names}  # every page, and the ghost gone
    assert listing.complete and listing.pages >= 3 and listing.resource_version
    assert all(b.get("kind") == "Release" for b in view.releases.values())


def test_the_engine_subscribes_to_admissions_watches_instead_of_its_own(
    kube_admin: client.ApiClient, test_namespace: str
) -> None:
    """Admission's informer synced first; the engine's view, subscribing later, gets what
    was listed and then every change, from one LIST and one watch per kind."""
    api = client.CustomObjectsApi(kube_admin)
    first = f"f-{uuid.uuid4().hex[:6]}"
    api.create_namespaced_custom_object(
        "stella.io", "v1alpha1", test_namespace, "releases", _release(first)
    )
    admission, engine = ClusterView(project=slim), ClusterView(project=slim)
    shared = Fanout(admission, slim)
    informer = Informer(shared, api=kube_admin)
    informer.start()
    try:
        assert informer.wait_synced(20) and admission.synced
        shared.subscribe(engine)  # the engine starts once this replica leads
        assert (test_namespace, first) in engine.releases
        assert engine.releases[test_namespace, first] is admission.releases[test_namespace, first]
        assert engine.releases[test_namespace, first]["apiVersion"] == "stella.io/v1alpha1"
        second = f"s-{uuid.uuid4().hex[:6]}"
        api.create_namespaced_custom_object(
            "stella.io", "v1alpha1", test_namespace, "releases", _release(second)
        )
        _until(lambda: (test_namespace, second) in engine.releases)
        assert (test_namespace, second) in admission.releases
        assert informer.relists == len(informer.sources)  # no second LIST for the engine
    finally:
        informer.stop()


def test_the_first_list_is_a_watch_list_and_pages_remain_the_fallback(
    kube_admin: client.ApiClient, test_namespace: str
) -> None:
    """Against the real API server every kind is listed by one streamed watch (issue 12:
    a paged LIST of 10,000 Releases kept the API server busy 4x as long), whose initial
    state is whole and whose stream then carries the changes; an informer told not to
    stream lists in pages and holds the same objects."""
    api = client.CustomObjectsApi(kube_admin)
    names = [f"w{i}-{uuid.uuid4().hex[:4]}" for i in range(3)]
    for name in names:
        api.create_namespaced_custom_object(
            "stella.io", "v1alpha1", test_namespace, "releases", _release(name)
        )
    [releases] = [s for s in ADMISSION_SOURCES if s.kind == "Release"]
    assert releases.path is not None
    listing = StreamingList("Release", kube_admin, releases.path, 20, 30.0)
    try:
        listed = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in listing}
        assert {(test_namespace, n) for n in names} <= listed
        assert listing.complete and int(listing.resource_version) > 0
        later = f"later-{uuid.uuid4().hex[:4]}"
        api.create_namespaced_custom_object(
            "stella.io", "v1alpha1", test_namespace, "releases", _release(later)
        )
        seen = next(
            (t, o["metadata"]["name"])
            for t, o in listing.events()
            if o["metadata"]["name"] == later
        )
        assert seen == ("ADDED", later)
    finally:
        listing.close()

    streamed, paged = ClusterView(), ClusterView()
    informers = [
        Informer(streamed, api=kube_admin),
        Informer(paged, api=kube_admin, watch_list=False),
    ]
    for informer in informers:
        informer.start()
    try:
        assert all(i.wait_synced(20) for i in informers)
        assert informers[0].streamed == {s.kind for s in ADMISSION_SOURCES}
        assert informers[1].streamed == set()
        assert set(streamed.releases) == set(paged.releases)
        assert {(test_namespace, n) for n in [*names, later]} <= set(streamed.releases)
    finally:
        for informer in informers:
            informer.stop()
