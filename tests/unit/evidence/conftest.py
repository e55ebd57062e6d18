"""Fixtures for the evidence unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helpers next to this file

from evidence_fakes import Clock, MemorySigner

from stella.evidence.recorder import Recorder
from stella.evidence.store_memory import MemoryLog, MemoryStore


@pytest.fixture
def signer() -> MemorySigner:
    return MemorySigner()


@pytest.fixture
def recorder(signer: MemorySigner) -> Recorder:
    return Recorder(
        signer=signer,
        log=MemoryLog(),
        store=MemoryStore(),
        operator_version="0.1.0-test",
        clock=Clock(),
    )
