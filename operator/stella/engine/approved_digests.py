"""The parameter objects of the workload-digests ValidatingAdmissionPolicy: one
ConfigMap `stella-approved-digests` in every Stella-managed namespace, kept equal to what
stella.admission.workloads.approved_digests_params computes from the view.

The API server judges workloads in managed namespaces itself (CEL, no webhook), so a Pod
there never waits on the operator; this module is the operator's only part in it. Two ways
in: the controller marks namespaces dirty on the events that can change a namespace's data
(a Namespace, an Environment, a Release's status) and run() writes them; and a deploy calls
publish() for its target namespaces before it patches any workload, so the operator's own
rollout is never refused for a digest the API server has not been told about yet.
A ConfigMap that has not been written yet refuses every workload of its namespace
(parameterNotFoundAction: Deny): a missing one means "not known", never "allowed".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stella.admission.configuration import MANAGED_LABEL
from stella.admission.workloads import PARAMS_NAME, approved_digests_params
from stella.engine.kubeio import PATCH_WORKLOAD
from stella.engine.view import Body, ClusterView
from stella.engine.workloads import ImageUpdate
from stella.k8s.client import api_client
from stella.k8s.upsert import upsert

log = logging.getLogger("stella.engine.digests")

POLICY = "workload-digests.stella.io"
# How long a deploy waits for the API server's policy to see a ConfigMap just written (its
# parameter informer is a watch, usually a few ms behind).
SETTLE_SECONDS = 5.0


class ApprovedDigests:
    def __init__(self, view: ClusterView) -> None:
        self.view = view
        self._written: dict[str, dict[str, str]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()

    # ---- which namespaces an event can change -------------------------------------------
    def observe(self, kind: str, body: Body) -> None:
        if kind == "Namespace":
            self._mark([str((body.get("metadata") or {}).get("name", ""))])
        elif kind == "Environment":
            # Rare and small: a target or requireApprovedDigests may have moved anywhere.
            self._mark(list(self.view.namespaces))
        elif kind == "Release":
            envs = (body.get("spec") or {}).get("environments")
            if isinstance(envs, list):
                self._mark(ns for e in envs if isinstance(e, str) for ns in self._targets(e))

    def _targets(self, environment: str) -> list[str]:
        env = self.view.environment(environment) or {}
        targets = (env.get("spec") or {}).get("targets")
        if not isinstance(targets, list):
            return []
        return [t["namespace"] for t in targets if isinstance(t, Mapping) and t.get("namespace")]

    def _mark(self, namespaces: Iterable[str]) -> None:
        self._dirty.update(n for n in namespaces if n)
        self._wake.set()

    # ---- writing ------------------------------------------------------------------------
    async def run(self) -> None:
        """Write every dirty namespace's ConfigMap; forever (the controller gathers it)."""
        self._mark(list(self.view.namespaces))  # the view is synced: every namespace once
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            try:
                await self.publish(sorted(dirty))
            except Exception as exc:  # an API error: keep them dirty and try again soon
                log.warning("approved digests not written (%s); retrying", exc)
                self._dirty |= dirty
                await asyncio.sleep(2.0)
                self._wake.set()

    async def publish(self, namespaces: Iterable[str]) -> bool:
        """Bring each managed namespace's ConfigMap up to date; True if one was written."""
        changed = False
        for ns in namespaces:
            if self.view.namespace_labels(ns).get(MANAGED_LABEL) != "true":
                self._written.pop(ns, None)
                continue
            data = approved_digests_params(self.view, ns)
            if self._written.get(ns) == data:
                continue
            await asyncio.to_thread(write, ns, data)
            self._written[ns] = data
            changed = True
        return changed

    async def before_deploy(self, updates: Sequence[ImageUpdate]) -> None:
        """Called with the Release already Deploying in the view: publish its digests, then
        wait until the API server's policy admits the images (a dry-run patch each), so
        the real patch that follows is not refused by a parameter informer a few ms late."""
        if not await self.publish(sorted({u.namespace for u in updates})):
            return
        await asyncio.to_thread(_settle, updates)


def write(namespace: str, data: Mapping[str, str]) -> None:
    """Create or replace one namespace's ConfigMap (RBAC: create, get and update of this
    name only)."""
    api = client.CoreV1Api(api_client())
    body = {
        "metadata": {
            "name": PARAMS_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "stella"},
        },
        "data": dict(data),
    }
    upsert(
        lambda: api.read_namespaced_config_map(PARAMS_NAME, namespace),
        lambda b: api.create_namespaced_config_map(namespace, b),  # type: ignore[arg-type]
        lambda b: api.replace_namespaced_config_map(PARAMS_NAME, namespace, b),  # type: ignore[arg-type]
        body,
        f"ConfigMap {namespace}/{PARAMS_NAME}",
    )


def _settle(updates: Sequence[ImageUpdate]) -> None:
    api = client.AppsV1Api(api_client())
    deadline = time.monotonic() + SETTLE_SECONDS
    for u in updates:
        container = {"name": u.container, "image": u.image}
        patch = {"spec": {"template": {"spec": {"containers": [container]}}}}
        while True:
            try:
                getattr(api, PATCH_WORKLOAD[u.kind])(
                    u.name,
                    u.namespace,
                    patch,
                    dry_run="All",
                    _content_type="application/strategic-merge-patch+json",
                )
                break
            except ApiException as exc:
                # Only our policy's late answer is worth waiting for; anything else is the
                # real patch's to report.
                if POLICY not in str(exc.body) or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
