"""The Vault client against real OpenBao: KV, AppRole with short TTLs, fail closed, recovery."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest

from devenv.proc import free_port
from devenv.services import OpenBao
from stella.secrets import (
    AppRoleAuth,
    BreakerPolicy,
    BreakerState,
    SecretNotFound,
    SecretValue,
    TokenAuth,
    VaultAuthFailed,
    VaultClient,
    VaultSettings,
    VaultUnavailable,
)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def admin(openbao: OpenBao) -> hvac.Client:
    return hvac.Client(url=openbao.addr, token=openbao.root_token)


@pytest.fixture(scope="module")
def approle(admin: hvac.Client) -> str:
    """AppRole auth enabled once; a policy that may read secret/data/stella/*."""
    if "approle/" not in admin.sys.list_auth_methods():
        admin.sys.enable_auth_method("approle")
    admin.sys.create_or_update_policy(
        "stella-test-read", 'path "secret/data/stella/*" { capabilities = ["read"] }'
    )
    return "approle"


def make_role(admin: hvac.Client, tmp_path: Path, **ttl: str) -> AppRoleAuth:
    name = uid("stella-operator")
    admin.auth.approle.create_or_update_approle(
        role_name=name, token_policies=["stella-test-read"], **ttl
    )
    role_id = admin.auth.approle.read_role_id(name)["data"]["role_id"]
    secret_id = admin.auth.approle.generate_secret_id(name)["data"]["secret_id"]
    sid_file = tmp_path / "secret-id"
    sid_file.write_text(secret_id)
    sid_file.chmod(0o600)
    return AppRoleAuth(role_id=role_id, secret_id_file=sid_file)


def state(vault: VaultClient) -> BreakerState:
    """vault.state read afresh (mypy keeps an asserted attribute narrowed across calls)."""
    return vault.state


def root_client(openbao: OpenBao, **kw: Any) -> VaultClient:
    return VaultClient(
        VaultSettings(
            addr=openbao.addr, auth=TokenAuth(token=SecretValue(openbao.root_token)), **kw
        )
    )


def test_read_kv2_with_a_token(openbao: OpenBao, admin: hvac.Client) -> None:
    path = uid("stella/registry")
    admin.secrets.kv.v2.create_or_update_secret(
        path=path, secret={"username": "ci", "token": "tok-VALUE-1"}
    )
    vault = root_client(openbao)
    value = vault.read(f"vault:secret/{path}#token")
    assert isinstance(value, SecretValue)
    assert value.reveal() == "tok-VALUE-1"
    assert "tok-VALUE-1" not in repr(value) and "tok-VALUE-1" not in f"{value}"
    # the KV v2 API form names the same secret
    assert vault.read(f"vault:secret/data/{path}#token") == value
    both = vault.read_keys(f"vault:secret/{path}#token", "username")
    assert both["username"].reveal() == "ci"
    assert vault.logins == 1  # a root token: looked up once, never renewed


def test_missing_secret_and_key_say_how_to_store_them(openbao: OpenBao, admin: hvac.Client) -> None:
    path = uid("stella/registry")
    vault = root_client(openbao)
    with pytest.raises(SecretNotFound) as exc:
        vault.read(f"vault:secret/{path}#token")
    assert f"bao kv put secret/{path} token=..." in exc.value.message
    admin.secrets.kv.v2.create_or_update_secret(path=path, secret={"password": "pw-SECRET"})
    with pytest.raises(SecretNotFound) as exc:
        vault.read(f"vault:secret/{path}#token")
    assert "its keys: password" in exc.value.message
    assert "pw-SECRET" not in exc.value.message
    assert vault.state is BreakerState.CLOSED  # a missing secret is not an outage


def test_aread_from_asyncio(openbao: OpenBao, admin: hvac.Client) -> None:
    path = uid("stella/x")
    admin.secrets.kv.v2.create_or_update_secret(path=path, secret={"k": "v"})
    vault = root_client(openbao)
    assert asyncio.run(vault.aread(f"vault:secret/{path}#k")).reveal() == "v"


def test_approle_short_lived_tokens_renew_then_log_in_again(
    openbao: OpenBao, admin: hvac.Client, approle: str, tmp_path: Path
) -> None:
    path = uid("stella/registry")
    admin.secrets.kv.v2.create_or_update_secret(path=path, secret={"token": "t1"})
    auth = make_role(admin, tmp_path, token_ttl="3s", token_max_ttl="6s")
    vault = VaultClient(VaultSettings(addr=openbao.addr, auth=auth))
    ref = f"vault:secret/{path}#token"
    assert vault.read(ref).reveal() == "t1"
    assert (vault.logins, vault.renewals) == (1, 0)
    time.sleep(2.2)  # under a third of the TTL left: renew
    assert vault.read(ref).reveal() == "t1"
    assert vault.logins == 1 and vault.renewals == 1
    time.sleep(4.2)  # past the max TTL: the token is dead, so log in again
    assert vault.read(ref).reveal() == "t1"
    assert vault.logins == 2
    vault.close()


def test_revoked_token_logs_in_again(
    openbao: OpenBao, admin: hvac.Client, approle: str, tmp_path: Path
) -> None:
    path = uid("stella/registry")
    admin.secrets.kv.v2.create_or_update_secret(path=path, secret={"token": "t2"})
    vault = VaultClient(VaultSettings(addr=openbao.addr, auth=make_role(admin, tmp_path)))
    ref = f"vault:secret/{path}#token"
    assert vault.read(ref).reveal() == "t2"
    admin.auth.token.revoke(vault._client.token)  # behind the client's back
    assert vault.read(ref).reveal() == "t2"
    assert vault.logins == 2


def test_policy_denial_is_vault_auth_failed(
    openbao: OpenBao, admin: hvac.Client, approle: str, tmp_path: Path
) -> None:
    path = uid("other/registry")  # outside secret/data/stella/*
    admin.secrets.kv.v2.create_or_update_secret(path=path, secret={"token": "t3"})
    vault = VaultClient(VaultSettings(addr=openbao.addr, auth=make_role(admin, tmp_path)))
    with pytest.raises(VaultAuthFailed, match="denied"):
        vault.read(f"vault:secret/{path}#token")


def test_bad_secret_id_is_vault_auth_failed(
    openbao: OpenBao, admin: hvac.Client, approle: str, tmp_path: Path
) -> None:
    auth = make_role(admin, tmp_path)
    auth.secret_id_file.write_text("00000000-0000-0000-0000-000000000000")
    vault = VaultClient(VaultSettings(addr=openbao.addr, auth=auth))
    with pytest.raises(VaultAuthFailed, match="login failed") as exc:
        vault.read("vault:secret/stella/x#token")
    assert "00000000-0000" not in exc.value.message


def test_token_from_file_and_from_env(openbao: OpenBao, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(openbao.root_token + "\n")
    s = VaultSettings.from_env(
        {"STELLA_VAULT_ADDR": openbao.addr, "STELLA_VAULT_TOKEN_FILE": str(token_file)}
    )
    VaultClient(s).check()
    s = VaultSettings.from_env({"VAULT_ADDR": openbao.addr, "VAULT_TOKEN": openbao.root_token})
    assert openbao.root_token not in repr(s)
    VaultClient(s).check()


@pytest.fixture
def own_bao(tmp_path: Path) -> Iterator[OpenBao]:
    """An OpenBao of this test's own, to stop and start (dev mode: memory only)."""
    bao = OpenBao(tmp_path / "bao", port=free_port()).start()
    yield bao
    bao.stop()


def seed(bao: OpenBao, path: str, data: dict[str, str]) -> None:
    hvac.Client(url=bao.addr, token=bao.root_token).secrets.kv.v2.create_or_update_secret(
        path=path, secret=data
    )


def test_vault_down_fails_closed_then_recovers_without_restart(
    own_bao: OpenBao, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "canary-" + uuid.uuid4().hex
    seed(own_bao, "stella/registry", {"token": canary})
    vault = VaultClient(
        VaultSettings(
            addr=own_bao.addr,
            auth=TokenAuth(token=SecretValue(own_bao.root_token)),
            timeout=2,
            breaker=BreakerPolicy(failure_threshold=2, base_backoff=1.0, jitter=0),
        )
    )
    ref = "vault:secret/stella/registry#token"
    assert vault.read(ref).reveal() == canary

    own_bao.stop()
    started = time.monotonic()
    errors = []
    for _ in range(3):
        with pytest.raises(VaultUnavailable) as exc:
            vault.read(ref)
        errors.append(exc.value)
    assert time.monotonic() - started < 2
    assert "cannot reach Vault" in errors[0].message
    assert "circuit breaker open" in errors[2].message
    assert errors[2].retry_after is not None and errors[2].retry_after >= 0.5
    assert vault.state is BreakerState.OPEN

    own_bao.start()  # same port, empty (dev mode keeps nothing): seed again
    seed(own_bao, "stella/registry", {"token": canary})
    with pytest.raises(VaultUnavailable, match="circuit breaker"):
        vault.read(ref)  # still open: no call goes out before the backoff ends
    time.sleep(1.1)
    assert vault.read(ref).reveal() == canary  # the half-open trial succeeds
    assert state(vault) is BreakerState.CLOSED

    for err in errors:
        assert canary not in str(err)
    assert canary not in caplog.text


def test_call_runs_other_vault_apis_with_the_managed_token(
    openbao: OpenBao, admin: hvac.Client
) -> None:
    if "transit/" not in admin.sys.list_mounted_secrets_engines():
        admin.sys.enable_secrets_engine("transit")
    name = uid("stella-key")
    admin.secrets.transit.create_key(name, key_type="ed25519")
    vault = root_client(openbao)
    resp = vault.call(lambda c: c.secrets.transit.read_key(name=name))
    assert resp["data"]["type"] == "ed25519"
    with pytest.raises(SecretNotFound):
        vault.call(lambda c: c.secrets.transit.read_key(name="no-such-key"))
