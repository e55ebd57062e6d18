"""The hub's reads and writes of Agents, on the API server (status is the operator's)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from stella import GROUP, VERSION
from stella.agents.hub import Conflict
from stella.k8s.client import custom

PLURAL = "agents"
TASKS = "agenttasks"
AGENT_LABEL = "stella.io/agent"


class KubeAgentStore:
    """Agents (cluster-scoped) and AgentTasks (in the operator's namespace)."""

    def __init__(
        self, api: client.ApiClient | None = None, namespace: str = "stella-system"
    ) -> None:
        self._custom = client.CustomObjectsApi(api) if api is not None else custom()
        self.namespace = namespace

    def tasks(self, agent: str) -> list[dict[str, Any]]:
        resp: Any = self._custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            TASKS,
            label_selector=f"{AGENT_LABEL}={agent}",
            _preload_content=False,
        )
        return list(json.loads(resp.data).get("items") or [])

    def task(self, name: str) -> dict[str, Any] | None:
        try:
            resp: Any = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, TASKS, name, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(json.loads(resp.data))

    def replace_task_status(self, task: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        self._replaced_task(task, status)

    def _replaced_task(self, task: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
        body = {**task, "status": dict(status)}
        try:
            out: Any = self._custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, self.namespace, TASKS, str(task["metadata"]["name"]), body
            )
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(str(task["metadata"]["name"])) from None
            raise
        return cast(dict[str, Any], out)

    def environment(self, name: str) -> Mapping[str, Any] | None:
        try:
            resp: Any = self._custom.get_cluster_custom_object(
                GROUP, VERSION, "environments", name, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(json.loads(resp.data))

    def agents(self) -> list[dict[str, Any]]:
        resp: Any = self._custom.list_cluster_custom_object(
            GROUP, VERSION, PLURAL, _preload_content=False
        )
        return list(json.loads(resp.data).get("items") or [])

    def get(self, name: str) -> Mapping[str, Any] | None:
        try:
            resp: Any = self._custom.get_cluster_custom_object(
                GROUP, VERSION, PLURAL, name, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(json.loads(resp.data))

    def replace_status(self, agent: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        self._replaced_agent(agent, status)

    def _replaced_agent(
        self, agent: Mapping[str, Any], status: Mapping[str, Any]
    ) -> dict[str, Any]:
        body = {**agent, "status": dict(status)}  # metadata.resourceVersion guards it
        try:
            out: Any = self._custom.replace_cluster_custom_object_status(
                GROUP, VERSION, PLURAL, str(agent["metadata"]["name"]), body
            )
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(str(agent["metadata"]["name"])) from None
            raise
        return cast(dict[str, Any], out)

    def patch_status(self, name: str, status: Mapping[str, Any]) -> None:
        self._patched_agent(name, status)

    def _patched_agent(self, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        out: Any = self._custom.patch_cluster_custom_object_status(
            GROUP, VERSION, PLURAL, name, {"status": dict(status)}
        )
        return cast(dict[str, Any], out)
