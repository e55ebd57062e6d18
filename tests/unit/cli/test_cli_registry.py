"""`stella release create --from-tags`: registry and Vault failures as one line, with what
to do (a plain-HTTP registry needs --insecure-registry)."""

from __future__ import annotations

import pytest

from stella.cli.output import CliError
from stella.cli.registry import parse_component_flags, registry_failure
from stella.registry.errors import RegistryAuthFailed, RegistryUnavailable, TagNotFound
from stella.secrets.errors import VaultUnavailable

IMAGE = "127.0.0.1:5000/shop/web:1.4.2"


def tls_failure() -> RegistryUnavailable:
    return RegistryUnavailable(
        "cannot reach registry 127.0.0.1:5000 (ClientConnectorSSLError); failing closed: "
        f"{IMAGE} is not verified, so it is not deployed",
        image=IMAGE,
    )


def test_a_plain_http_registry_suggests_insecure_registry() -> None:
    err = registry_failure(tls_failure())
    assert err.code == 3
    assert err.message == (
        "cannot reach registry 127.0.0.1:5000 over HTTPS (TLS failed) to resolve "
        f"{IMAGE}; if 127.0.0.1:5000 serves plain HTTP (a local registry), add "
        "--insecure-registry 127.0.0.1:5000"
    )
    assert "not deployed" not in err.message
    # already given: no advice to give it again
    assert "--insecure-registry" not in registry_failure(tls_failure(), ["127.0.0.1:5000"]).message


def test_an_unreachable_registry_is_exit_3_without_deploy_talk() -> None:
    err = registry_failure(
        RegistryUnavailable(
            "cannot reach registry r.example (ClientConnectorError); failing closed: "
            "r.example/web:1 is not verified, so it is not deployed",
            image="r.example/web:1",
        )
    )
    assert (err.code, err.message) == (
        3,
        "cannot reach registry r.example (cannot connect); r.example/web:1 was not resolved",
    )


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (TagNotFound("tag 1.4.2 not found in shop/web", image=IMAGE), 1),
        (RegistryAuthFailed("the registry refused the credentials", image=IMAGE), 1),
        (VaultUnavailable("Vault is sealed"), 3),
    ],
)
def test_other_failures_keep_their_message(exc: Exception, code: int) -> None:
    err = registry_failure(exc)
    assert isinstance(err, CliError) and err.code == code and "\n" not in err.message


def test_component_flags() -> None:
    assert parse_component_flags(["web=r/web:1"], ["web=StatefulSet/db"]) == [
        {
            "name": "web",
            "image": "r/web:1",
            "workload": {"kind": "StatefulSet", "name": "db", "container": "db"},
        }
    ]
    with pytest.raises(ValueError, match="--component"):
        parse_component_flags(["web"])
