"""`stella passport params`: only digests whose passport verified reach the parameter of
the workload-digests policy; bad input is refused before anything is looked up."""

from __future__ import annotations

from pathlib import Path

import pytest

from stella.cli import main
from stella.supplychain.admission_params import PARAMS_NAME, PassportLookup, params_configmap

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def test_only_passported_digests_are_listed() -> None:
    cm = params_configmap(
        "prod",
        [
            PassportLookup(f"reg/web@{A}", A, True, "passport for prod"),
            PassportLookup(f"reg/api@{B}", B, False, "no passport for prod"),
        ],
        namespace="shop",
    )
    assert cm["metadata"] == {
        "name": PARAMS_NAME,
        "namespace": "shop",
        "labels": {"app.kubernetes.io/part-of": "stella"},
    }
    assert cm["data"] == {"environments": "prod (Stella passport)", "digests.a": A}


def test_no_passport_at_all_lists_nothing() -> None:
    cm = params_configmap("prod", [PassportLookup(f"reg/api@{B}", B, False, "none")])
    assert cm["data"] == {"environments": "prod (Stella passport)"}  # every digest refused


def test_bad_input_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "nope.pem")
    assert main(["passport", "params", "--environment", "prod", "--key", missing, f"r/w@{A}"]) == 2
    assert "cannot read a key" in capsys.readouterr().err
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    assert main(["passport", "params", "--environment", "prod", "--key", str(bad), f"r/w@{A}"]) == 2
    key = tmp_path / "ok.pem"
    from tests.supplychain_support import KeyPair

    key.write_text(KeyPair.generate().public_pem)
    assert main(["passport", "params", "--environment", "prod", "--key", str(key), "r/w:1"]) == 2
    assert "not pinned by digest" in capsys.readouterr().err
