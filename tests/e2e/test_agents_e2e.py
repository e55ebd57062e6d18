"""Issue 13, as people do it: frank (platform engineer) creates an Agent and prints a
one-time token; `stella-agent` — its own process — enrols with it (the key made on its
side), dials the operator's hub over mTLS and reports in; `stella agent list` shows it
Online; a second use of the token is refused and counted; `stella agent revoke` contains
the agent at its next request, and the hub carries it out (status Revoked, the serial
revoked in the CA, AgentRegistered and AgentRevoked in the cluster's evidence chain). The
CA is OpenBao's PKI engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
import yaml
from kubernetes import client
from tests.e2e.conftest import OperatorProcess, hub_settings, running_operator
from tests.e2e.test_actions_e2e import packets, stella_as
from tests.kube_support import custom_objects, eventually

from devenv.controlplane import ControlPlane
from devenv.services import OpenBao

AGENT = str(Path(sys.executable).parent / "stella-agent")


@pytest.fixture
def hub(
    kube: ControlPlane, tmp_path: Path, openbao: OpenBao
) -> Iterator[tuple[OperatorProcess, str, Path]]:
    env, url, hub_ca = hub_settings(openbao.addr, openbao.root_token, tmp_path)
    with running_operator(kube, tmp_path / "operator", env) as op:
        yield op, url, hub_ca


def agent_packets(admin: client.ApiClient, agent: str) -> list[dict[str, Any]]:
    """The cluster chain's packets about one agent, oldest first."""
    return packets(admin, "", f"stella.io/chain-scope=cluster,stella.io/agent={agent}")


def agent_cmd(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop("STELLA_AGENT_TOKEN", None)
    if token is not None:
        env["STELLA_AGENT_TOKEN"] = token
    return subprocess.run(
        [AGENT, *args], env=env, capture_output=True, text=True, check=False, timeout=60
    )


def test_enrol_report_in_and_revoke_as_people_do(
    hub: tuple[OperatorProcess, str, Path],
    openbao: OpenBao,
    kube: ControlPlane,
    kube_as: dict[str, Any],
    tmp_path: Path,
) -> None:
    op, url, hub_ca = hub
    name = f"eu-{tmp_path.name[-6:].replace('_', '-')}"
    manifest = {
        "apiVersion": "stella.io/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name},
        "spec": {
            "capabilities": ["deploy.kubernetes", "verify.digest"],
            "labels": {"cluster": "eu-1"},
            "allowedNetworks": ["127.0.0.0/8"],
        },
    }
    made = kube.kubectl("frank", "apply", "-f", "-", stdin=yaml.safe_dump(manifest), check=False)
    assert made.returncode == 0, made.stderr
    # alice (a requester) may not enrol agents.
    denied = stella_as(kube, "alice", "agent", "enroll", name)
    assert denied.returncode == 1, denied.stderr
    out = stella_as(kube, "frank", "agent", "enroll", name, "--expires", "10m", "-o", "json")
    assert out.returncode == 0, out.stderr
    token = json.loads(out.stdout)["token"]
    stored = custom_objects(kube_as["admin"]).get_cluster_custom_object(
        "stella.io", "v1alpha1", "agents", name
    )
    assert token not in json.dumps(stored)

    home = tmp_path / "agent"
    common = ["--hub", url, "--hub-ca", str(hub_ca), "--dir", str(home)]
    enrolled = agent_cmd("enroll", "--agent", name, *common, token=token)
    assert enrolled.returncode == 0, enrolled.stderr
    assert (home / "agent.key").stat().st_mode & 0o077 == 0
    again = agent_cmd(
        "enroll",
        "--agent",
        name,
        *["--hub", url, "--hub-ca", str(hub_ca), "--dir", str(tmp_path / "b")],
        token=token,
    )
    assert again.returncode == 1 and "used already" in again.stderr
    assert op.metric("stella_security_events_total", signal="AgentEnrollmentTokenReused") >= 1

    ran = agent_cmd("run", *common, "--capability", "deploy.kubernetes", "--once")
    assert ran.returncode == 0, ran.stderr
    listed = stella_as(kube, "frank", "agent", "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(name))
    assert "Online" in row and "127.0.0.1" in row

    # An agent claiming more than it was enrolled with is refused.
    greedy = agent_cmd("run", *common, "--capability", "exec.plugin", "--once")
    assert greedy.returncode == 1 and "exec.plugin" in greedy.stderr

    admin = kube_as["admin"]
    agent = custom_objects(admin).get_cluster_custom_object("stella.io", "v1alpha1", "agents", name)
    serial = agent["status"]["certificate"]["serial"]
    registered = agent_packets(admin, name)
    assert [p["kind"] for p in registered] == ["AgentRegistered"], registered
    assert registered[0]["policy"]["inputs"]["certificateSerial"] == serial

    revoked = stella_as(kube, "frank", "agent", "revoke", name)
    assert revoked.returncode == 0, revoked.stderr
    after = agent_cmd("run", *common, "--once")
    assert after.returncode == 1 and "revoked" in after.stderr
    assert "Revoked" in stella_as(kube, "frank", "agent", "list").stdout
    # Carried out by the hub: status Revoked, the serial revoked in the CA, evidence.
    done = eventually(
        lambda: (
            (
                st := custom_objects(admin).get_cluster_custom_object(
                    "stella.io", "v1alpha1", "agents", name
                )["status"]
            ).get("revokedAt")
            and st
        ),
        timeout=30,
        what="the revocation carried out",
    )
    assert done["state"] == "Revoked"
    kinds = [p["kind"] for p in agent_packets(admin, name)]
    assert kinds == ["AgentRegistered", "AgentRevoked"], kinds
    mount = op.env["STELLA_AGENT_PKI_MOUNT"]
    cert = hvac.Client(url=openbao.addr, token=openbao.root_token).read(f"{mount}/cert/{serial}")
    assert cert["data"]["revocation_time"] > 0
    kube.kubectl("admin", "delete", "agent", name, check=False)
