"""Vault references and the literal-secret heuristic: pure, no I/O."""

from __future__ import annotations

import re

import pytest

from stella.models.common import VAULT_REF
from stella.secrets import BadReference, VaultRef, is_vault_ref, looks_like_secret, parse_vault_ref
from stella.secrets.refs import refuse_literal


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("vault:secret/registry/prod#token", VaultRef("secret", "registry/prod", "token")),
        ("vault:kv/a#b", VaultRef("kv", "a", "b")),
        ("vault:secret/data/registry/prod#token", VaultRef("secret", "registry/prod", "token")),
        ("vault:secret/data#token", VaultRef("secret", "data", "token")),
        ("vault:my_mount/a.b/c-d/e_f#k.e-y_1", VaultRef("my_mount", "a.b/c-d/e_f", "k.e-y_1")),
    ],
)
def test_parse(text: str, ref: VaultRef) -> None:
    assert parse_vault_ref(text) == ref
    assert re.match(VAULT_REF, str(ref))
    assert parse_vault_ref(str(ref)) == ref


def test_literal_password_gets_an_actionable_message_without_the_value() -> None:
    with pytest.raises(BadReference) as exc:
        parse_vault_ref(
            "hunter2-Sup3rSecret!", "registryCredentials", suggest_path="secret/registry/prod"
        )
    assert exc.value.message == (
        "registryCredentials holds a literal value; store it in Vault "
        "(bao kv put secret/registry/prod token=...) and write vault:secret/registry/prod#token"
    )
    assert "hunter2" not in str(exc.value)
    assert exc.value.reason == "BadVaultReference"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "is empty"),
        ("VAULT:secret/a#b", "lowercase 'vault:'"),
        ("vault:secret/registry/prod", "names no key"),
        ("vault:secret/a#b#c", "more than one '#'"),
        ("vault:secret/a#", "empty or invalid key"),
        ("vault:secret/a#p@ss word", "empty or invalid key"),
        ("vault:/a#b", "invalid mount"),
        ("vault:secret#b", "names no path"),
        ("vault:secret//a#b", "names no path"),
        ("vault:secret/a b#c", "path segment"),
        ("vault:secret/../a#c", "path segment"),
        ("vault:" + "a/" * 300 + "#k", "longer than 512"),
    ],
)
def test_malformed(text: str, fragment: str) -> None:
    with pytest.raises(BadReference, match=re.escape(fragment)):
        parse_vault_ref(text, "registryCredentials")
    assert not is_vault_ref(text)


def test_schema_pattern_and_parser_agree_on_samples() -> None:
    samples = [
        "vault:secret/a#b",
        "vault:secret/a/b/c#d",
        "vault:s/a#b#c",
        "vault:secret#b",
        "vault:se cret/a#b",
        "vault:secret/a#",
        "vault:secret/a/#b",
    ]
    for s in samples:
        assert is_vault_ref(s) == bool(re.match(VAULT_REF, s)), s


def test_refuse_literal() -> None:
    assert refuse_literal("signerKey", "vault:transit/keys/stella#pub") is None
    msg = refuse_literal("signerKey", "-----BEGIN PRIVATE KEY-----")
    assert msg is not None and "BEGIN" not in msg and "bao kv put" in msg


@pytest.mark.parametrize(
    "text",
    [
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "glpat-abcdefghijklmnopqrst",
        "AKIAIOSFODNN7EXAMPLE",
        "hvs.CAESIJlWh2Fv3k7aM2nVYb6QGzF8",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlLXZhbHVl",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE...",
        "https://bob:hunter2@registry.example.com",
        "password=hunter22",
        "the token: Zk9!aQ2#xP7$wL3@mN8&",
        "Bearer abcdefgh12345678",
        "xoxb-1234567890-abcdefghij",
    ],
)
def test_looks_like_secret(text: str) -> None:
    assert looks_like_secret(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "CAB-1234 approved after the change review",
        "Release 1.4.2 of the shop, hotfix for checkout",
        "sha256:" + "a" * 64,
        "registry.example.com/shop/web@sha256:" + "b" * 64,
        "vault:secret/registry/prod#token",
        "commit 3f2c1e0b9a8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b",
        "https://jira.example.com/browse/OPS-42",
    ],
)
def test_does_not_look_like_secret(text: str) -> None:
    assert not looks_like_secret(text)
