"""An Event Stella posts about a Release shows in `kubectl describe release`, even when the
caller held only a reference without the uid (an Approval refused at CREATE names its
Release by name): describe finds Events by involvedObject.uid."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from devenv.controlplane import ControlPlane
from stella.k8s import events

DIGEST = "c" * 64


def test_an_event_by_reference_is_shown_by_kubectl_describe(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    test_namespace: str,
) -> None:
    release: Any = client.CustomObjectsApi(kube_admin).create_namespaced_custom_object(
        "stella.io",
        "v1alpha1",
        test_namespace,
        "releases",
        {
            "apiVersion": "stella.io/v1alpha1",
            "kind": "Release",
            "metadata": {"name": "shop-1-4-2"},
            "spec": {
                "version": "1.4.2",
                "components": [
                    {
                        "name": "web",
                        "image": f"registry.example.com/shop/web@sha256:{DIGEST}",
                        "workload": {"name": "web", "container": "web"},
                    }
                ],
                "environments": ["dev"],
            },
        },
    )
    reference = {  # what the admission handler has for an Approval's Release: no uid
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Release",
        "metadata": {"name": "shop-1-4-2", "namespace": test_namespace},
    }
    message = "CREATE by carol denied (approval.self-approval): carol requested this release"
    events.emit(reference, "AdmissionDenied", message, "Warning", api=kube_admin)

    uid = release["metadata"]["uid"]
    found = client.CoreV1Api(kube_admin).list_namespaced_event(
        test_namespace, field_selector=f"involvedObject.uid={uid}"
    )
    assert [e.message for e in found.items] == [message]

    deadline = time.monotonic() + 10
    while True:
        shown = kube.kubectl("admin", "describe", "release", "shop-1-4-2", "-n", test_namespace)
        events_section = shown.stdout.split("Events:", 1)[-1]
        if "carol requested this release" in events_section or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "AdmissionDenied" in events_section and "carol requested this release" in events_section
