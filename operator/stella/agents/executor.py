"""The agent's work: one AgentTask carried out in the agent's own cluster.

1. acknowledge (the hub records the certificate it was taken with);
2. verify every image's digest against the registry itself — the agent trusts no one's
   word for the bytes it deploys (T4), not even the hub's;
3. record what ran before, then patch each workload (the same strategic-merge patch the
   engine applies in its own cluster: re-applying it is a no-op, so a resumed task never
   starts a second rollout);
4. follow the rollout until it completes or the deadline passes; on failure put the
   previous images back when the task says so (a task that is itself the hub's rollback,
   `spec.rollback`, is the same steps with the images that ran before);
5. report the outcome.

An agent restarted mid-task gets the same task back (unfinished, acknowledged) and
resumes at the step it had reached, with the previous images the hub kept for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stella.engine.kubeio import PATCH_WORKLOAD, READ_WORKLOAD
from stella.engine.workloads import (
    ImageUpdate,
    current_images,
    group_by_workload,
    image_patch,
    missing_containers,
    rollout_state,
)
from stella.registry.client import RegistryClient, RegistryCredentials
from stella.registry.verify import static_credentials, verify_release_images
from stella.secrets.value import SecretValue

log = logging.getLogger("stella.agent")

Report = Callable[[str, dict[str, Any]], None]
# The task's registry credentials from the hub (once per task): a list of
# {hosts, username, password}; raises when the hub refuses.
Credentials = Callable[[], list[dict[str, Any]]]


def updates_of(task: Mapping[str, Any]) -> list[ImageUpdate]:
    spec = task["spec"]
    return [
        ImageUpdate(
            namespace=str(spec["namespace"]),
            kind=str(c["workload"].get("kind") or "Deployment"),
            name=str(c["workload"]["name"]),
            container=str(c["workload"]["container"]),
            image=str(c["image"]),
            component=str(c["name"]),
        )
        for c in spec["components"]
    ]


class Executor:
    def __init__(
        self,
        kube: client.ApiClient,
        registry_env: Mapping[str, str] | None = None,
        poll: float = 1.0,
    ) -> None:
        self.apps = client.AppsV1Api(kube)
        self.api = kube
        self.registry_env = registry_env
        self.poll = poll

    def _read(self, u: ImageUpdate) -> dict[str, Any]:
        obj = getattr(self.apps, READ_WORKLOAD[u.kind])(u.name, u.namespace)
        return dict(self.api.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]

    def _verify(self, images: list[str], creds: list[dict[str, Any]]) -> str | None:
        """None when every digest matches; else what is wrong. creds: the task's registry
        credentials (kept in memory for this check only)."""
        lookup = None
        if creds:
            first = creds[0]
            lookup = static_credentials(
                RegistryCredentials(str(first["username"]), SecretValue(str(first["password"]))),
                [str(h) for h in first.get("hosts") or []],
            )

        async def go() -> str | None:
            async with RegistryClient.from_env(self.registry_env) as registry:
                report = await verify_release_images(registry, images, lookup)
            if report.ok:
                return None
            return "; ".join(f"{c.image}: {c.message}" for c in report.failures)

        return asyncio.run(go())

    def run(
        self, task: Mapping[str, Any], report: Report, credentials: Credentials = lambda: []
    ) -> str:
        """Carry one task out; the final phase."""
        spec = task["spec"]
        phase = str(task.get("phase") or "Pending")
        release = f"{spec['release']['namespace']}/{spec['release']['name']}"
        updates = updates_of(task)
        if phase == "Pending":
            report("Acknowledged", {"message": f"taken by the agent for {release}"})
        # Running: resumed after the images were verified and applied; they are not fetched
        # again (the hub hands a task's credentials out once).
        if phase != "Running":
            try:
                creds = credentials()
            except Exception as exc:
                report("Failed", {"message": f"no registry credentials for this task: {exc}"})
                return "Failed"
            wrong = self._verify([u.image for u in updates], creds)
            del creds
            if wrong is not None:
                report("Failed", {"message": f"digest verification failed: {wrong}"})
                return "Failed"
        groups = group_by_workload(updates)
        previous: list[dict[str, str]] = list(task.get("previousImages") or [])
        try:
            bodies = {key: self._read(us[0]) for key, us in groups.items()}
        except ApiException as exc:
            report("Failed", {"message": f"cannot read the workloads ({exc.status} {exc.reason})"})
            return "Failed"
        for key, us in groups.items():
            missing = missing_containers(bodies[key], us)
            if missing:
                report(
                    "Failed",
                    {
                        "message": f"{key[1]} {key[0]}/{key[2]} has no container "
                        f"{', '.join(missing)}"
                    },
                )
                return "Failed"
        if not previous:
            for key, us in groups.items():
                have = current_images(bodies[key])
                previous += [{"component": u.component, "image": have[u.container]} for u in us]
        # A task that rolls the cluster back (spec.rollback) says so on the workload.
        attempt = str(spec.get("attempt", 1)) + ("-rollback" if spec.get("rollback") else "")
        for _key, us in groups.items():
            getattr(self.apps, PATCH_WORKLOAD[us[0].kind])(
                us[0].name, us[0].namespace, image_patch(us, release, attempt)
            )
        report(
            "Running",
            {"message": "images applied; following the rollout", "previousImages": previous},
        )
        deadline = _deadline(spec)
        while True:
            states = [rollout_state(us[0].kind, self._read(us[0])) for us in groups.values()]
            if all(state == "Complete" for state, _ in states):
                report("Succeeded", {"message": "; ".join(m for _, m in states)})
                return "Succeeded"
            if time.time() >= deadline:
                detail = "; ".join(m for _, m in states)
                if spec.get("rollbackOnFailure", True):
                    self._roll_back(groups, previous, release, str(spec.get("attempt", 1)))
                    report(
                        "Failed",
                        {
                            "message": f"rollout did not finish by the deadline ({detail}); "
                            "previous images restored",
                            "rolledBack": True,
                        },
                    )
                else:
                    report(
                        "Failed", {"message": f"rollout did not finish by the deadline ({detail})"}
                    )
                return "Failed"
            time.sleep(self.poll)

    def _roll_back(
        self,
        groups: Mapping[tuple[str, str, str], list[ImageUpdate]],
        previous: list[dict[str, str]],
        release: str,
        attempt: str,
    ) -> None:
        before = {p["component"]: p["image"] for p in previous}
        for us in groups.values():
            back = [
                ImageUpdate(
                    u.namespace, u.kind, u.name, u.container, before[u.component], u.component
                )
                for u in us
                if u.component in before
            ]
            if back:
                getattr(self.apps, PATCH_WORKLOAD[us[0].kind])(
                    us[0].name, us[0].namespace, image_patch(back, release, f"{attempt}-rollback")
                )


def _deadline(spec: Mapping[str, Any]) -> float:
    text = str(spec.get("deadline") or "")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return time.time()
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
