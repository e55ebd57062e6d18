"""Image reference parsing, WWW-Authenticate parsing and report classification: no I/O."""

from __future__ import annotations

import asyncio

import pytest

from stella.registry import (
    DigestMismatch,
    ImageRef,
    InvalidImageReference,
    ManifestNotFound,
    RegistryClient,
    RegistryCredentials,
    RegistryUnavailable,
    parse_image_ref,
    parse_pinned,
    parse_www_authenticate,
    verify_release_images,
)
from stella.registry.verify import ImageCheck, VerificationReport
from stella.secrets import SecretValue

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("nginx", ImageRef("docker.io", "library/nginx")),
        ("nginx:1.25", ImageRef("docker.io", "library/nginx", tag="1.25")),
        ("bitnami/redis:7", ImageRef("docker.io", "bitnami/redis", tag="7")),
        ("docker.io/nginx", ImageRef("docker.io", "library/nginx")),
        ("index.docker.io/library/nginx", ImageRef("docker.io", "library/nginx")),
        ("localhost/app", ImageRef("localhost", "app")),
        ("localhost:5000/app:v1", ImageRef("localhost:5000", "app", tag="v1")),
        ("127.0.0.1:5000/shop/web@" + D, ImageRef("127.0.0.1:5000", "shop/web", digest=D)),
        (
            "registry.example.com/shop/web:1.4.2@" + D,
            ImageRef("registry.example.com", "shop/web", tag="1.4.2", digest=D),
        ),
        ("ghcr.io/org/a/b/c:x_y.z-1", ImageRef("ghcr.io", "org/a/b/c", tag="x_y.z-1")),
        ("[::1]:5000/app", ImageRef("[::1]:5000", "app")),
        ("reg.io/a__b/c-d/e.f:t", ImageRef("reg.io", "a__b/c-d/e.f", tag="t")),
    ],
)
def test_parse(text: str, ref: ImageRef) -> None:
    assert parse_image_ref(text) == ref
    assert parse_image_ref(str(ref)) == ref


def test_api_host_and_str() -> None:
    ref = parse_image_ref("nginx@" + D)
    assert ref.api_host == "registry-1.docker.io"
    assert str(ref) == "docker.io/library/nginx@" + D
    assert parse_image_ref("reg.io:443/x").api_host == "reg.io:443"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("reg.io/Shop/web", "invalid path component"),
        ("reg.io/shop/web:", "invalid tag"),
        ("reg.io/shop/web:-x", "invalid tag"),
        ("reg.io/shop/web@sha256:abc", "malformed digest"),
        ("reg.io/shop/web@sha512:" + "a" * 128, "Stella pins sha256"),
        ("reg.io/shop/web@" + D + "@" + D, "more than one '@'"),
        ("reg.io/sh op", "whitespace"),
        ("reg.io/a//b", "invalid path component"),
        ("bad_host.io:x/a", "invalid registry host"),
    ],
)
def test_parse_errors(text: str, fragment: str) -> None:
    with pytest.raises(InvalidImageReference, match=fragment):
        parse_image_ref(text)


def test_parse_pinned_requires_a_digest() -> None:
    with pytest.raises(InvalidImageReference, match="--from-tags"):
        parse_pinned("reg.io/shop/web:1.0")
    assert parse_pinned("reg.io/shop/web:1.0@" + D).digest == D


def test_www_authenticate() -> None:
    c = parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull,push"'
    )
    assert c is not None and c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/alpine:pull,push",
    }
    b = parse_www_authenticate('Basic realm="stella \\"test\\""')
    assert b is not None and b.scheme == "basic" and b.params["realm"] == 'stella "test"'
    assert parse_www_authenticate(None) is None
    assert parse_www_authenticate("") is None


def test_credentials_repr_hides_the_password() -> None:
    creds = RegistryCredentials("ci", SecretValue("pw-canary"))
    assert "pw-canary" not in repr(creds)
    assert creds.basic_header() == "Basic Y2k6cHctY2FuYXJ5"


def check(reason: str, halts: bool = False, retry: float | None = None) -> ImageCheck:
    return ImageCheck(
        image="i",
        ok=reason == "Verified",
        reason=reason,
        message=reason,
        halts=halts,
        retry_after=retry,
    )


def test_report_classification() -> None:
    ok = VerificationReport((check("Verified"),))
    assert ok.ok and not ok.halts and ok.reason == "Verified"
    mixed = VerificationReport(
        (check("Verified"), check("RegistryUnavailable", retry=5), check("ManifestNotFound", True))
    )
    assert not mixed.ok and mixed.halts and mixed.reason == "ManifestNotFound"
    assert mixed.retry_after == 5
    assert "2 of 3 image(s) failed" in mixed.message
    worst = VerificationReport((check("ManifestNotFound", True), check("DigestMismatch", True)))
    assert worst.reason == "DigestMismatch"
    down = VerificationReport((check("VaultUnavailable", retry=3),))
    assert not down.halts and down.reason == "VaultUnavailable"


def test_error_classes() -> None:
    assert DigestMismatch("m", image="i", expected="a", actual="b", header=None).halts
    assert ManifestNotFound("m").halts
    assert not RegistryUnavailable("m").halts and RegistryUnavailable("m").transient


def test_unpinned_and_bad_images_fail_without_io() -> None:
    async def go() -> VerificationReport:
        async with RegistryClient() as c:
            return await verify_release_images(c, ["reg.io/shop/web:1.0", "NOT VALID"])

    report = asyncio.run(go())
    assert [c.reason for c in report.checks] == ["InvalidImageReference"] * 2
    assert not report.halts


def test_client_from_env() -> None:
    c = RegistryClient.from_env(
        {
            "STELLA_INSECURE_REGISTRIES": "127.0.0.1:5000, Localhost:5001,",
            "STELLA_REGISTRY_TIMEOUT": "3",
        }
    )
    assert c.insecure_registries == {"127.0.0.1:5000", "localhost:5001"}
    assert c.scheme("127.0.0.1:5000") == "http" and c.scheme("reg.io") == "https"
    assert c.breaker_states() == {}
    RegistryClient.from_env({}, timeout=1.0)
