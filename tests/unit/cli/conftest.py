"""Unit tier of the CLI: no cluster (see cli_fakes)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from cli_fakes import FakeCustomObjects, environment, release  # noqa: E402

from stella.cli.kube import Kube  # noqa: E402


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCustomObjects]:
    """A shop: dev -> staging -> prod (prod promotes by hand), Release shop/shop-1-4-2;
    every `connect` of the CLI returns a Kube over it, context namespace `shop`."""
    fake = FakeCustomObjects()
    fake.add("environments", environment("dev"))
    fake.add("environments", environment("staging", ("dev",)))
    fake.add("environments", environment("prod", ("staging",), auto=False))
    fake.add("releases", release("shop-1-4-2", "shop", ("dev", "staging", "prod")))

    def connect(args: Any) -> Kube:
        return Kube(None, "https://test.invalid:6443", "alice", "shop", _custom=fake)

    for module in ("people", "actions", "envs"):
        monkeypatch.setattr(f"stella.cli.{module}.connect", connect)
    yield fake
