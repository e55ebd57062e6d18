"""`stella release create --from-tags` against the real registry."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from devenv.services import Registry, push_image
from stella.cli import main
from stella.models.release import ReleaseSpec


def stella(argv: list[str]) -> int:
    return main(argv)


def test_release_create_from_tags_with_flags(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = f"shop/web-{uuid.uuid4().hex[:8]}"
    digest = push_image(registry.url, repo, "1.4.2", b"web layer " + uuid.uuid4().bytes)
    code = stella(
        [
            "release", "create", "shop-1-4-2", "-n", "shop", "--version", "1.4.2",
            "--environments", "dev,prod", "--from-tags",
            "--component", f"web={registry.host}/{repo}:1.4.2",
            "--workload", "web=Deployment/web-frontend/nginx",
            "--insecure-registry", registry.host,
        ]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    doc = yaml.safe_load(out.out)
    assert doc["kind"] == "Release" and doc["metadata"] == {
        "name": "shop-1-4-2",
        "namespace": "shop",
    }
    comp = doc["spec"]["components"][0]
    assert comp["image"] == f"{registry.host}/{repo}:1.4.2@{digest}"
    assert comp["workload"] == {"kind": "Deployment", "name": "web-frontend", "container": "nginx"}
    ReleaseSpec.model_validate(doc["spec"])


def test_release_create_from_tags_with_a_file(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = f"shop/api-{uuid.uuid4().hex[:8]}"
    digest = push_image(registry.url, repo, "2.0", b"api layer " + uuid.uuid4().bytes)
    f = tmp_path / "release.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "stella.io/v1alpha1",
                "kind": "Release",
                "metadata": {"name": "api-2-0"},
                "spec": {
                    "version": "2.0",
                    "environments": ["dev"],
                    "components": [
                        {
                            "name": "api",
                            "image": f"{registry.host}/{repo}:2.0",
                            "workload": {"kind": "Deployment", "name": "api", "container": "api"},
                        }
                    ],
                },
            }
        )
    )
    code = stella(
        ["release", "create", "--from-tags", "-f", str(f), "-n", "shop", "-o", "json",
         "--insecure-registry", registry.host]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert f"{repo}:2.0@{digest}" in out.out


def test_release_create_unknown_tag_fails(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    code = stella(
        ["release", "create", "r", "--version", "1", "--environments", "dev", "--from-tags",
         "--component", f"web={registry.host}/shop/none-{uuid.uuid4().hex[:6]}:1",
         "--insecure-registry", registry.host]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 1
    assert "has no tag 1" in out.err
    assert out.out == ""
