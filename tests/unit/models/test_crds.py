"""The CRDs in crds/ are generated from the models; this fails when they are stale."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "hack"))

import gen_crds  # noqa: E402
from stella.models import ALL_KINDS  # noqa: E402
from stella.models.crdgen import crd_for  # noqa: E402
from stella.models.resource import KindInfo  # noqa: E402


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


def _undescribed(node: dict[str, Any], path: str) -> list[str]:
    """Every property (at any depth: nested objects, list items, map values) without a
    description, as the field path `kubectl explain` takes."""
    missing: list[str] = []
    for name, prop in node.get("properties", {}).items():
        where = f"{path}.{name}"
        if where.count(".") == 1 and name == "metadata":
            # ObjectMeta: the API server describes it, and refuses a CRD that says more
            # than its type there.
            assert prop == {"type": "object"}, f"{where} must be exactly {{type: object}}"
            continue
        if not str(prop.get("description", "")).strip():
            missing.append(where)
        missing += _undescribed(prop, where)
    items = node.get("items")
    if isinstance(items, dict):
        missing += _undescribed(items, f"{path}[]")
    values = node.get("additionalProperties")
    if isinstance(values, dict):
        missing += _undescribed(values, f"{path}{{}}")
    return missing


@pytest.mark.parametrize("info", ALL_KINDS, ids=lambda k: k.kind)
def test_every_field_has_a_description(info: KindInfo) -> None:
    """`kubectl explain` never prints <no description>: every field says what to write."""
    for crd in (
        crd_for(info),
        yaml.safe_load((ROOT / "crds" / f"stella.io_{info.plural}.yaml").read_text()),
    ):
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert schema.get("description"), f"{info.kind} has no description"
        missing = _undescribed(schema, info.singular)
        assert not missing, f"fields without a description: {', '.join(missing)}"


def _descriptions(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["description"]] if isinstance(node.get("description"), str) else []
        return own + [d for v in node.values() for d in _descriptions(v)]
    if isinstance(node, list):
        return [d for v in node for d in _descriptions(v)]
    return []


@pytest.mark.parametrize("info", ALL_KINDS, ids=lambda k: k.kind)
def test_descriptions_carry_no_source_line_breaks(info: KindInfo) -> None:
    """A docstring wrapped in the source came out in `kubectl explain environment.spec`
    as "who" / "must" / "approve" on lines of their own."""
    broken = [
        d
        for d in _descriptions(crd_for(info)["spec"]["versions"][0]["schema"])
        if any("\n" in paragraph for paragraph in d.split("\n\n"))
    ]
    assert not broken, broken


def test_the_description_walk_finds_a_nested_field_without_one() -> None:
    schema = {
        "properties": {
            "spec": {
                "description": "d",
                "properties": {
                    "targets": {
                        "description": "d",
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"namespace": {"type": "string"}},
                        },
                    }
                },
            }
        }
    }
    assert _undescribed(schema, "environment") == ["environment.spec.targets[].namespace"]


@pytest.mark.parametrize(
    ("kind", "state"), [("Environment", "Ready"), ("Approval", "Counted"), ("Action", "Phase")]
)
def test_kubectl_get_shows_the_reason_beside_the_state(kind: str, state: str) -> None:
    """A suspended Environment, an Approval that does not count, an Action's outcome: each
    was a bare False or phase in `kubectl get`; the reason comes next to it."""
    info = next(k for k in ALL_KINDS if k.kind == kind)
    columns = crd_for(info)["spec"]["versions"][0]["additionalPrinterColumns"]
    names = [c["name"] for c in columns]
    assert names[names.index(state) + 1] == "Reason", names
    assert columns[names.index("Reason")].get("priority", 0) == 0  # in the default view


# Columns whose jsonPath still reaches a list: no operator writes these kinds' status, so
# there is no one-line form to point at yet. Do not add to this.
LIST_COLUMNS_LEFT = {("Receiver", "Environments"), ("PluginPublisher", "Keys")}
_STEP = re.compile(r"\.([A-Za-z0-9_]+)((?:\[[^\]]*\])*)")


def _column_problem(schema: dict[str, Any], json_path: str) -> str | None:
    """Why kube-apiserver would not print this column as one plain value, or None.

    Its table convertor (apiextensions-apiserver tableconvertor) prints the *first* value
    a jsonPath finds, and a list or object as JSON: .spec.requires came out as ["dev"], and
    .spec.requires[*] would have been only "dev" of dev,staging. A filter on a list keyed
    by it ([?(@.type=="Ready")] on conditions) finds one item, so it may be used."""
    if json_path.startswith(".metadata."):
        return None  # ObjectMeta: the API server's own schema
    node = schema
    for name, brackets in _STEP.findall(json_path):
        props = node.get("properties") or {}
        if name not in props:
            return f"{name}: no such field"
        node = props[name]
        for bracket in re.findall(r"\[[^\]]*\]", brackets):
            if node.get("type") != "array":
                return f"{name}{bracket}: not a list"
            keys = node.get("x-kubernetes-list-map-keys") or []
            if not (bracket.startswith("[?(@.") and bracket[5:].split("==")[0] in keys):
                return f"{name}{bracket}: prints only the first of many values"
            node = node["items"]
    if node.get("type") in ("array", "object"):
        return f"printed as JSON: {node['type']}"
    return None


@pytest.mark.parametrize("info", ALL_KINDS, ids=lambda k: k.kind)
def test_every_printer_column_shows_one_plain_value(info: KindInfo) -> None:
    """`kubectl get env` showed REQUIRES as ["staging"]: a column's jsonPath must reach
    one scalar (a list is written by the operator as one line in the status)."""
    crd = crd_for(info)
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    problems = {
        c["name"]: why
        for c in version["additionalPrinterColumns"]
        if (why := _column_problem(schema, c["jsonPath"])) is not None
        and (info.kind, c["name"]) not in LIST_COLUMNS_LEFT
    }
    assert not problems, problems


def test_the_column_check_finds_a_list() -> None:
    schema = {
        "properties": {
            "spec": {"type": "object", "properties": {"requires": {"type": "array"}}},
            "status": {
                "type": "object",
                "properties": {
                    "requires": {"type": "string"},
                    "conditions": {
                        "type": "array",
                        "x-kubernetes-list-map-keys": ["type"],
                        "items": {"type": "object", "properties": {"reason": {"type": "string"}}},
                    },
                },
            },
        }
    }
    assert _column_problem(schema, ".spec.requires") == "printed as JSON: array"
    assert "first of many" in str(_column_problem(schema, ".spec.requires[*]"))
    assert _column_problem(schema, ".status.requires") is None
    assert _column_problem(schema, '.status.conditions[?(@.type=="Ready")].reason') is None
    assert "first of many" in str(_column_problem(schema, ".status.conditions[*].reason"))
