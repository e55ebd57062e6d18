"""The CRDs in crds/ are generated from the models; this fails when they are stale."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "hack"))

import gen_crds  # noqa: E402
from stella.models import ALL_KINDS  # noqa: E402
from stella.models.crdgen import crd_for  # noqa: E402


@pytest.mark.parametrize("target", gen_crds.TARGETS)
def test_checked_in_crds_match_the_models(target: str) -> None:
    stale = [
        name
        for name, text in gen_crds.expected().items()
        if not (ROOT / target / name).exists() or (ROOT / target / name).read_text() != text
    ]
    assert not stale, f"{target}/ is stale for {stale}; run `make crds`"


def _walk(node: object, path: str = "") -> list[str]:
    """Every violation of the structural-schema rules the API server enforces."""
    problems: list[str] = []
    if isinstance(node, dict):
        for bad in ("$ref", "anyOf", "oneOf", "allOf", "const", "title"):
            if bad in node and path.count("x-kubernetes") == 0:
                problems.append(f"{path}: {bad}")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: properties with additionalProperties")
        if ("properties" in node or "items" in node) and "type" not in node:
            problems.append(f"{path}: no type")
        for key, value in node.items():
            problems += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            problems += _walk(value, f"{path}[{i}]")
    return problems


@pytest.mark.parametrize("info", ALL_KINDS, ids=lambda k: k.kind)
def test_schemas_are_structural(info: object) -> None:
    crd = crd_for(info)  # type: ignore[arg-type]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _walk(schema) == []


def test_release_schema_carries_the_rules_the_api_server_enforces() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "stella.io_releases.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    image = spec["properties"]["components"]["items"]["properties"]["image"]
    assert image["pattern"] == r"^[^@\s]+@sha256:[a-f0-9]{64}$"
    assert spec["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["rel"] and names["categories"] == ["stella"]
    kind = spec["properties"]["components"]["items"]["properties"]["workload"]["properties"]["kind"]
    assert kind["enum"] == ["Deployment", "StatefulSet", "DaemonSet"]


def test_conditions_are_list_maps_keyed_by_type() -> None:
    for info in ALL_KINDS:
        status = crd_for(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
            "status"
        ]
        conds = status["properties"]["conditions"]
        assert conds["x-kubernetes-list-type"] == "map"
        assert conds["x-kubernetes-list-map-keys"] == ["type"]
