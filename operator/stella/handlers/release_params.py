"""Keeps the release-create policy's parameter object current: the ConfigMap
`stella-release-params` in the operator's namespace, computed from admission's own view
by stella.admission.release_params (what it holds and why: that module's docstring).

Its own thread, on the replica that runs the engine (one writer; a standby's view would
have counted fewer deleted Releases for loop detection). It recomputes every
PUBLISH_INTERVAL seconds, which also lets a loop's entry expire with its window, and
writes only when the data changed; never from an unsynced view (an Environment it has not
listed yet would read as "does not exist"). An API error is logged and tried again on the
next round: the policy keeps judging by the last parameter written, and no parameter at
all refuses every Release (parameterNotFoundAction: Deny, fail closed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from kubernetes import client

from stella import metrics
from stella.admission.base import RELEASE_LOOP_SIGNAL, Snapshot
from stella.admission.release_params import PARAMS_NAME, configmap, release_params
from stella.k8s.client import fresh_api_client
from stella.k8s.upsert import upsert
from stella.settings import Settings

log = logging.getLogger("stella.admission.params")
security = logging.getLogger("stella.security")

PUBLISH_INTERVAL = 0.1


class ReleaseParamsPublisher:
    def __init__(
        self,
        view: Snapshot,
        settings: Settings,
        leading: Callable[[], bool] = lambda: True,
        api: client.ApiClient | None = None,
    ) -> None:
        self.view = view
        self.settings = settings
        self.leading = leading
        self._api = api
        self._written: Mapping[str, str] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.writes = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="release-params", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        api = client.CoreV1Api(self._api or fresh_api_client())
        failures = 0
        while not self._stop.wait(PUBLISH_INTERVAL if failures == 0 else min(10.0, failures)):
            if not (self.view.synced and self.leading()):
                continue
            try:
                self.publish_once(api)
                failures = 0
            except Exception as exc:  # the API server down, RBAC: try again, say so
                failures += 1
                log.warning("%s not written (%s); retrying", PARAMS_NAME, exc)

    def publish_once(self, api: client.CoreV1Api) -> bool:
        """Write the parameter if it changed; True when it was written."""
        s = self.settings
        data = release_params(
            self.view,
            quota=s.pending_releases_per_namespace,
            loop_threshold=s.release_loop_threshold,
            loop_window=s.release_loop_window,
            now=time.time(),
        )
        if data == self._written:
            return False
        ns = s.namespace
        upsert(
            lambda: api.read_namespaced_config_map(PARAMS_NAME, ns),
            lambda b: api.create_namespaced_config_map(ns, b),  # type: ignore[arg-type]
            lambda b: api.replace_namespaced_config_map(PARAMS_NAME, ns, b),  # type: ignore[arg-type]
            configmap(ns, data),
            f"ConfigMap {ns}/{PARAMS_NAME}",
        )
        changed = sorted(
            k
            for k in {*data, *(self._written or {})}
            if data.get(k) != (self._written or {}).get(k)
        )
        log.info("%s written: %s", PARAMS_NAME, ", ".join(changed))
        self._signal_loops(self._written, data)
        self._written = data
        self.writes += 1
        return True

    @staticmethod
    def _signal_loops(before: Mapping[str, str] | None, after: Mapping[str, str]) -> None:
        """A Release spec newly refused as a loop is the ReleaseLoop security signal (the
        refusals themselves happen in the API server, which the operator never sees)."""
        old = set((before or {}).get("loops", "").split("\n"))
        for line in after.get("loops", "").split("\n"):
            if line and line not in old:
                metrics.SECURITY_EVENTS.labels(RELEASE_LOOP_SIGNAL).inc()
                namespace, _, key = line.partition(" ")
                security.warning(
                    "security event %s: the same Release (%s) created again and again in "
                    "namespace %s; further creates are refused",
                    RELEASE_LOOP_SIGNAL,
                    key[:300],
                    namespace,
                )
