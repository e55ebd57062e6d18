"""`stella dora` on a scripted history recorded for real (OpenBao transit signatures, the
PostgreSQL append-only log, exported as a bundle): the figures match the hand-worked ones
of tests/unit/evidence/test_evidence_dora.py's history, and evidence that does not verify
gives no figures at all."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stella.cli import dora as cli
from stella.cli.output import EXIT_REFUSED, CliError
from stella.evidence.bundle import write_bundle
from stella.evidence.event import EvidenceEvent
from stella.evidence.packet import Outcome, ReleaseRef
from stella.evidence.recorder import Recorder
from stella.evidence.store_memory import MemoryStore

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=4)
H = timedelta(hours=1)
IMAGE = "registry.example.com/shop/web@sha256:" + "a" * 64
# (kind, environment, release, hours after T0, created hours after T0 or None)
HISTORY = [
    ("PromotionDeployed", "dev", "r1", 2, 0),
    ("PromotionDeployed", "prod", "r1", 10, 0),
    ("PromotionDeployed", "dev", "r2", 25, 24),
    ("PromotionDeployed", "prod", "r2", 30, 24),
    ("PromotionDeployed", "dev", "r3", 48, 47),
    ("PromotionRolledBack", "prod", "r3", 50, 47),
    ("PromotionFailed", "prod", "r3", 51, 47),
    ("PromotionDeployed", "dev", "r4", 52, 51),
    ("PromotionDeployed", "prod", "r4", 54, 51),
]


def run(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="stella")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dora", *argv])
    out = io.StringIO()
    return args.func(args, out), out.getvalue()


@pytest.fixture
def bundle(tmp_path: Path, transit_signer, evidence_db) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    times = iter(T0 + h * H for _, _, _, h, _ in HISTORY)
    store = MemoryStore()
    rec = Recorder(transit_signer, evidence_db.log(), store, "0.2.0", clock=lambda: next(times))
    for kind, env, rel, _, created in HISTORY:
        rec.record(
            EvidenceEvent(
                kind=kind,
                event_id=f"{rel}/{env}/attempt-1/{kind}",
                environment=env,
                release=ReleaseRef(
                    namespace="shop", name=rel, uid=rel, version="1.0", created_at=T0 + created * H
                ),
                images=[IMAGE],
                outcome=Outcome(result=kind.removeprefix("Promotion")),
            )
        )
    path = tmp_path / "bundle.json"
    write_bundle(path, keys=store.published_keys(), configmaps=store.list(), log=rec.log.entries())
    yield path


def test_dora_from_verified_evidence(bundle: Path) -> None:
    code, out = run("--bundle", str(bundle), "-o", "json")
    assert code == 0, out
    rows = {r["environment"]: r for r in json.loads(out)["environments"]}
    prod = rows["prod"]
    assert (prod["deployments"], prod["failures"]) == (3, 2)
    assert prod["leadTimeP50"] == 6 * 3600 and prod["leadTimeP90"] == 10 * 3600
    assert prod["changeFailureRate"] == 2 / 5
    assert prod["timeToRestoreP50"] == 4 * 3600
    assert rows["dev"]["deployments"] == 4 and rows["dev"]["changeFailureRate"] == 0.0

    code, out = run("--bundle", str(bundle), "--environment", "prod")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["ENVIRONMENT", "DEPLOYMENTS"]
    assert lines[1].split() == ["prod", "3", lines[1].split()[2], "6h00m", "10h00m", "40%", "4h00m"]


def test_no_figures_from_evidence_that_does_not_verify(bundle: Path) -> None:
    doc = json.loads(bundle.read_text())
    # Someone drops the failed promotion from both stores to improve the figures.
    doc["log"] = [e for e in doc["log"] if e["kind"] != "PromotionFailed"]
    doc["configMaps"] = [c for c in doc["configMaps"] if "PromotionFailed" not in json.dumps(c)]
    bundle.write_text(json.dumps(doc))
    with pytest.raises(CliError) as refused:
        run("--bundle", str(bundle))
    assert refused.value.code == EXIT_REFUSED
    assert "chain prod is missing sequence" in str(refused.value)
    assert "stella evidence verify" in str(refused.value)
