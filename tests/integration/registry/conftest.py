"""A real registry behind token auth, with a small real token server on loopback.

The token server follows the Docker registry token spec: the registry answers 401 with
``WWW-Authenticate: Bearer realm=...,service=...,scope=...``; a client fetches a JWT from
the realm with basic credentials and retries. The JWT is RS256-signed by a key whose
self-signed certificate is the registry's ``rootcertbundle`` and travels in ``x5c``.
"""

from __future__ import annotations

from collections.abc import Iterator

import hvac
import pytest

from devenv.services import OpenBao, Registry
from devenv.tokenserver import TokenServer

TOKEN_USER = "stella-ci"
TOKEN_PASSWORD = "t0ken-s3cret-" + "x7Qp"  # the token server's own user, stored in Vault too


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    srv = TokenServer(tmp_path_factory.mktemp("token-server"), {TOKEN_USER: TOKEN_PASSWORD})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def registry_token(
    tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer
) -> Iterator[Registry]:
    reg = Registry(
        tmp_path_factory.mktemp("registry-token"),
        token_auth=token_server.registry_auth(),
    ).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def bao_admin(openbao: OpenBao) -> hvac.Client:
    return hvac.Client(url=openbao.addr, token=openbao.root_token)


@pytest.fixture(scope="session")
def token_user() -> tuple[str, str]:
    """The user the token server knows (the test stores it in Vault)."""
    return TOKEN_USER, TOKEN_PASSWORD
