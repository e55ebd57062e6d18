"""`stella status` says which Release is live where: of ten Releases that report
`Deployed` in dev, only the one the Environment's status.currentRelease names is marked."""

from __future__ import annotations

import pytest
from cli_fakes import FakeCustomObjects, environment, release

from stella.cli import main
from stella.cli.people import live_releases, release_rows


def deployed(name: str) -> dict[str, object]:
    return release(
        name,
        "shop",
        ("dev", "prod"),
        environments=[
            {"name": "dev", "phase": "Deployed", "reason": "RolloutComplete"},
            {"name": "prod", "phase": "WaitingForApproval"},
        ],
    )


def test_only_the_current_release_is_marked_live() -> None:
    live = live_releases([environment("dev", currentRelease="shop/shop-1-2"), environment("prod")])
    assert live == {"dev": "shop/shop-1-2"}
    assert [r[1] for r in release_rows(deployed("shop-1-2"), live)] == [
        "Deployed (live)",
        "WaitingForApproval",
    ]
    assert [r[1] for r in release_rows(deployed("shop-1-1"), live)] == [
        "Deployed",
        "WaitingForApproval",
    ]
    other_ns = deployed("shop-1-2")
    other_ns["metadata"]["namespace"] = "web"  # type: ignore[index]
    assert release_rows(other_ns, live)[0][1] == "Deployed"


def test_status_of_a_namespace_marks_the_live_release(
    cluster: FakeCustomObjects, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("shop-1-1", "shop-1-2", "shop-1-3"):
        cluster.add("releases", deployed(name))
    cluster.objects[("environments", None, "dev")]["status"] = {"currentRelease": "shop/shop-1-2"}
    assert main(["status", "-n", "shop"]) == 0
    dev_rows = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("dev ") and "NotYetSeen" not in line  # the fixture's shop-1-4-2
    ]
    assert [row.split()[1:3] for row in dev_rows] == [
        ["Deployed", "RolloutComplete"],
        ["Deployed", "(live)"],
        ["Deployed", "RolloutComplete"],
    ]
    assert main(["status", "shop/shop-1-2"]) == 0
    assert "Deployed (live)" in capsys.readouterr().out
    assert main(["status", "shop/shop-1-2", "-o", "json"]) == 0
    assert "(live)" not in capsys.readouterr().out  # scripts read the object as stored
