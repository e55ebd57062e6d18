"""Pydantic validation errors as people read them: where, what is wrong, what to do.

`human_errors(exc)` turns a ValidationError into short messages such as

    spec.components[0].image: must be pinned by digest, repo@sha256:<64 lowercase hex>; ...
    spec.version: YAML read the unquoted value as the number 1.1; quote it, e.g. ...

with no documentation links, no "Value error," prefixes, no regular expressions, and the
rejected input never repeated for a field that may hold a secret (it would land in the
client's terminal, an Event and the API server's audit log). Pure: no I/O.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from stella.models.common import (
    CIDR,
    CONDITION_REASON,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    DURATION,
    PINNED_IMAGE,
    QUALIFIED_NAME,
    REGISTRY_HOST,
    SHA256_HEX,
)
from stella.models.environment import HELM_PARAMETER, WALL_OR_OFFSET_TIME
from stella.models.receiver import REPOSITORY
from stella.models.resource import Kinds
from stella.models.verification import HTTP_URL

# The patterns of the models, said in words (the regex itself helps nobody).
_DNS_NAME = (
    "must be lowercase letters, digits and '-'{dots}, starting and ending with a letter or "
    "digit, e.g. {example}"
)
PATTERN_WORDS: Mapping[str, str] = {
    DNS_SUBDOMAIN: _DNS_NAME.format(dots=" or '.'", example="prod"),
    DNS_LABEL: _DNS_NAME.format(dots="", example="web"),
    PINNED_IMAGE: (
        "must be an image pinned by digest, repo@sha256:<64 lowercase hex>; resolve a tag "
        "once with `stella release create --from-tags` or `skopeo inspect`"
    ),
    SHA256_HEX: "must be a sha256 digest: 64 lowercase hex digits",
    CIDR: "must be a network in CIDR notation, e.g. 10.1.0.0/16 or fd00::/8",
    REGISTRY_HOST: (
        "must be a registry host, with a port if any (registry.example.com, "
        "127.0.0.1:5000): no scheme, no path"
    ),
    DURATION: "must be a duration such as 90s, 10m, 1h30m or 62h (no days: write 48h)",
    CONDITION_REASON: "must be a CamelCase word such as ApprovalsMissing",
    QUALIFIED_NAME: "must be a name such as Ready",
    HELM_PARAMETER: (
        "must be a Helm parameter name as `helm --set` takes it: letters, digits, '.', '_', "
        "'-' and [index], e.g. web.image"
    ),
    r"^[A-Za-z0-9][A-Za-z0-9._+-]*$": (
        "must start with a letter or digit and use only letters, digits, '.', '_', '+' "
        "and '-', e.g. 1.4.2"
    ),
    WALL_OR_OFFSET_TIME: (
        "must be a time such as 2024-12-20T00:00:00 (read in the window's timeZone) or "
        "with an offset, 2024-12-20T00:00:00Z or 2024-12-20T00:00:00+01:00; quote it in YAML"
    ),
    HTTP_URL: (
        "must be an http:// or https:// URL without user:password@, e.g. "
        "http://prometheus.monitoring:9090 (a credential never goes in a spec)"
    ),
    REPOSITORY: (
        "must be an image repository without tag or digest, host[:port]/path, e.g. "
        "registry.example.com/shop/web"
    ),
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$": (
        "must be NAMESPACE/NAME of a Release, e.g. shop/shop-1-4-2"
    ),
}

# Fields whose value may be a secret pasted in the wrong place, or free text that may
# hold one: their input is never repeated, not even a number.
_SECRET_HINTS = ("credential", "password", "token", "secret", "key", "auth")
_FREE_TEXT = frozenset({"comment", "reason", "description", "message"})

_PREFIXES = ("Value error, ", "Assertion failed, ")
_URL = re.compile(r"\s*(\[|\()?\s*(For further information visit )?https?://\S+(\]|\))?")

_KIND_OF_INPUT = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "text",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def may_hold_secret(loc: Sequence[int | str]) -> bool:
    """Whether the field at `loc` may hold a secret (so its input is never echoed)."""
    for part in loc:
        if isinstance(part, str):
            low = part.lower()
            if low in _FREE_TEXT or any(h in low for h in _SECRET_HINTS):
                return True
    return False


def field_path(loc: Sequence[int | str], prefix: str = "spec") -> str:
    """`spec.components[0].image` from a pydantic location."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def human_error_list(
    exc: ValidationError, prefix: str = "spec", model: type[BaseModel] | None = None
) -> list[str]:
    """One message per problem, each `<field path>: <what is wrong>; <what to do>`.

    `model` (the validated model, when the caller knows it) lets a misspelt field name
    get a "did you mean" from the fields that exist there.
    """
    out: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        out.append(f"{field_path(loc, prefix)}: {_explain(err, loc, model)}")
    return list(dict.fromkeys(out))


def human_errors(
    exc: ValidationError,
    prefix: str = "spec",
    *,
    model: type[BaseModel] | None = None,
    limit: int = 3,
) -> str:
    """Every problem (up to `limit`, then a count) as one line, problems joined by '; '."""
    messages = human_error_list(exc, prefix, model or model_named(exc.title))
    if not messages:
        return f"{prefix} is not valid"
    shown = "; ".join(messages[:limit])
    rest = len(messages) - limit
    return shown if rest <= 0 else f"{shown} (and {rest} more problem{'s' if rest > 1 else ''})"


# --- one error -------------------------------------------------------------------------


def _explain(err: Mapping[str, Any], loc: tuple[int | str, ...], model: Any) -> str:
    kind = str(err.get("type", ""))
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    value = err.get("input")
    secret = may_hold_secret(loc)
    field = next((p for p in reversed(loc) if isinstance(p, str)), "value")

    if kind in ("value_error", "assertion_error"):
        return _clean(str(err.get("msg", "")))
    if kind == "missing":
        return "is required; add it (kubectl explain lists each field and what it takes)"
    if kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1]) if model is not None else []
        close = difflib.get_close_matches(str(loc[-1]) if loc else "", known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "check the spelling"
        return f"is not a field here; {hint} (field names are camelCase, as kubectl explain shows)"
    if kind == "string_pattern_mismatch":
        words = PATTERN_WORDS.get(str(ctx.get("pattern", "")))
        text = words or "does not have the form this field takes (kubectl explain shows it)"
        suggestion = _lowercase_suggestion(value, str(ctx.get("pattern", "")), secret)
        return f"{text}{suggestion}"
    if kind in ("literal_error", "enum"):
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        listed = f"must be {'one of ' if len(expected) > 2 else ''}{_one_of(expected)}"
        if isinstance(value, str) and not secret:
            same = [e for e in expected if e.lower() == value.strip().lower()]
            if same:
                return f"{listed}, capitalized as written; did you mean {same[0]}?"
        return listed
    if kind == "string_too_long":
        return f"is longer than {ctx.get('max_length')} characters; shorten it"
    if kind == "string_too_short":
        least = ctx.get("min_length", 1)
        return "must not be empty" if least == 1 else f"needs at least {least} characters"
    if kind == "too_long":
        return f"has more than {ctx.get('max_length')} items; split it or remove some"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return f"needs at least {least} item{'s' if least != 1 else ''}"
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        return f"must be {'at least' if kind == 'greater_than_equal' else 'more than'} {bound}"
    if kind in ("less_than_equal", "less_than"):
        bound = ctx.get("le", ctx.get("lt"))
        return f"must be {'at most' if kind == 'less_than_equal' else 'less than'} {bound}"
    if kind == "string_type":
        return _not_text(value, field, secret)
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number, e.g. {field}: 2{_was(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false{_was(value)}"
    if kind in ("list_type", "tuple_type", "set_type"):
        return f"must be a list, e.g. {field}: [a, b]{_was(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return f"must be an object (key: value pairs){_was(value)}"
    if kind.startswith(("datetime", "date_", "time_")):
        return (
            "must be an RFC 3339 time, e.g. 2024-12-20T00:00:00Z or "
            "2024-12-20T00:00:00+01:00; quote it in YAML"
        )
    if kind.startswith("json"):
        return "is not valid JSON"
    return _clean(str(err.get("msg", "is not valid")))


def _not_text(value: object, field: str, secret: bool) -> str:
    if isinstance(value, bool):
        shown = "" if secret else f" {str(value).lower()}"
        return (
            f"must be text, but YAML read the unquoted value as the boolean{shown} "
            f'(yes, no, on, off, true, false all read so); quote it: {field}: "..."'
        )
    if isinstance(value, int | float):
        if secret:
            return (
                "must be text, but YAML read the unquoted value as a number; "
                f'quote it: {field}: "..."'
            )
        if isinstance(value, float):
            return (
                f"must be text, but YAML read the unquoted value as the number {value!r}, "
                "which drops trailing zeros (1.10 is read as 1.1); quote it as meant, e.g. "
                f'{field}: "1.10"'
            )
        return (
            f"must be text, but YAML read the unquoted value as the number {value}; "
            f'quote it: {field}: "{value}"'
        )
    return f"must be text{_was(value)}"


def _was(value: object) -> str:
    """`, not a list`: the kind of the input, never its content."""
    kind = _KIND_OF_INPUT.get(type(value))
    return f", not {kind}" if kind else ""


def _one_of(options: Sequence[str]) -> str:
    if not options:
        return "the values kubectl explain lists"
    if len(options) == 1:
        return options[0]
    return ", ".join(options[:-1]) + f" or {options[-1]}"


def _lowercase_suggestion(value: object, pattern: str, secret: bool) -> str:
    if secret or not isinstance(value, str) or len(value) > 253 or not pattern:
        return ""
    lowered = value.strip().lower()
    if lowered != value and re.fullmatch(pattern, lowered):
        return f"; did you mean {lowered}?"
    return ""


def _clean(msg: str) -> str:
    for prefix in _PREFIXES:
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    msg = _URL.sub("", msg).strip()
    return msg.replace("Input should be", "must be").replace("String should", "must") or (
        "is not valid"
    )


# --- the fields that exist at a location ------------------------------------------------


def model_named(title: str) -> type[BaseModel] | None:
    """The spec or status model of a registered kind with this class name, if any."""
    for info in Kinds.registry.values():
        for model in (info.spec, info.status):
            if model.__name__ == title:
                return model
    return None


def _fields_at(model: Any, loc: Sequence[int | str]) -> list[str]:
    """The wire names of the fields of the model found at `loc` (empty if none)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            current = _item_type(current)
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        found = None
        for name, info in current.model_fields.items():
            if part in (name, info.alias):
                found = info.annotation
                break
        if found is None:
            return []
        current = found
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    """Optional[X] and Annotated[X, ...] -> X."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _item_type(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (list, tuple, set, frozenset) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None
