"""Verification needs Vault for credentials: Vault down fails closed; nothing leaks the password."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import hvac
import pytest

from devenv.proc import free_port
from devenv.services import OpenBao, Registry, basic_auth, push_image
from stella.registry import RegistryClient, vault_credentials, verify_release_images
from stella.secrets import BreakerPolicy, SecretValue, TokenAuth, VaultClient, VaultSettings


def test_vault_down_fails_verification_closed_then_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "canary-" + uuid.uuid4().hex  # the registry password: must never show up
    reg = Registry(tmp_path / "reg", htpasswd={"stella": canary}).start()
    bao = OpenBao(tmp_path / "bao", port=free_port()).start()
    try:
        digest = push_image(reg.url, "shop/web", "v1", b"layer", basic_auth("stella", canary))
        image = f"{reg.host}/shop/web:v1@{digest}"

        def seed() -> None:
            hvac.Client(url=bao.addr, token=bao.root_token).secrets.kv.v2.create_or_update_secret(
                path="registry/prod", secret={"username": "stella", "password": canary}
            )

        seed()
        vault = VaultClient(
            VaultSettings(
                addr=bao.addr,
                auth=TokenAuth(token=SecretValue(bao.root_token)),
                breaker=BreakerPolicy(failure_threshold=1, base_backoff=0.5, jitter=0),
            )
        )
        lookup = vault_credentials(vault, "vault:secret/registry/prod#password", [reg.host])

        async def verify() -> Any:
            async with RegistryClient(insecure_registries={reg.host}) as c:
                return await verify_release_images(c, [image], lookup)

        ok = asyncio.run(verify())
        assert ok.ok, ok.message

        bao.stop()
        down = asyncio.run(verify())
        assert not down.ok and not down.halts
        assert down.reason == "VaultUnavailable"
        assert down.retry_after is not None

        bao.start()
        seed()
        time.sleep(0.6)
        back = asyncio.run(verify())
        assert back.ok, back.message

        for report in (ok, down, back):
            assert canary not in repr(report)
            assert canary not in report.message
        assert canary not in caplog.text
    finally:
        bao.stop()
        reg.stop()
