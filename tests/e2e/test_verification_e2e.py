"""Verification gates (issue 14) with a real Prometheus (Debian's) on loopback, scraping a
test workload's /metrics: dev verifies (a soak time and a Prometheus check) before a
Release counts as Deployed there, so staging waits for it; a failing check fails the
promotion, rolls dev back and is evidence; Prometheus down makes the check wait (fail
closed, with the reason), and the promotion goes on once it is back; the operator
killed mid-soak resumes the soak instead of starting it again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.e2e.conftest import OperatorProcess
from tests.e2e.shop import Shop, operated_shop
from tests.e2e.test_actions_e2e import packets
from tests.kube_support import eventually

from devenv.controlplane import ControlPlane
from devenv.proc import LOOPBACK
from devenv.services import Prometheus, Registry
from stella.models.common import parse_time

QUERY = 'shop_error_ratio{job="shop"}'
SOAK = 8  # seconds


class Workload:
    """What Prometheus scrapes: the shop's error ratio, as the test sets it."""

    def __init__(self) -> None:
        self.error_ratio = 0.0
        workload = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = f"shop_error_ratio {workload.error_ratio}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def target(self) -> str:
        return f"{LOOPBACK}:{self.server.server_address[1]}"


@pytest.fixture(scope="module")
def world(
    kube: ControlPlane,
    kube_admin: client.ApiClient,
    kube_as: dict[str, client.ApiClient],
    registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Shop, Prometheus, Workload, OperatorProcess]]:
    workload = Workload()
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"), {"shop": workload.target}).start()
    check = {
        "name": "error-rate",
        "interval": "1s",
        "for": "2s",
        "prometheus": {"address": prom.url, "query": QUERY, "max": 0.05},
    }
    try:
        with operated_shop(
            kube, kube_admin, kube_as, registry, tmp_path_factory.mktemp("verify"), "ver"
        ) as (shop, op):
            shop.environment(
                "dev", replicas=0, verification={"soak": f"{SOAK}s", "checks": [check]}
            )
            shop.environment("staging", requires=["dev"], replicas=0)
            yield shop, prom, workload, op
    finally:
        prom.stop()
        workload.server.shutdown()


def _prometheus_sees(prom: Prometheus, value: float) -> None:
    eventually(lambda: prom.query(QUERY) == [value], 30, what=f"prometheus to see {value}")


def test_soak_and_a_passing_check_hold_the_next_environment(
    world: tuple[Shop, Prometheus, Workload, OperatorProcess],
) -> None:
    shop, prom, _, op = world
    _prometheus_sees(prom, 0.0)
    image = shop.image("1.0")
    shop.release("rel-1", image, ["dev", "staging"])
    verifying = shop.wait_phase("rel-1", "dev", "Verifying", timeout=120)
    assert shop.deployed_image("dev") == image
    # While dev verifies, staging has not started.
    assert shop.phase("rel-1", "staging") in ("Pending", "WaitingForPrerequisites")
    assert verifying["reason"] in ("Verifying", "Soaking")
    # The operator killed mid-soak: the soak goes on from where it was, not from the start.
    started_at = verifying["verification"]["startedAt"]
    op.proc.kill()  # SIGKILL
    op.restart()
    done = shop.wait_phase("rel-1", "dev", "Deployed", timeout=120)
    assert done["reason"] == "Verified"
    assert "error-rate: Passed" in done["message"]
    assert done["verification"]["startedAt"] == started_at
    started = parse_time(started_at)
    deployed = parse_time(done["deployedAt"])
    assert started and deployed and (deployed - started).total_seconds() >= SOAK
    check = done["verification"]["checks"][0]
    assert check["state"] == "Passed" and check["samples"] >= 2
    shop.wait_phase("rel-1", "staging", "Deployed", timeout=120)
    outcome = [
        p for p in packets(shop.admin, shop.env_name("dev")) if p["kind"] == "PromotionDeployed"
    ]
    assert outcome[-1]["outcome"]["checks"][0]["state"] == "Passed"


def test_a_failing_check_rolls_back_and_is_evidence(
    world: tuple[Shop, Prometheus, Workload, OperatorProcess],
) -> None:
    shop, prom, workload, _ = world
    before = shop.deployed_image("dev")
    workload.error_ratio = 0.5
    _prometheus_sees(prom, 0.5)
    try:
        shop.release("rel-2", shop.image("2.0"), ["dev", "staging"])
        failed = shop.wait_phase("rel-2", "dev", "Failed", timeout=120)
    finally:
        workload.error_ratio = 0.0
    assert failed["reason"] == "VerificationFailed"
    assert "check error-rate failed: 0.5 outside [-inf, 0.05]" in failed["message"]
    assert "rolled back" in failed["message"]
    assert shop.deployed_image("dev") == before
    shop.wait_phase("rel-2", "staging", "Blocked", timeout=60)
    chain = packets(shop.admin, shop.env_name("dev"))
    rolled = [p for p in chain if p["kind"] == "PromotionRolledBack"]
    assert rolled, [p["kind"] for p in chain]
    assert rolled[-1]["outcome"]["reason"] == "VerificationFailed"
    [check] = rolled[-1]["outcome"]["checks"]
    assert (check["name"], check["state"], check["samples"]) == ("error-rate", "Failed", 1)
    assert check["message"].startswith("0.5 outside [-inf, 0.05] for {")
    assert 'job="shop"' in check["message"]


def test_prometheus_down_waits_fail_closed_then_goes_on(
    world: tuple[Shop, Prometheus, Workload, OperatorProcess],
) -> None:
    shop, prom, _, _ = world
    _prometheus_sees(prom, 0.0)
    prom.stop()
    try:
        image = shop.image("3.0")
        shop.release("rel-3", image, ["dev", "staging"])
        waiting = eventually(
            lambda: (p := shop.progress("rel-3", "dev")).get("reason") == "CheckCannotRun" and p,
            timeout=120,
            what="rel-3 waiting for prometheus in dev",
        )
        assert waiting["phase"] == "Verifying"
        assert "cannot be reached" in waiting["message"]
        assert shop.deployed_image("dev") == image
        # It keeps waiting (fail closed) for longer than the soak: never Deployed meanwhile.
        for _ in range(SOAK + 4):
            assert shop.phase("rel-3", "dev") == "Verifying"
            assert shop.phase("rel-3", "staging") in ("Pending", "WaitingForPrerequisites")
            threading.Event().wait(1)
    finally:
        prom.start()
    done = shop.wait_phase("rel-3", "dev", "Deployed", timeout=120)
    assert done["reason"] == "Verified"
    shop.wait_phase("rel-3", "staging", "Deployed", timeout=120)


def test_dora_from_this_history(
    world: tuple[Shop, Prometheus, Workload, OperatorProcess], kube: ControlPlane
) -> None:
    """dev saw rel-1 deployed, rel-2 rolled back, rel-3 deployed: `stella dora` reads that
    from the operator's verified evidence, and the operator's metrics agree."""
    shop, _, _, op = world
    dev = shop.env_name("dev")
    log = Path(op.env["STELLA_STATE_DIR"]) / "evidence.jsonl"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "stella"), "dora", "--environment", dev,
         "--log", str(log), "-o", "json"],
        env={**os.environ, "KUBECONFIG": str(kube.kubeconfig_for("erin"))},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)["environments"]
    assert (row["environment"], row["deployments"], row["failures"]) == (dev, 2, 1)
    assert row["changeFailureRate"] == 1 / 3
    assert row["restores"] == 1 and row["timeToRestoreP50"] > 0
    assert row["leadTimeP50"] is not None and row["leadTimeP50"] >= SOAK
    assert op.metric("stella_lead_time_seconds_count", environment=dev) == 2
    assert op.metric("stella_time_to_restore_seconds_count", environment=dev) == 1


def test_a_kubernetes_job_check_passes_fails_on_its_deadline_or_waits_when_it_cannot_run(
    world: tuple[Shop, Prometheus, Workload, OperatorProcess],
) -> None:
    """Job checks: the real Job controller runs each Job, kwok completes its pod (its
    default pod-complete stage); a pod no node can take never completes, so the Job's
    deadline fails it; a template the API server refuses is a check that cannot run."""
    shop = world[0]
    smoke = {"name": "smoke", "image": shop.image("smoke")}

    def job_env(stage: str, template: dict[str, Any], timeout: str = "2m") -> None:
        check = {
            "name": "smoke",
            "interval": "1s",
            "job": {"template": template, "timeout": timeout},
        }
        shop.environment(stage, replicas=0, verification={"checks": [check]})

    job_env("jobok", {"spec": {"containers": [smoke]}})
    job_env("jobslow", {"spec": {"containers": [smoke], "nodeSelector": {"nowhere": "true"}}}, "5s")
    job_env("jobbad", {"spec": {"containers": []}})
    shop.release("rel-j1", shop.image("3.0"), ["jobok"])
    shop.release("rel-j2", shop.image("3.1"), ["jobslow"])
    shop.release("rel-j3", shop.image("3.2"), ["jobbad"])

    done = shop.wait_phase("rel-j1", "jobok", "Deployed", timeout=120)
    assert done["reason"] == "Verified"
    assert done["verification"]["checks"][0]["state"] == "Passed"
    jobs: list[Any] = (
        client.BatchV1Api(shop.admin).list_namespaced_job(shop.target_ns("jobok")).items
    )
    assert [j.status.succeeded for j in jobs] == [1]  # one Job, run once

    failed = shop.wait_phase("rel-j2", "jobslow", "Failed", timeout=120)
    assert failed["reason"] == "VerificationFailed"
    assert "check smoke failed: the Job in" in failed["message"]
    assert "DeadlineExceeded" in failed["message"]
    assert "rolled back" in failed["message"]

    waiting = shop.wait_reason("rel-j3", "jobbad", "CheckCannotRun", timeout=120)
    assert waiting["phase"] == "Verifying"
    assert "cannot create the Job in" in waiting["message"]
    assert "containers" in waiting["message"]
