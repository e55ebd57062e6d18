"""The auditor's commands, the parts that need no cluster: pinned keys matched by the key
itself, source errors as exit 2/3, an unknown environment refused, readable outcomes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stella.cli import main
from stella.cli.evidence import outcome_line
from stella.cli.evidence_sources import (
    Sources,
    check_environment,
    key_file_name,
    load_sources,
    load_trusted,
    pin,
)
from stella.cli.output import CliError
from stella.evidence.records import StoredPacket


def public_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_keys_written_by_keys_out_dir_pin_under_the_published_ids(tmp_path: Path) -> None:
    """`keys --out-dir` writes local_<id>.pem for `local:<id>`: verify matches by key."""
    published = {"local:3f2a": public_pem(), "transit/stella:1": public_pem()}
    for key_id, pem in published.items():
        (tmp_path / key_file_name(key_id)).write_text(pem)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local_3f2a.pem", "transit_stella_1.pem"]
    pinned = pin(load_trusted(str(tmp_path)), published)
    for key_id, pem in published.items():
        assert pinned[key_id] == pem


def test_one_pem_file_is_a_trusted_key(tmp_path: Path) -> None:
    pem = public_pem()
    (tmp_path / "evidence.pem").write_text(pem)
    pinned = pin(
        load_trusted(str(tmp_path / "evidence.pem")), {"local:1": pem, "local:2": public_pem()}
    )
    assert pinned.get("local:1") == pem and "local:2" not in pinned


def test_an_unreadable_trusted_keys_file_is_a_short_usage_error(tmp_path: Path) -> None:
    (tmp_path / "junk.txt").write_text("not json, not pem")
    with pytest.raises(ValueError, match="neither a PEM public key"):
        load_trusted(str(tmp_path / "junk.txt"))


def test_outcome_line_says_each_thing_once() -> None:
    assert (
        outcome_line("Counted", "Counted", "bob's approval counts")
        == "Counted: bob's approval counts"
    )
    assert outcome_line("Failed", "RolloutTimeout", "") == "Failed (RolloutTimeout)"


def args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {
        "bundle": None,
        "log": "",
        "namespace": "stella-system",
        "environment": None,
    }
    base.update(kw)
    return argparse.Namespace(**base)


def test_no_log_and_none_published_says_exactly_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stella.evidence.store_memory import MemoryStore

    monkeypatch.setattr("stella.cli.evidence_sources.api_client", lambda args: None)
    monkeypatch.setattr(
        "stella.evidence.store_configmap.ConfigMapStore", lambda api, ns: MemoryStore()
    )
    with pytest.raises(CliError) as err:
        load_sources(args())
    assert (
        err.value.code == 2
        and "has not published where it writes one" in err.value.message
        and "--log" in err.value.message
        and "STELLA_EVIDENCE_LOG" in err.value.message
    )


def test_a_log_path_that_does_not_exist_is_cannot_read_exit_2(tmp_path: Path) -> None:
    with pytest.raises(CliError) as err:
        load_sources(args(log=str(tmp_path / "missing.jsonl")))
    assert err.value.code == 2 and err.value.message.startswith("cannot read the log")


def test_a_missing_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evidence", "verify", "--bundle", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read the bundle") and err.count("\n") == 1


def test_an_environment_without_evidence_in_a_bundle_is_refused() -> None:
    src = Sources(
        keys={},
        configmaps=[StoredPacket("stella-evidence-env-prod-0000000001", "{}")],
        log=[],
        problems=[],
        namespace="stella-system",
    )
    check_environment(args(bundle="b.json", environment="prod"), src)
    with pytest.raises(CliError) as err:
        check_environment(args(bundle="b.json", environment="prdo"), src)
    assert err.value.code == 2
    assert (
        err.value.message == "no evidence for environment 'prdo'; environments with evidence: prod"
    )
