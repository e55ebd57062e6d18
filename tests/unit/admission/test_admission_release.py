"""Release rules: pinned digests, allowed registries, existing environments, allowed
namespace, immutability."""

from __future__ import annotations

from typing import Any

import pytest
from admission_factories import (
    ALICE,
    OPERATOR_ID,
    POLICY,
    REGISTRY,
    create,
    edited,
    environment_body,
    image,
    release_body,
    update,
    world,
)

from stella.admission import Request, validate

D = "0123456789abcdef" * 4


def verdict_for(body: dict[str, Any], view: Any = None) -> Any:
    return validate(create("Release", body, ALICE), view or world(), POLICY)


def test_a_good_release_is_admitted() -> None:
    verdict = verdict_for(release_body())
    assert verdict.allowed and verdict.rule == "ok" and verdict.message == ""


@pytest.mark.parametrize(
    "bad",
    [
        f"{REGISTRY}/shop/web:1.4.2",
        f"{REGISTRY}/shop/web",
        f"{REGISTRY}/shop/web@sha256:{D[:63]}",
        f"{REGISTRY}/shop/web@sha256:{D.upper()}",
        f"{REGISTRY}/shop/web@sha512:{D}{D}",
        f"{REGISTRY}/shop/web@sha256:{D} ",
        f"{REGISTRY}/shop/web@sha256:{D}\n",
        f"{REGISTRY}/shop/web@@sha256:{D}",
        "",
        "wéb@sha256:" + "0" * 63 + "é",
    ],
)
def test_unpinned_images_are_refused(bad: str) -> None:
    verdict = verdict_for(release_body(images=(image(1), bad)))
    assert not verdict.allowed
    assert verdict.rule == "release.digest-pinned"
    assert "spec.components[1].image" in verdict.message
    assert "repo@sha256:<64 lowercase hex>" in verdict.message


def test_a_pinned_but_malformed_reference_is_refused() -> None:
    verdict = verdict_for(release_body(images=(f"{REGISTRY}/Shop/Web@sha256:{D}",)))
    assert not verdict.allowed and verdict.rule == "release.image-invalid"
    assert "fix the image reference" in verdict.message


def test_a_tag_before_the_digest_is_fine() -> None:
    assert verdict_for(release_body(images=(f"{REGISTRY}/shop/web:1.4.2@sha256:{D}",))).allowed


def test_registry_not_allowed_by_a_target() -> None:
    verdict = verdict_for(release_body(images=(image(1, "ghcr.io/evil/web"),)))
    assert not verdict.allowed and verdict.rule == "release.registry-not-allowed"
    assert "ghcr.io" in verdict.message and "Environment dev does not allow" in verdict.message
    assert "spec.allowedRegistries" in verdict.message


def test_registry_hosts_compare_case_insensitively_and_docker_hub_aliases() -> None:
    view = world()
    for env in ("dev", "staging", "prod"):
        view.environments[env]["spec"]["allowedRegistries"] = [
            "Registry.Example.COM",
            "index.docker.io",
        ]
    body = release_body(
        images=(image(1), "nginx@sha256:" + D, "docker.io/library/redis@sha256:" + D)
    )
    assert verdict_for(body, view).allowed


def test_empty_allowed_registries_admits_any_registry_with_a_warning() -> None:
    view = world()
    view.environments["dev"]["spec"]["allowedRegistries"] = []
    verdict = verdict_for(release_body(images=(image(1),), environments=("dev",)), view)
    assert verdict.allowed
    assert any("no allowedRegistries" in w for w in verdict.warnings)


def test_unknown_environment() -> None:
    verdict = verdict_for(release_body(environments=("dev", "qa")))
    assert not verdict.allowed and verdict.rule == "release.unknown-environment"
    assert "create Environment qa first or fix spec.environments" in verdict.message


def test_an_invalid_stored_environment_fails_closed() -> None:
    view = world()
    view.environments["dev"] = environment_body("dev", approvals={"required": "many"})
    verdict = verdict_for(release_body(), view)
    assert not verdict.allowed and verdict.rule == "release.environment-invalid"


@pytest.mark.parametrize(
    ("namespace", "allowed"),
    [("shop", True), ("other", False), ("unknown-ns", False)],
)
def test_namespace_must_match_release_namespaces(namespace: str, allowed: bool) -> None:
    body = release_body(namespace=namespace)
    verdict = verdict_for(body)
    assert verdict.allowed is allowed
    if not allowed:
        assert verdict.rule == "release.namespace-not-allowed"
        assert "prod" in verdict.message


def test_no_release_namespaces_means_any_namespace() -> None:
    body = release_body(namespace="other", environments=("dev",))
    assert verdict_for(body).allowed


def test_a_path_that_cannot_complete_is_a_warning() -> None:
    verdict = verdict_for(release_body(environments=("prod",)))
    assert verdict.allowed
    assert any("add staging to spec.environments" in w for w in verdict.warnings)


def test_a_literal_secret_in_the_description_is_refused() -> None:
    body = release_body()
    body["spec"]["description"] = "deploy with token ghp_abcdefghijklmnopqrstuvwxyz0123456789"
    verdict = verdict_for(body)
    assert not verdict.allowed and verdict.rule == "secret.literal"
    assert "ghp_" not in verdict.message


@pytest.mark.parametrize(
    ("mutation", "rule"),
    [
        (lambda s: s.pop("environments"), "schema"),
        (lambda s: s.update(components=[]), "schema"),
        (lambda s: s.update(unexpected=1), "schema"),
        (lambda s: s.update(environments="prod"), "schema"),
        (lambda s: s["components"][0].update(image=42), "schema"),
    ],
)
def test_schema_errors_name_the_field(mutation: Any, rule: str) -> None:
    body = release_body()
    mutation(body["spec"])
    verdict = verdict_for(body)
    assert not verdict.allowed and verdict.rule == rule
    assert verdict.message.startswith("Release spec")
    assert "fix the manifest" in verdict.message


def test_spec_is_immutable_for_everyone() -> None:
    old = release_body()

    def bump(b: dict[str, Any]) -> None:
        b["spec"]["components"][0]["image"] = image(2)

    for user in (ALICE, OPERATOR_ID):
        verdict = validate(update("Release", old, edited(old, bump), user), world(), POLICY)
        assert not verdict.allowed and verdict.rule == "release.immutable"
        assert "create a new Release" in verdict.message


def test_metadata_updates_and_deletes_are_fine() -> None:
    old = release_body()

    def label(b: dict[str, Any]) -> None:
        b["metadata"]["labels"] = {"team": "shop"}
        b["metadata"]["finalizers"] = ["stella.io/finalizer"]

    assert validate(update("Release", old, edited(old, label), ALICE), world(), POLICY).allowed
    req = Request("DELETE", "Release", "shop", "shop-1-4-2", ALICE, None, old)
    assert validate(req, world(), POLICY).allowed
