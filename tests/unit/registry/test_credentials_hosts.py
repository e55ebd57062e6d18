"""Which registries get an Environment's credentials: the hosts admission and the
deploy-time check allow, compared the same way (normalize_registry) — Docker Hub's aliases
are one registry, case does not matter, and a host that only looks like an allowed one
gets nothing (fail closed)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any, cast

import pytest

from stella.registry.client import RegistryCredentials
from stella.registry.errors import RegistryAuthFailed, RegistryUnavailable
from stella.registry.reference import parse_pinned
from stella.registry.verify import (
    ImageCheck,
    VerificationReport,
    advised_message,
    credentials_withheld,
    static_credentials,
    vault_credentials,
)
from stella.secrets.refs import VaultRef
from stella.secrets.value import SecretValue
from stella.secrets.vault import VaultClient

D = "@sha256:" + "a" * 64
REF = "vault:secret/data/registry/prod#password"


class _Vault:
    """Answers every read with one user name and password, and counts the reads."""

    def __init__(self) -> None:
        self.reads = 0

    async def aread_keys(self, ref: VaultRef | str, *keys: str) -> dict[str, SecretValue]:
        self.reads += 1
        return {"username": SecretValue("stella"), "password": SecretValue("s3cret")}


def _run(pending: Awaitable[RegistryCredentials | None]) -> RegistryCredentials | None:
    """The lookups are coroutine functions typed as returning an Awaitable."""
    return asyncio.run(cast("Coroutine[Any, Any, RegistryCredentials | None]", pending))


def _creds_for(allowed: list[str], image: str) -> tuple[RegistryCredentials | None, int]:
    vault = _Vault()
    lookup = vault_credentials(cast(VaultClient, vault), REF, allowed)
    creds = _run(lookup(parse_pinned(image)))
    return creds, vault.reads


@pytest.mark.parametrize(
    ("allowed", "image"),
    [
        ("docker.io", f"index.docker.io/shop/web{D}"),
        ("docker.io", f"registry-1.docker.io/shop/web{D}"),
        ("docker.io", f"shop/web{D}"),
        ("index.docker.io", f"docker.io/shop/web{D}"),
        ("index.docker.io", f"library/nginx{D}"),
        ("Registry-1.Docker.IO", f"Index.Docker.io/shop/web{D}"),
        ("Registry.Example.com", f"registry.example.com/shop/web{D}"),
        ("registry.example.com:5000", f"REGISTRY.example.com:5000/shop/web{D}"),
    ],
)
def test_an_allowed_registry_gets_the_credentials_however_its_host_is_written(
    allowed: str, image: str
) -> None:
    creds, reads = _creds_for([allowed], image)
    assert creds is not None
    assert creds.username == "stella"
    assert creds.password == SecretValue("s3cret")
    assert reads == 1


@pytest.mark.parametrize(
    ("allowed", "image"),
    [
        ("docker.io", f"docker.io.evil.com/shop/web{D}"),
        ("docker.io", f"evil-docker.io/shop/web{D}"),
        ("docker.io", f"index.docker.io.evil.com/shop/web{D}"),
        ("index.docker.io", f"docker.io.evil.com/shop/web{D}"),
        ("docker.io", f"registry.example.com/docker.io/web{D}"),
        ("registry.example.com", f"registry.example.com.evil.com/shop/web{D}"),
        ("registry.example.com", f"registry.example.com:5000/shop/web{D}"),
        ("registry.example.com", f"shop/web{D}"),  # Docker Hub, not the allowed registry
    ],
)
def test_a_host_that_only_looks_allowed_gets_nothing_and_vault_is_not_read(
    allowed: str, image: str
) -> None:
    assert _creds_for([allowed], image) == (None, 0)


def test_no_reference_reads_nothing() -> None:
    vault = _Vault()
    lookup = vault_credentials(cast(VaultClient, vault), None, ["docker.io"])
    assert _run(lookup(parse_pinned(f"docker.io/shop/web{D}"))) is None
    assert vault.reads == 0


def test_the_agents_task_credentials_follow_the_same_rule() -> None:
    creds = RegistryCredentials("stella", SecretValue("s3cret"))
    lookup = static_credentials(creds, ["index.docker.io"])
    assert _run(lookup(parse_pinned(f"docker.io/shop/web{D}"))) is creds
    assert _run(lookup(parse_pinned(f"docker.io.evil.com/shop/web{D}"))) is None


@pytest.mark.parametrize(
    "image", [f"evil.example/shop/web{D}", f"shop/web{D}", f"127.0.0.1:5000/shop/web{D}"]
)
def test_an_empty_list_sends_the_credentials_nowhere_and_vault_is_not_read(image: str) -> None:
    # T1/T9: "every registry allowed" must not hand the password to any registry named.
    assert _creds_for([], image) == (None, 0)


def test_the_agents_task_credentials_with_no_hosts_go_nowhere() -> None:
    creds = RegistryCredentials("stella", SecretValue("s3cret"))
    lookup = static_credentials(creds, [])
    assert _run(lookup(parse_pinned(f"evil.example/shop/web{D}"))) is None


def test_why_the_credentials_are_withheld() -> None:
    ref = "vault:secret/registry/prod#password"
    assert credentials_withheld("prod", ref, []) == (
        "Environment prod sets registryCredentials but no allowedRegistries: credentials "
        "are sent only to registries listed there; list the registry in spec.allowedRegistries"
    )
    assert credentials_withheld("prod", ref, ["registry.example.com"]) is None
    assert credentials_withheld("prod", None, []) is None


def _failed(reason: str) -> VerificationReport:
    check = ImageCheck(image=f"r.example/web{D}", ok=False, reason=reason, message="refused")
    return VerificationReport(checks=(check,))


def test_a_refused_anonymous_request_says_to_list_the_registry() -> None:
    withheld = credentials_withheld("prod", REF, [])
    auth = _failed(RegistryAuthFailed.reason)
    assert advised_message(auth, withheld) == f"{withheld} ({auth.message})"
    assert advised_message(auth, None) == auth.message  # credentials were sent: as it was
    down = _failed(RegistryUnavailable.reason)
    assert advised_message(down, withheld) == down.message  # not about credentials


def test_every_allowed_registry_set_is_built_one_way() -> None:
    """registry_hosts / registry_in: what admission, release params, rollbacks and the
    credentials matcher compare with; an empty list holds no registry (each caller decides
    what an empty allowedRegistries allows)."""
    from stella.registry.reference import registry_hosts, registry_in

    hosts = ["Registry.Example.COM", "index.docker.io", " ghcr.io "]
    assert registry_hosts(hosts) == {"registry.example.com", "docker.io", "ghcr.io"}
    allowed = registry_in(hosts)
    assert allowed("registry.example.com") and allowed("DOCKER.IO") and allowed("ghcr.io")
    assert not allowed("registry.example.com.evil.io") and not allowed("example.com")
    assert not registry_in([])("docker.io")
