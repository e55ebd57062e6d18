"""Digest verification against the real registry (distribution 2.8); credentials from OpenBao."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import hvac
import pytest

from devenv.proc import free_port
from devenv.services import OpenBao, Registry, basic_auth, push_image
from stella.registry import (
    DigestMismatch,
    ManifestNotFound,
    RegistryAuthFailed,
    RegistryClient,
    RegistryCredentials,
    RegistryUnavailable,
    TagNotFound,
    check_drift,
    pin_images,
    static_credentials,
    vault_credentials,
    verify_release_images,
)
from stella.secrets import SecretValue, TokenAuth, VaultClient, VaultSettings
from stella.secrets.breaker import BreakerPolicy

BASIC_USER, BASIC_PASSWORD = "stella", "s3cret-registry"


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def vault_for(openbao: OpenBao) -> VaultClient:
    return VaultClient(
        VaultSettings(addr=openbao.addr, auth=TokenAuth(token=SecretValue(openbao.root_token)))
    )


def client_for(*regs: Registry, extra: tuple[str, ...] = ()) -> RegistryClient:
    return RegistryClient(insecure_registries={r.host for r in regs} | set(extra), timeout=5)


def push(reg: Registry, repo: str, tag: str = "v1", auth: str | None = None) -> str:
    """Push a unique image; return its pinned reference."""
    digest = push_image(reg.url, repo, tag, f"payload {uuid.uuid4()}".encode(), auth)
    return f"{reg.host}/{repo}:{tag}@{digest}"


def manifest_blob(reg: Registry, digest: str) -> Path:
    hexd = digest.split(":", 1)[1]
    return reg.workdir / "registry-data/docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


# ---- anonymous registry -------------------------------------------------------------------


def test_verify_ok_anonymous(registry: Registry) -> None:
    image = push(registry, uid("shop/web"))

    async def go() -> Any:
        async with client_for(registry) as c:
            return await verify_release_images(c, [image])

    report = run(go())
    assert report.ok, report.message
    check = report.checks[0]
    assert check.manifest is not None
    assert check.manifest.media_type == "application/vnd.oci.image.manifest.v1+json"
    assert check.manifest.digest == image.rsplit("@", 1)[1]


def test_deleted_manifest_is_manifest_not_found_and_halts(registry: Registry) -> None:
    repo = uid("shop/api")
    image = push(registry, repo)
    digest = image.rsplit("@", 1)[1]
    req = urllib.request.Request(f"{registry.url}/v2/{repo}/manifests/{digest}", method="DELETE")
    with urllib.request.urlopen(req) as r:
        assert r.status == 202

    async def go() -> Any:
        async with client_for(registry) as c:
            with pytest.raises(ManifestNotFound) as exc:
                await c.verify_digest(image)
            report = await verify_release_images(c, [image])
            return exc.value, report

    err, report = run(go())
    assert digest in err.message
    assert not report.ok and report.halts
    assert report.reason == "ManifestNotFound"


def test_replaced_manifest_bytes_are_a_digest_mismatch(registry: Registry) -> None:
    """Tamper with the registry's storage: the blob behind the digest now holds another manifest.

    The registry still answers with Docker-Content-Digest = the requested digest (it trusts
    its storage path), so only hashing the bytes catches it.
    """
    repo = uid("shop/worker")
    image = push(registry, repo)
    other = push(registry, repo, tag="other")
    digest, other_digest = image.rsplit("@", 1)[1], other.rsplit("@", 1)[1]
    manifest_blob(registry, digest).write_bytes(manifest_blob(registry, other_digest).read_bytes())

    async def go() -> Any:
        async with client_for(registry) as c:
            with pytest.raises(DigestMismatch) as exc:
                await c.verify_digest(image)
            report = await verify_release_images(c, [image, other])
            return exc.value, report

    err, report = run(go())
    assert err.expected == digest
    assert err.actual == other_digest
    assert err.header == digest  # the registry vouched for the wrong bytes
    assert report.halts and report.reason == "DigestMismatch"
    assert [c.ok for c in report.checks] == [False, True]


def test_registry_down_fails_closed_fast_and_breaker_opens(tmp_path: Path) -> None:
    reg = Registry(tmp_path).start()
    image = push(reg, uid("shop/web"))
    reg.stop()

    async def go() -> Any:
        client = RegistryClient(
            insecure_registries={reg.host},
            breaker_policy=BreakerPolicy(failure_threshold=2, base_backoff=30),
        )
        async with client:
            errors = []
            started = time.monotonic()
            for _ in range(3):
                with pytest.raises(RegistryUnavailable) as exc:
                    await client.verify_digest(image)
                errors.append(exc.value)
            elapsed = time.monotonic() - started
            report = await verify_release_images(client, [image])
            return errors, elapsed, report, client.requests

    errors, elapsed, report, requests = run(go())
    assert elapsed < 2.0
    assert "cannot reach" in errors[0].message
    assert "circuit breaker open" in errors[2].message  # third call never left the process
    assert requests == 2
    assert errors[2].retry_after and errors[2].retry_after > 20
    assert not report.ok and not report.halts and report.reason == "RegistryUnavailable"


def test_registry_comes_back_after_breaker_half_opens(tmp_path: Path) -> None:
    port = free_port()
    reg = Registry(tmp_path, port=port).start()
    image = push(reg, uid("shop/web"))
    reg.stop()

    async def go() -> None:
        client = RegistryClient(
            insecure_registries={reg.host},
            breaker_policy=BreakerPolicy(failure_threshold=1, base_backoff=0.3, jitter=0),
        )
        async with client:
            with pytest.raises(RegistryUnavailable):
                await client.verify_digest(image)
            reg.start()  # same port, same storage
            with pytest.raises(RegistryUnavailable, match="circuit breaker"):
                await client.verify_digest(image)
            await asyncio.sleep(0.35)
            await client.verify_digest(image)

    try:
        run(go())
    finally:
        reg.stop()


# ---- basic auth, credentials from Vault ----------------------------------------------------


def test_basic_auth_with_credentials_from_vault(
    registry_basic: Registry, openbao: OpenBao, bao_admin: hvac.Client
) -> None:
    path = uid("registry/basic")
    bao_admin.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"username": BASIC_USER, "password": BASIC_PASSWORD}
    )
    image = push(registry_basic, uid("shop/web"), auth=basic_auth(BASIC_USER, BASIC_PASSWORD))
    vault = vault_for(openbao)
    lookup = vault_credentials(vault, f"vault:secret/{path}#password", [registry_basic.host])

    async def go() -> Any:
        async with client_for(registry_basic) as c:
            report = await verify_release_images(c, [image], lookup)
            again = await verify_release_images(c, [image], lookup)
            anonymous = await verify_release_images(c, [image])
            return report, again, anonymous, c.requests

    report, again, anonymous, requests = run(go())
    assert report.ok, report.message
    assert again.ok
    # first call: 401 challenge then basic; second call: basic sent up front
    assert requests == 2 + 1 + 1
    assert not anonymous.ok and anonymous.reason == "RegistryAuthFailed"
    assert "requires credentials" in anonymous.message


def test_basic_auth_wrong_password(registry_basic: Registry) -> None:
    image = push(registry_basic, uid("shop/web"), auth=basic_auth(BASIC_USER, BASIC_PASSWORD))
    creds = RegistryCredentials(BASIC_USER, SecretValue("wrong-password-123"))

    async def go() -> Any:
        async with client_for(registry_basic) as c:
            with pytest.raises(RegistryAuthFailed) as exc:
                await c.verify_digest(image, creds)
            return exc.value

    err = run(go())
    assert "wrong-password-123" not in err.message
    assert "refused the credentials" in err.message


def test_credentials_are_not_sent_to_registries_outside_the_allow_list(
    registry_basic: Registry, openbao: OpenBao, bao_admin: hvac.Client
) -> None:
    path = uid("registry/basic")
    bao_admin.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"username": BASIC_USER, "password": BASIC_PASSWORD}
    )
    image = push(registry_basic, uid("shop/web"), auth=basic_auth(BASIC_USER, BASIC_PASSWORD))
    lookup = vault_credentials(
        vault_for(openbao), f"vault:secret/{path}#password", ["registry.example.com"]
    )

    async def go() -> Any:
        async with client_for(registry_basic) as c:
            return await verify_release_images(c, [image], lookup)

    report = run(go())
    assert report.reason == "RegistryAuthFailed"


# ---- token auth: the bearer challenge flow -------------------------------------------------


def test_token_auth_challenge_flow_with_credentials_from_vault(
    registry_token: Registry,
    token_server: Any,
    token_user: tuple[str, str],
    openbao: OpenBao,
    bao_admin: hvac.Client,
) -> None:
    TOKEN_USER, TOKEN_PASSWORD = token_user
    repo = uid("shop/web")
    push_token = token_server.issue("pusher", [f"repository:{repo}:pull,push"])
    image = push(registry_token, repo, auth=f"Bearer {push_token}")
    path = uid("registry/token")
    bao_admin.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"username": TOKEN_USER, "token": TOKEN_PASSWORD}
    )
    lookup = vault_credentials(
        vault_for(openbao), f"vault:secret/{path}#token", [registry_token.host]
    )
    issued_before = len(token_server.issued)

    async def go() -> Any:
        async with client_for(registry_token, extra=(token_server.host,)) as c:
            first = await verify_release_images(c, [image], lookup)
            second = await verify_release_images(c, [image], lookup)
            creds = RegistryCredentials(TOKEN_USER, SecretValue(TOKEN_PASSWORD))
            digest = await c.resolve_tag(image.rsplit("@", 1)[0], creds)
            return first, second, digest, c.token_fetches

    first, second, digest, fetches = run(go())
    assert first.ok, first.message
    assert second.ok
    assert digest == image.rsplit("@", 1)[1]
    assert fetches == 1  # one token for the repository's pull scope, cached afterwards
    assert [scope for _, scope in token_server.issued[issued_before:]] == [
        f"repository:{repo}:pull"
    ]


def test_token_auth_bad_credentials(registry_token: Registry, token_server: Any) -> None:
    repo = uid("shop/web")
    push_token = token_server.issue("p", [f"repository:{repo}:pull,push"])
    image = push(registry_token, repo, auth=f"Bearer {push_token}")
    refused = token_server.refused

    async def go() -> Any:
        async with client_for(registry_token, extra=(token_server.host,)) as c:
            with pytest.raises(RegistryAuthFailed) as exc:
                await c.verify_digest(
                    image, RegistryCredentials("stella-ci", SecretValue("not-the-token"))
                )
            return exc.value

    err = run(go())
    assert "token service" in err.message
    assert token_server.refused == refused + 1


def test_token_realm_over_plain_http_is_refused_unless_allowed(
    registry_token: Registry, token_server: Any
) -> None:
    repo = uid("shop/web")
    push_token = token_server.issue("p", [f"repository:{repo}:pull,push"])
    image = push(registry_token, repo, auth=f"Bearer {push_token}")

    async def go() -> Any:
        async with client_for(registry_token) as c:  # token host not in the insecure list
            with pytest.raises(RegistryAuthFailed, match="plain HTTP"):
                await c.verify_digest(image, RegistryCredentials("u", SecretValue("p")))

    run(go())


# ---- tags: pinning at creation, drift ------------------------------------------------------


def test_pin_from_tags_and_drift(registry: Registry) -> None:
    repo = uid("shop/web")
    pinned = push(registry, repo, tag="1.4.2")
    digest = pinned.rsplit("@", 1)[1]

    async def go() -> Any:
        async with client_for(registry) as c:
            pins = await pin_images(c, [f"{registry.host}/{repo}:1.4.2"])
            in_sync = await check_drift(c, pins[0].image)
            push(registry, repo, tag="1.4.2")  # someone moves the tag
            drifted = await check_drift(c, pins[0].image)
            with pytest.raises(TagNotFound):
                await pin_images(c, [f"{registry.host}/{repo}:nope"])
            still = await verify_release_images(c, [pins[0].image])
            return pins, in_sync, drifted, still

    pins, in_sync, drifted, still = run(go())
    assert pins[0].image == f"{registry.host}/{repo}:1.4.2@{digest}"
    assert pins[0].digest == digest
    assert in_sync is not None and not in_sync.drifted and in_sync.reason == "InSync"
    assert drifted is not None and drifted.drifted and drifted.current != digest
    assert "Stella keeps deploying the pinned digest" in drifted.message
    assert still.ok  # drift is reported, never followed: the pinned digest still verifies


def test_manifest_index_verifies(registry: Registry) -> None:
    """An OCI image index (multi-arch) verifies like a manifest."""
    repo = uid("shop/multi")
    child = push(registry, repo, tag="amd64")
    child_digest = child.rsplit("@", 1)[1]
    with urllib.request.urlopen(
        urllib.request.Request(
            f"{registry.url}/v2/{repo}/manifests/{child_digest}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
    ) as r:
        size = len(r.read())
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": child_digest,
                    "size": size,
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    ).encode()
    req = urllib.request.Request(
        f"{registry.url}/v2/{repo}/manifests/multi",
        data=index,
        method="PUT",
        headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
    )
    urllib.request.urlopen(req).close()
    digest = "sha256:" + hashlib.sha256(index).hexdigest()

    async def go() -> Any:
        async with client_for(registry) as c:
            return await c.verify_digest(f"{registry.host}/{repo}@{digest}")

    m = run(go())
    assert m.media_type == "application/vnd.oci.image.index.v1+json"


def test_static_credentials_lookup(registry_basic: Registry) -> None:
    image = push(registry_basic, uid("shop/web"), auth=basic_auth(BASIC_USER, BASIC_PASSWORD))
    creds = RegistryCredentials(BASIC_USER, SecretValue(BASIC_PASSWORD))

    async def go() -> Any:
        async with client_for(registry_basic) as c:
            return await verify_release_images(
                c, [image], static_credentials(creds, [registry_basic.host])
            )

    assert run(go()).ok


def test_bearer_token_is_fetched_again_when_it_expires(
    registry_token: Registry, token_server: Any, token_user: tuple[str, str]
) -> None:
    repo = uid("shop/web")
    push_token = token_server.issue("p", [f"repository:{repo}:pull,push"])
    image = push(registry_token, repo, auth=f"Bearer {push_token}")
    creds = RegistryCredentials(token_user[0], SecretValue(token_user[1]))
    token_server.expires_in = 2  # cached for 1.5 s (expiry minus a quarter)
    try:

        async def go() -> tuple[int, int]:
            async with client_for(registry_token, extra=(token_server.host,)) as c:
                await c.verify_digest(image, creds)
                await c.verify_digest(image, creds)
                assert c.token_fetches == 1
                await asyncio.sleep(1.6)
                await c.verify_digest(image, creds)
                # known bearer host: the new token is fetched up front, no extra 401 round trip
                return c.token_fetches, c.requests

        fetches, requests = run(go())
    finally:
        token_server.expires_in = 300
    assert fetches == 2
    assert requests == (1 + 1 + 1) + 1 + (1 + 1)
