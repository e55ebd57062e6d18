"""The public surface: stable rule ids, dispatch, and a pure package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from admission_factories import MALLORY, POLICY, world

import stella.admission as admission
from stella.admission import RULES, SIGNALS, Request, validate

PACKAGE = Path(admission.__file__).parent


def test_rule_ids_are_unique_and_stable_shaped() -> None:
    assert len(RULES) == len(set(RULES))
    assert all(re.fullmatch(r"[a-z]+(\.[a-z-]+)?", r) for r in RULES)
    assert len(SIGNALS) == len(set(SIGNALS))


def test_every_rule_used_in_the_code_is_registered() -> None:
    from stella.admission import base

    constants = {
        name: value
        for name, value in vars(base).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z]+(\.[a-z-]+)?", value)
    }
    assert set(constants.values()) <= set(RULES)


def test_unknown_kinds_are_allowed() -> None:
    req = Request("CREATE", "ConfigMap", "shop", "x", MALLORY, {"data": {}}, None)
    assert validate(req, world(), POLICY).allowed


def test_the_package_imports_no_kopf_kubernetes_handlers_or_io() -> None:
    forbidden = (
        "kopf",
        "kubernetes",
        "stella.handlers",
        "stella.k8s",
        "aiohttp",
        "hvac",
        "psycopg",
        "stella.engine",
    )
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"


def test_the_package_docstring_lists_every_rule() -> None:
    doc = admission.__doc__ or ""
    listed = {line.split()[0] for line in doc.splitlines() if line and not line.startswith(" ")}
    assert set(RULES) <= listed
    assert all(signal in doc for signal in SIGNALS)
