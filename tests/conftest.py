"""Shared fixtures. Real services start on demand, once per session, on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hack"))

import os  # noqa: E402
import uuid  # noqa: E402

from kubernetes import client  # noqa: E402

from devenv.bootstrap import bootstrap  # noqa: E402
from devenv.controlplane import ControlPlane  # noqa: E402
from devenv.services import OpenBao, Postgres, ReferrersRegistry, Registry  # noqa: E402
from tests.kube_support import api_client_for  # noqa: E402


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    bao = OpenBao(tmp_path_factory.mktemp("openbao")).start()
    yield bao
    bao.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    pg = Postgres(tmp_path_factory.mktemp("postgres")).start()
    yield pg
    pg.destroy()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = Registry(tmp_path_factory.mktemp("registry")).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def referrers_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry with the OCI 1.1 Referrers API (go-containerregistry's; in memory)."""
    reg = ReferrersRegistry(tmp_path_factory.mktemp("referrers-registry")).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def registry_basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry behind htpasswd basic auth: user `stella`, password `s3cret-registry`."""
    reg = Registry(
        tmp_path_factory.mktemp("registry-basic"), htpasswd={"stella": "s3cret-registry"}
    ).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """The control plane, once per session (about 15 s warm)."""
    state = Path(os.environ.get("STELLA_TEST_STATE") or tmp_path_factory.mktemp("cluster"))
    cp = ControlPlane(state)
    try:
        cp.up()
        bootstrap(cp)
        yield cp
    finally:
        cp.down()


@pytest.fixture(scope="session")
def kube_admin(kube: ControlPlane) -> client.ApiClient:
    return api_client_for(str(kube.kubeconfig), "admin")


@pytest.fixture(scope="session")
def kube_as(kube: ControlPlane) -> dict[str, client.ApiClient]:
    """An ApiClient per person of the token file: admin, alice, bob, carol, dave, erin,
    frank (platform engineer)."""
    return {
        u: api_client_for(str(kube.kubeconfig), u)
        for u in ("admin", "alice", "bob", "carol", "dave", "erin", "frank")
    }


@pytest.fixture
def test_namespace(kube_admin: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube_admin)
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"team": "shop"}))
    )
    yield name
    core.delete_namespace(name)
