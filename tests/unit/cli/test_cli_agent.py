"""`stella-agent enroll --if-needed` (the chart's init container): an agent that already
holds a certificate keeps it and asks nothing; one without needs its token."""

from __future__ import annotations

from pathlib import Path

import pytest

from stella.cli import agent


def argv(d: Path) -> list[str]:
    return ["enroll", "--hub", "https://127.0.0.1:1", "--hub-ca", str(d / "ca.crt"),
            "--dir", str(d), "--agent", "eu-1", "--if-needed"]  # fmt: skip


def test_an_enrolled_agent_keeps_its_identity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "agent.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    assert agent.main(argv(tmp_path)) == 0  # no hub at that address: it was not asked
    assert "already enrolled" in capsys.readouterr().out


def test_without_a_certificate_the_token_is_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STELLA_AGENT_TOKEN", raising=False)
    assert agent.main(argv(tmp_path)) == 2
    assert "STELLA_AGENT_TOKEN or --token-file" in capsys.readouterr().err
