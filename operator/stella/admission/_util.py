"""Defensive readers of raw bodies: admission is given arbitrary JSON and must never raise."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from stella.admission.base import Body, Snapshot
from stella.models.environment import EnvironmentSpec
from stella.models.errors import human_errors

MAX_MESSAGE = 1024
M = TypeVar("M", bound=BaseModel)
_EMPTY: Mapping[str, Any] = {}


def mapping(value: object) -> Mapping[str, Any]:
    if type(value) is dict:  # nearly always (parsed JSON): no abstract-class check
        return value
    return value if isinstance(value, Mapping) else _EMPTY


def metadata(body: Body | None) -> Mapping[str, Any]:
    return mapping(body.get("metadata")) if isinstance(body, Mapping) else _EMPTY


def annotations_of(body: Body | None) -> Mapping[str, Any]:
    return mapping(metadata(body).get("annotations"))


def labels_of(body: Body | None) -> Mapping[str, Any]:
    return mapping(metadata(body).get("labels"))


def spec_of(body: Body | None) -> Any:
    return body.get("spec") if isinstance(body, Mapping) else None


def str_labels(value: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def namespace_labels(snap: Snapshot, namespace: str) -> tuple[dict[str, str], bool]:
    """(labels, known): a namespace's labels, and whether the snapshot knows the namespace.

    Every namespace carries `kubernetes.io/metadata.name` (the API server sets it), so it
    is added for namespaces the snapshot has not seen yet.
    """
    body = snap.namespaces.get(namespace)
    out = str_labels(labels_of(body))
    out.setdefault("kubernetes.io/metadata.name", namespace)
    return out, body is not None


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def loc_str(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def first_error(exc: ValidationError, prefix: str = "spec") -> str:
    """The pydantic errors as `<where>: <what>; <what to do>`; never echoes the input."""
    from stella.models.errors import human_errors

    return clip(human_errors(exc, prefix))


def schema_message(kind: str, exc: ValidationError, prefix: str = "spec") -> str:
    """`Release spec.version: <what is wrong>; <what to do>` for every problem (up to 3)."""
    return clip(
        f"{kind} {human_errors(exc, prefix)}; fix the manifest "
        f"(kubectl explain {kind.lower()}.{prefix} shows the schema)"
    )


def parse_model(model: type[M], value: object) -> M | ValidationError:
    """Validate or return the error; anything that is not a mapping is an error too."""
    try:
        return model.model_validate(value if value is not None else {})
    except ValidationError as exc:
        return exc


class EnvironmentCache:
    """Parsed Environment specs, reused while the snapshot holds the same body object.

    The snapshot replaces a body on every watch event (bodies are values, never edited in
    place), so identity of the body object is a sufficient freshness check.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._items: dict[str, tuple[Body, EnvironmentSpec | str]] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def get(self, name: str, body: Body) -> EnvironmentSpec | str:
        """The parsed spec, or a message saying why the stored Environment is malformed."""
        hit = self._items.get(name)
        if hit is not None and hit[0] is body:
            return hit[1]
        parsed = parse_model(EnvironmentSpec, spec_of(body))
        value: EnvironmentSpec | str = (
            parsed if isinstance(parsed, EnvironmentSpec) else first_error(parsed)
        )
        with self._lock:
            if len(self._items) >= self._limit:
                self._items.clear()
            self._items[name] = (body, value)
        return value


ENVIRONMENTS = EnvironmentCache()


def environment_spec(snap: Snapshot, name: str) -> EnvironmentSpec | str | None:
    """None when the Environment does not exist; a message when its stored spec is invalid."""
    body = snap.environments.get(name)
    if body is None:
        return None
    if not isinstance(body, Mapping):
        return "the stored object is not a JSON object"
    return ENVIRONMENTS.get(name, body)


def requires_graph(snap: Snapshot) -> dict[str, list[str]]:
    """Every Environment's name -> its spec.requires (names only; junk is ignored)."""
    graph: dict[str, list[str]] = {}
    for name, body in list(snap.environments.items()):
        requires = mapping(spec_of(body)).get("requires")
        if isinstance(requires, list):
            graph[name] = [r for r in requires if isinstance(r, str)]
        else:
            graph[name] = []
    return graph
