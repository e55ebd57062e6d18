"""e2e tier: the operator runs as a separate process, driven like a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devenv.controlplane import OPERATOR_USER, ControlPlane
from devenv.proc import Process, free_port, wait_until


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@dataclass
class OperatorProcess:
    proc: Process
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.proc.log.read_text(errors="replace") if self.proc.log.exists() else ""

    def restart(self) -> None:
        self.proc.start()
        wait_until(lambda: _ready(self.url), 60, "operator /readyz", self.proc.log)


def _ready(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
        return r.status == 200


def start_operator(
    kube: ControlPlane, workdir: Path, extra_env: dict[str, str] | None = None
) -> OperatorProcess:
    port = free_port()
    env = {
        "KUBECONFIG": str(kube.kubeconfig_for(OPERATOR_USER)),
        "STELLA_HTTP_PORT": str(port),
        "STELLA_STATE_DIR": str(workdir / "state"),
        "STELLA_RESYNC_SECONDS": "5",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    stella = str(Path(sys.executable).parent / "stella")
    proc = Process(
        "stella-operator",
        [stella, "operator", "run", "--verbose"],
        workdir / "operator.log",
        env=env,
    )
    op = OperatorProcess(proc, port, env)
    op.restart()
    return op


@pytest.fixture
def operator(kube: ControlPlane, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = start_operator(kube, tmp_path)
    try:
        yield op
    finally:
        op.proc.stop()
        if os.environ.get("STELLA_TEST_SHOW_LOGS"):
            print(op.logs())


__all__ = ["OperatorProcess", "start_operator", "subprocess"]
