"""Integration tier: real kube-apiserver, OpenBao, registry and PostgreSQL on loopback.
The fixtures themselves live in tests/conftest.py, shared with the e2e tier."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
