"""The operator's API client reads the proxy from the environment once, not per request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.request import getproxies

import pytest
from kubernetes import client
from kubernetes.client import configuration
from kubernetes.config import kube_config

from stella.k8s import client as stella_client

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: not-a-real-token}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
"""


@pytest.fixture
def loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """api_client() loaded from a kubeconfig with a proxy in the environment; yields the
    count of getproxies() calls made after the load."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(path))
    # The loader read KUBECONFIG when it was imported.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("STELLA_KUBE_CONTEXT", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    saved = client.Configuration._default
    stella_client.api_client.cache_clear()
    calls = [0]

    def counted() -> dict[str, str]:
        calls[0] += 1
        return dict(getproxies())

    try:
        stella_client.api_client()
        monkeypatch.setattr(configuration, "getproxies", counted)
        yield calls
    finally:
        stella_client.api_client.cache_clear()
        client.Configuration.set_default(saved)


def test_the_refresh_before_each_request_no_longer_scans_the_environment(
    loaded: list[int],
) -> None:
    api = stella_client.api_client()
    cfg = api.configuration
    assert cfg.refresh_api_key_hook is not None  # what runs before every request
    for _ in range(3):
        cfg.refresh_api_key_hook(cfg)
        cfg.host = "https://127.0.0.1:1"
    assert loaded[0] == 0
    # The proxy the environment named is kept, read once at the load.
    assert cfg.proxy == "http://proxy.example:3128"
    assert cfg.host == "https://127.0.0.1:1"


def test_every_client_made_later_shares_the_pinned_proxy(loaded: list[int]) -> None:
    fresh = stella_client.fresh_api_client()
    fresh.configuration.host = "https://127.0.0.1:2"
    assert loaded[0] == 0
    assert fresh.configuration.proxy == "http://proxy.example:3128"
