"""The operator says where its external log is (a locator with no secret in it), so that
`stella evidence verify` without --log checks the log the operator writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from evidence_fakes import Clock, MemorySigner, promotion_event

from stella.cli.evidence_sources import published_log
from stella.cli.output import EXIT_USAGE, CliError
from stella.evidence.log_jsonl import JsonlLog
from stella.evidence.log_postgres import PostgresLog
from stella.evidence.manifest import LOG_SELECTOR, log_configmap_name, log_manifest
from stella.evidence.recorder import Recorder
from stella.evidence.store_memory import MemoryLog, MemoryStore


class LocatedLog(MemoryLog):
    locator = "/var/lib/stella/evidence.jsonl"


def test_the_recorder_publishes_where_its_log_is_once(signer: MemorySigner) -> None:
    store = MemoryStore()
    rec = Recorder(signer, LocatedLog(), store, "t", clock=Clock())
    rec.publish_keys()
    rec.record(promotion_event())
    rec.publish_keys()
    assert store.log_locators() == ("/var/lib/stella/evidence.jsonl",)


def test_a_log_nobody_can_read_is_not_published(signer: MemorySigner) -> None:
    store = MemoryStore()
    Recorder(signer, MemoryLog(), store, "t", clock=Clock()).publish_keys()
    assert store.log_locators() == ()


def test_a_postgresql_locator_has_neither_password_nor_the_writers_user() -> None:
    log = PostgresLog("postgresql://stella_writer:s3cret@db.example:5433/stella")
    assert log.locator == "postgresql://db.example:5433/stella"
    assert PostgresLog("host=db dbname=ev user=w password=x").locator == ("postgresql://db:5432/ev")


def test_a_jsonl_locator_is_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    log = JsonlLog("state/evidence.jsonl")
    try:
        assert log.locator == str(tmp_path / "state" / "evidence.jsonl")
    finally:
        log.close()


def test_the_locator_configmap_is_immutable_and_found_by_label() -> None:
    cm = log_manifest("postgresql://db:5432/stella", "stella-system")
    assert cm["immutable"] is True
    assert cm["data"] == {"log": "postgresql://db:5432/stella"}
    assert cm["metadata"]["name"] == log_configmap_name("postgresql://db:5432/stella")
    key, value = LOG_SELECTOR.split("=")
    assert cm["metadata"]["labels"][key] == value


def test_verify_without_log_uses_the_published_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evidence.jsonl"
    path.write_text("")
    assert published_log((str(path),), "stella-system") == str(path)
    assert capsys.readouterr().err == (
        f"log: {path} (published by the operator in stella-system)\n"
    )
    assert published_log(("postgresql://db:5432/s",), "ns") == "postgresql://db:5432/s"


@pytest.mark.parametrize(
    ("locators", "says"),
    [
        ((), "the operator in stella-system has not published where it writes one: pass --log"),
        (("/a.jsonl", "/b.jsonl"), "has written to 2 logs over time (/a.jsonl, /b.jsonl)"),
        (("/nowhere/evidence.jsonl",), "writes its log to /nowhere/evidence.jsonl, which is not"),
    ],
)
def test_verify_without_log_says_what_to_do(locators: tuple[str, ...], says: str) -> None:
    with pytest.raises(CliError) as err:
        published_log(locators, "stella-system")
    assert err.value.code == EXIT_USAGE
    assert says in str(err.value)
