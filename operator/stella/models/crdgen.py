"""Generate CustomResourceDefinitions from the pydantic models.

Pydantic's JSON Schema is close to, but not, a Kubernetes structural schema: it uses
$ref/$defs, anyOf-with-null for optionals, titles, and no notion of list-map keys.
This module rewrites it into OpenAPI v3 that the API server accepts as structural, so
the API server itself enforces patterns, enums, bounds and CEL rules before any webhook.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from stella import GROUP, VERSION
from stella.models.resource import KindInfo

_DROP = {"title", "discriminator"}
_KEEP = {
    "type",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "pattern",
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "maximum",
    "minimum",
    "format",
    "default",
    "description",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
    "nullable",
}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        merged = {**copy.deepcopy(defs[name]), **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    return {k: _resolve(v, defs) for k, v in node.items()}


def _structural(node: dict[str, Any]) -> dict[str, Any]:
    # Optional[X] arrives as anyOf [X, null]; an omitted field is how Kubernetes says null.
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {node}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        node = {**options[0], **{k: v for k, v in rest.items() if k != "default" or v is not None}}
    if "const" in node:
        node = {**{k: v for k, v in node.items() if k != "const"}, "enum": [node["const"]]}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key not in _KEEP:
            continue
        if key == "additionalProperties" and isinstance(value, bool):
            # Structural schemas forbid it beside properties; the API server prunes unknown
            # fields and `kubectl apply` (strict field validation) reports them.
            continue
        if key == "properties":
            out[key] = {name: _structural(sub) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _structural(value)
        elif key == "description" and isinstance(value, str):
            out[key] = _one_line_per_paragraph(value)
        elif key == "default" and value is None:
            continue
        elif key == "default" and value in ({}, []):
            # Empty defaults add noise to every stored object and say nothing.
            continue
        else:
            out[key] = value
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "format" in out and out["format"] not in {"date-time", "int64", "int32", "byte"}:
        del out["format"]
    _condition_list_map(out)
    order = ["type", "description"]
    return {k: out[k] for k in order if k in out} | {k: v for k, v in out.items() if k not in order}


def _one_line_per_paragraph(text: str) -> str:
    """A docstring's line breaks are the source's wrapping, not the reader's: `kubectl
    explain` re-wraps a description and printed each break as a line of its own ("who
    must" / "approve")."""
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n") if p.strip())


_CONDITIONS = (
    "Standard conditions, one per type; Ready is the summary that `kubectl wait "
    "--for=condition=Ready` reads, its reason and message say why and what to do."
)


def _condition_list_map(schema: dict[str, Any]) -> None:
    """Lists of conditions are maps keyed by type, as in metav1.Condition."""
    props = schema.get("properties", {})
    conds = props.get("conditions")
    if conds and conds.get("type") == "array":
        item_props = conds.get("items", {}).get("properties", {})
        if "type" in item_props and "lastTransitionTime" in item_props:
            conds["x-kubernetes-list-type"] = "map"
            conds["x-kubernetes-list-map-keys"] = ["type"]
            conds.setdefault("description", _CONDITIONS)


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _structural(_resolve(raw, defs))


# What `kubectl explain KIND` says of the fields every object has (as Kubernetes' own
# types say it).
_API_VERSION = (
    "APIVersion defines the versioned schema of this representation of an object; "
    "write stella.io/v1alpha1."
)
_KIND = "Kind is the REST resource this object represents; write {kind}."


def _described(schema: dict[str, Any], fallback: str) -> dict[str, Any]:
    """The schema with a description first in line (the model's docstring, else fallback)."""
    description = schema.get("description") or fallback
    return {"type": schema["type"], "description": description} | {
        k: v for k, v in schema.items() if k not in ("type", "description")
    }


def crd_for(info: KindInfo) -> dict[str, Any]:
    spec_schema = _described(
        model_schema(info.spec), f"What the {info.kind} asks for: written by people."
    )
    if info.spec_validations:
        spec_schema["x-kubernetes-validations"] = [dict(v) for v in info.spec_validations]
    status_schema = _described(
        model_schema(info.status),
        f"What the operator observed of the {info.kind}: written by the operator only.",
    )
    schema: dict[str, Any] = {
        "type": "object",
        "description": info.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": _API_VERSION},
            "kind": {"type": "string", "description": _KIND.format(kind=info.kind)},
            # Only `type` is allowed here: the API server describes ObjectMeta itself (and
            # refuses a CRD whose metadata schema says more).
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "stella"},
        },
        "spec": {
            "group": GROUP,
            "scope": info.scope,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": list(info.categories),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": c.name,
                            "type": c.type,
                            "jsonPath": c.json_path,
                            **({"description": c.description} if c.description else {}),
                            **({"priority": c.priority} if c.priority else {}),
                        }
                        for c in info.printer_columns
                    ],
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }
