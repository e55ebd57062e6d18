"""A pydantic model's checks, compiled once into plain functions over parsed JSON.

Verify reads tens of thousands of statements; a pydantic model per packet costs more than
every other check but the signature. ``plain_check(Model)`` reads the model's own field
declarations (types, aliases, lengths, patterns, bounds, after-validators) and returns a
function that answers, for a value parsed from JSON, "certainly valid for Model" (True) or
"not sure" (False). It answers True only for a subset of what the model accepts: exact JSON
types (no lax coercion), field aliases only, timestamps only as Stella writes them
(``2026-01-01T00:00:00Z``), numbers only as integers within 64 bits (no float anywhere:
encoders disagree on how to write some), JSON values at most 32 deep. What it is
not sure of goes to the model itself, which decides and words the finding: the model stays
the one source of truth, this is only a shortcut to its "valid".

A construct it was not written for (a validator function on a model, a
``model_post_init`` or core-schema hook, a default validated with ``validate_default``, a
config that changes values, a type it does not know, a pattern Python's ``re`` and
pydantic's Rust regex may read differently) fails the compile with
:class:`UnsupportedModel`, at import: a change to the models cannot slip past it. Where
the same bound is declared twice (an ``Annotated`` alias under a ``Field``), the check
applies the strictest of them, and every pattern.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any

import annotated_types
from pydantic import BaseModel, JsonValue
from pydantic._internal._model_construction import init_private_attributes
from pydantic.fields import FieldInfo
from pydantic.functional_validators import AfterValidator

Check = Callable[[object], bool]

I64 = 2**63 - 1
JSON_DEPTH = 32
# The one timestamp form Stella writes (rfc3339 of a UTC time, whole seconds). ASCII digits
# only: \d would also match other scripts' digits.
STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
# Model settings that do not change what is accepted or how a value reads.
_NEUTRAL_CONFIG = frozenset(
    {"extra", "alias_generator", "populate_by_name", "validate_assignment", "title"}
)
# Patterns that Python's re (fullmatch) reads as strictly as pydantic's Rust regex (a
# search): literals, ASCII classes and ranges, groups, alternation, counted repeats, and
# punctuation escaped. Not: \s \d \w \b (the two disagree on which characters they
# cover), inline flags, POSIX or nested classes, set operations.
_PORTABLE_PATTERN = re.compile(r"(?:[A-Za-z0-9^$\[\]{}()|?*+,:_./@#=-]|\\[-.^$|?*+()\[\]{}/\\])*")
_NOT_PORTABLE = ("[[", "[:", ":]", "[]", "[^]", "--", "{,", "(?")
# model_post_init as pydantic sets it for a model with private attributes: it only fills
# them in (anything else runs a model's own code after validation).
_POST_INITS = (BaseModel.model_post_init, init_private_attributes)


class UnsupportedModel(TypeError):
    """The model declares something plain_check cannot vouch for."""


def plain_check(model: type[BaseModel]) -> Check:
    """The compiled check of ``model``; its source is kept as ``.source`` (for reading)."""
    gen = _Generator()
    gen.model(model, "v0", 2, ())
    source = (
        "def check(v0):\n    try:\n"
        + "\n".join(gen.lines)
        + "\n    except KeyError:  # a required field is missing\n        return False"
        + "\n    return True\n"
    )
    namespace: dict[str, Any] = dict(gen.constants)
    exec(compile(source, f"<plain check of {model.__name__}>", "exec"), namespace)  # noqa: S102
    check: Check = namespace["check"]
    check.source = source  # type: ignore[attr-defined]
    return check


class _Generator:
    """Writes one flat function: a closure per field would cost a call per value, which is
    most of the time a check takes. Every line that finds a value not certainly valid
    returns False; constants (key sets, patterns, bounds) are names in its namespace."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, object] = {
            "MISSING": _MISSING,
            "json_value": _json_value,
            "STAMP": STAMP.fullmatch,
            "fromisoformat": datetime.fromisoformat,
        }
        self._names = 0

    def name(self, prefix: str, constant: object | None = None) -> str:
        self._names += 1
        name = f"{prefix}{self._names}"
        if constant is not None:
            self.constants[name] = constant
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def fail_if(self, depth: int, condition: str) -> None:
        self.emit(depth, f"if {condition}:")
        self.emit(depth + 1, "return False")

    def model(
        self, model: type[BaseModel], var: str, depth: int, outer: tuple[type[BaseModel], ...]
    ) -> None:
        if model in outer:
            raise UnsupportedModel(f"{model.__name__}: a model that contains itself")
        _supported_model(model)
        fields: list[tuple[str, FieldInfo]] = []
        for name, info in model.model_fields.items():
            key = info.validation_alias if info.validation_alias is not None else info.alias
            if key is not None and not isinstance(key, str):
                raise UnsupportedModel(f"{model.__name__}.{name}: alias paths are not supported")
            fields.append((key or name, info))
        allowed = self.name("KEYS", frozenset(k for k, _ in fields))
        # Required fields are read as var[key]: a missing one raises KeyError, which the
        # function turns into False.
        self.fail_if(depth, f"type({var}) is not dict or not {var}.keys() <= {allowed}")
        for key, info in fields:
            item = self.name("x")
            where = f"{model.__name__}.{key}"
            if info.is_required():
                self.emit(depth, f"{item} = {var}[{key!r}]")
                self.value(info.annotation, info.metadata, item, depth, (*outer, model), where)
                continue
            self.emit(depth, f"{item} = {var}.get({key!r}, MISSING)")
            self.emit(depth, f"if {item} is not MISSING:")
            self.value(info.annotation, info.metadata, item, depth + 1, (*outer, model), where)

    def value(
        self,
        annotation: Any,
        metadata: list[Any],
        var: str,
        depth: int,
        outer: tuple[type[BaseModel], ...],
        where: str,
    ) -> None:
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin is typing.Annotated:
            inner: list[Any] = []
            for extra in args[1:]:
                inner.extend(extra.metadata if isinstance(extra, FieldInfo) else [extra])
            self.value(args[0], [*inner, *metadata], var, depth, outer, where)
            return
        if origin is typing.Union or origin is types.UnionType:
            rest = [a for a in args if a is not type(None)]
            if len(rest) != 1 or len(args) != 2:
                raise UnsupportedModel(f"{where}: only X | None unions are supported")
            self.emit(depth, f"if {var} is not None:")
            self.value(rest[0], metadata, var, depth + 1, outer, where)
            return
        c = _constraints(metadata, where)
        sized = (
            ""
            if (c.lo, c.hi) == (0, I64)
            else f" or len({var}) > {c.hi}"
            if c.lo == 0
            else f" or not {c.lo} <= len({var}) <= {c.hi}"
        )
        if origin is typing.Literal:
            c.only(where, "literal")
            if not all(type(a) is str for a in args):
                raise UnsupportedModel(f"{where}: only string Literals are supported")
            values = self.name("LITERAL", frozenset(args))
            self.fail_if(depth, f"type({var}) is not str or {var} not in {values}")
        elif origin is list:
            c.only(where, "list", "length")
            self.fail_if(depth, f"type({var}) is not list{sized}")
            element = self.name("e")
            self.emit(depth, f"for {element} in {var}:")
            self.value(args[0], [], element, depth + 1, outer, where)
        elif origin is dict:
            c.only(where, "dict", "length")
            self.fail_if(depth, f"type({var}) is not dict{sized}")
            key, element = self.name("k"), self.name("e")
            self.emit(depth, f"for {key}, {element} in {var}.items():")
            self.value(args[0], [], key, depth + 1, outer, where)
            self.value(args[1], [], element, depth + 1, outer, where)
        elif annotation is str:
            c.only(where, "str", "length", "pattern")
            self.fail_if(depth, f"type({var}) is not str{sized}")
            for pattern in c.patterns:
                # The whole string: as strict as pydantic's (Rust) $, or stricter.
                full = self.name("PATTERN", re.compile(pattern).fullmatch)
                self.fail_if(depth, f"{full}({var}) is None")
        elif annotation is int:
            c.only(where, "int", "ge")
            ge = c.ge if c.ge is not None else -I64
            self.fail_if(depth, f"type({var}) is not int or not {ge} <= {var} <= {I64}")
        elif annotation is bool:
            c.only(where, "bool")
            self.fail_if(depth, f"type({var}) is not bool")
        elif annotation is datetime:
            c.only(where, "datetime", "after")
            self.fail_if(depth, f"type({var}) is not str or STAMP({var}) is None")
            self.emit(depth, "try:")  # 2026-02-30, 25:00:00; whatever the validators refuse
            value = f"fromisoformat({var})"
            for func in c.after:
                value = f"{self.name('AFTER', func)}({value})"
            self.emit(depth + 1, value)
            self.emit(depth, "except Exception:")  # the model then says what is wrong
            self.emit(depth + 1, "return False")
        elif annotation is JsonValue:
            c.only(where, "JsonValue")
            self.fail_if(depth, f"not json_value({var})")
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            c.only(where, "model")
            self.model(annotation, var, depth, outer)
        else:
            raise UnsupportedModel(f"{where}: type {annotation!r} is not supported")


class _Constraints:
    def __init__(self) -> None:
        self.lo, self.hi = 0, I64
        self.ge: int | None = None
        self.patterns: list[str] = []
        self.after: list[Callable[[Any], Any]] = []
        self.seen: set[str] = set()

    def only(self, where: str, kind: str, *allowed: str) -> None:
        if self.seen - set(allowed):
            raise UnsupportedModel(f"{where}: {sorted(self.seen)} not supported on a {kind}")


def _constraints(metadata: list[Any], where: str) -> _Constraints:
    c = _Constraints()
    for m in metadata:
        # A bound declared twice: the strictest (pydantic keeps one of them, by order).
        if isinstance(m, annotated_types.MinLen):
            c.lo = max(c.lo, m.min_length)
            c.seen.add("length")
        elif isinstance(m, annotated_types.MaxLen):
            c.hi = min(c.hi, m.max_length)
            c.seen.add("length")
        elif isinstance(m, annotated_types.Ge) and type(m.ge) is int:
            c.ge = m.ge if c.ge is None else max(c.ge, m.ge)
            c.seen.add("ge")
        elif isinstance(m, AfterValidator):
            c.after.append(m.func)  # type: ignore[arg-type]
            c.seen.add("after")
        elif type(m).__name__ == "_PydanticGeneralMetadata" and set(vars(m)) == {"pattern"}:
            c.patterns.append(_portable(vars(m)["pattern"], where))
            c.seen.add("pattern")
        else:
            raise UnsupportedModel(f"{where}: constraint {m!r} is not supported")
    return c


def _supported_model(model: type[BaseModel]) -> None:
    config = dict(model.model_config)
    if not set(config) <= _NEUTRAL_CONFIG or config.get("extra") != "forbid":
        raise UnsupportedModel(f"{model.__name__}: config {sorted(config)} not supported")
    decorators = model.__pydantic_decorators__
    kinds = ("validators", "field_validators", "root_validators", "model_validators")
    if any(getattr(decorators, kind) for kind in kinds):
        raise UnsupportedModel(f"{model.__name__}: validator functions are not supported")
    if model.model_post_init not in _POST_INITS:
        raise UnsupportedModel(f"{model.__name__}: model_post_init is not supported")
    hook = model.__get_pydantic_core_schema__.__func__  # type: ignore[attr-defined]
    if hook is not BaseModel.__get_pydantic_core_schema__.__func__:  # type: ignore[attr-defined]
        raise UnsupportedModel(f"{model.__name__}: a core schema hook is not supported")
    for name, info in model.model_fields.items():
        if info.validate_default:
            raise UnsupportedModel(f"{model.__name__}.{name}: validate_default is not supported")


def _portable(pattern: object, where: str) -> str:
    if (
        type(pattern) is not str
        or not _PORTABLE_PATTERN.fullmatch(pattern)
        or any(bad in pattern for bad in _NOT_PORTABLE)
    ):
        raise UnsupportedModel(
            f"{where}: pattern {pattern!r} may read differently in Python and in pydantic"
        )
    return pattern


def _json_value(value: object, depth: int = 0) -> bool:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -I64 <= value <= I64  # type: ignore[operator]
    if depth >= JSON_DEPTH:
        return False
    if kind is list:
        return all(_json_value(v, depth + 1) for v in value)  # type: ignore[attr-defined]
    if kind is dict:
        return all(
            type(k) is str and _json_value(v, depth + 1)
            for k, v in value.items()  # type: ignore[attr-defined]
        )
    return False


_MISSING = object()
