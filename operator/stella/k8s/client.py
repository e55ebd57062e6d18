"""Build an ApiClient: in a Pod from the service account, elsewhere from KUBECONFIG."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from kubernetes import client, config

# Every call Stella makes has a deadline: (connect, read) seconds. A hung API server
# must cost a retry, never a stuck worker thread (watches are kopf's, with their own).
REQUEST_TIMEOUT: tuple[float, float] = (5.0, 30.0)


class _TimedApiClient(client.ApiClient):
    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("_request_timeout") is None:
            kwargs["_request_timeout"] = REQUEST_TIMEOUT
        return super().call_api(*args, **kwargs)


@cache
def api_client() -> client.ApiClient:
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            context=os.environ.get("STELLA_KUBE_CONTEXT") or None
        )
    pin_proxy()
    api = _TimedApiClient()
    # Bounded sockets, but one per engine worker writing at once (STELLA_WORKERS) and a
    # few for everything else: a full pool makes urllib3 open — and throw away — a new
    # TLS connection per call.
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 24
    return api


def pin_proxy() -> None:
    """Read the proxy from the environment once, for every client made from now on.

    kubernetes' Configuration derives its proxy from the environment (urllib's
    getproxies, a scan of all of os.environ) each time its host is set, and the
    credential refresh hook that both config loaders install sets the host before every
    request: about 0.3 ms of CPU per API call with this machine's 35 variables, more in a
    Pod, whose environment names every Service of its namespace (issue 12: a cold resync
    makes one status write per Release). Assigning the proxy pins it; a process's own
    environment does not change under it."""
    cfg = client.Configuration.get_default_copy()
    cfg.proxy = cfg.proxy
    client.Configuration.set_default(cfg)


def fresh_api_client() -> client.ApiClient:
    """A client with its own connection pool (long-lived watches must not hold the
    sockets every other call of the process shares)."""
    api_client()  # loads the configuration once
    api = _TimedApiClient()
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = 8
    return api


def custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client())


def core() -> client.CoreV1Api:
    return client.CoreV1Api(api_client())


def apps() -> client.AppsV1Api:
    return client.AppsV1Api(api_client())


def batch() -> client.BatchV1Api:
    return client.BatchV1Api(api_client())
