"""The registry check a promotion makes right before it deploys (engine/gates.py): an image
from a registry the Environment no longer allows is found, Docker Hub's aliases are one
registry, and no list allows every registry."""

from __future__ import annotations

from stella.registry.reference import foreign_registry, normalize_registry

D = "@sha256:" + "a" * 64


def test_an_image_from_a_registry_not_allowed_is_found() -> None:
    images = [f"registry.example.com/shop/web{D}", f"evil.example/shop/api{D}"]
    assert foreign_registry(images, ["registry.example.com"]) == (images[1], "evil.example")
    assert foreign_registry(images, ["Registry.Example.com", "evil.example"]) is None
    assert foreign_registry(images, []) is None  # no list: every registry (admission warns)


def test_docker_hubs_aliases_are_one_registry() -> None:
    assert normalize_registry("Index.Docker.IO") == normalize_registry("docker.io")
    assert foreign_registry([f"library/nginx{D}"], ["registry-1.docker.io"]) is None


def test_an_image_that_does_not_parse_is_never_allowed() -> None:
    assert foreign_registry(["Not An Image"], ["registry.example.com"]) == (
        "Not An Image",
        "(not an image reference)",
    )
